"""The few values every stage agrees on; importing this loads no heavy library."""
from pathlib import Path

IMAGE_SIZE = 48  # FER2013 faces are 48x48 grey
# The five classes of the classic demo, in the alphabetical order that folder loaders give them.
# Only a default: a trained model carries its own list, and that list wins.
DEFAULT_CLASS_NAMES = ("angry", "happy", "neutral", "sad", "surprise")
# Files that ship beside the scripts, found wherever the user runs them from.
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = PROJECT_DIR / "Emotion_little_vgg.h5"
CASCADE_NAME = "haarcascade_frontalface_default.xml"
