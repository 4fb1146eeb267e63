"""The few values every stage agrees on; importing this loads no heavy library."""
from pathlib import Path

IMAGE_SIZE = 48  # FER2013 faces are 48x48 grey
# Smallest face searched for, in pixels. Haar's cost is in its smallest scales, and a face much smaller
# than the classifier's 48x48 input is too blurred to read; at 48, though, Haar missed half the 35-60 px
# faces of the generated three-face video that it finds from 32 (benchmarks/live_loop.py).
MIN_FACE = 32
# Face finders: Haar checked by BlazeFace, BlazeFace alone, or none (each image is one face).
DETECTORS = ("haar", "blazeface", "none")
# On video, frames between two searches of the whole frame for new faces; in between, only the region
# around each followed face is searched, at a small share of the cost.
SCAN_EVERY = 15
# On video, a followed face whose 48x48 crop differs from the one last classified by less than this (mean absolute
# difference in grey levels) keeps its box and scores: it is neither searched for nor classified again.
MAX_CHANGE = 0.9
# The five classes of the classic demo, in the alphabetical order that folder loaders give them.
# Only a default: a trained model carries its own list, and that list wins.
DEFAULT_CLASS_NAMES = ("angry", "happy", "neutral", "sad", "surprise")
# Files that ship beside the scripts, found wherever the user runs them from: a clone's top level, or, in an
# installed package, emotion/scripts, where pyproject.toml puts the scripts and those files.
INSTALLED_SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
PROJECT_DIR = INSTALLED_SCRIPTS_DIR if INSTALLED_SCRIPTS_DIR.is_dir() else Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = PROJECT_DIR / "Emotion_little_vgg.h5"
CASCADE_NAME = "haarcascade_frontalface_default.xml"
