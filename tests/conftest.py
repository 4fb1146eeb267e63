"""Shared test data, all made here: synthetic face folders, a one-epoch model, a generated video."""
import importlib.util
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("angry", "happy", "neutral", "sad", "surprise")


def pytest_collection_modifyitems(items):
    """Tests that need the trained tiny model run the whole pipeline: marked e2e (pyproject.toml's markers)."""
    for item in items:
        if "tiny_model" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


def user_environment(env=None):
    """This process's environment as a user's shell has it, plus env (a None value removes a variable). The log
    level that importing TensorFlow or JAX put here (JAX sets TF_CPP_MIN_LOG_LEVEL=1) is not in a user's shell."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": None, **(env or {})}
    return {key: value for key, value in environment.items() if value is not None}


def run_script(script, *args, env=None, timeout=600):
    """Run training.py or test.py as a user would; returns the CompletedProcess."""
    environment = user_environment(env)
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          env=environment, timeout=timeout, check=False)


def load_script(name):
    """training.py or test.py as a module, so that its main() runs in the test's own process (fast, and where
    the test can make a disk fill up or a function fail)."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def live():
    """test.py as a module (see load_script)."""
    return load_script("test")


@pytest.fixture(scope="session")
def trainer():
    """training.py as a module (see load_script)."""
    return load_script("training")


def pattern_image(label, seed, size=48):
    """A grey image whose stripe frequency encodes label, plus noise: learnable, but no real data."""
    random = np.random.default_rng(seed)
    rows = np.sin(np.linspace(0, (label + 1) * np.pi, size))[:, None] * np.ones((1, size))
    image = 128 + 80 * rows + random.normal(0, 10, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_dataset(root, per_class=6, classes=CLASSES, seed=0):
    """root/<class>/<n>.png synthetic images; returns root."""
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            cv2.imwrite(str(root / name / f"{index}.png"), pattern_image(label, seed * 1000 + label * 100 + index))
    return root


def write_video(path, frames, fps=30.0):
    frames = list(frames)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, trainer):
    """A real .h5 that training.py trained for one epoch on synthetic folders (in this process: a new one would
    spend seconds loading TensorFlow)."""
    root = tmp_path_factory.mktemp("tiny_model")
    write_dataset(root / "train", per_class=8)
    write_dataset(root / "val", per_class=3, seed=1)
    code = trainer.main([str(arg) for arg in ("--train-dir", root / "train", "--val-dir", root / "val", "--epochs", 1,
                                              "--batch-size", 8, "--precision", "float32",
                                              "--model-out", root / "model.h5")])
    assert code == 0
    return root / "model.h5"


@pytest.fixture(scope="session")
def face_video(tmp_path_factory):
    """A 24-frame 640x480 clip of a real face photo moving over a background."""
    from emotion.sources import demo_frames
    # The first 24 of the demo's 300 frames: a face moving at a realistic speed.
    return write_video(tmp_path_factory.mktemp("video") / "face.mp4", islice(demo_frames(), 24))


def start_server(app):
    """Serves app (emotion.serve.create_app) on a free loopback port in a thread of this process; returns
    (base URL, the uvicorn server: set its should_exit to stop it)."""
    import socket
    import threading
    import time

    from emotion.serve import server
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = server(app, "127.0.0.1", port)
    threading.Thread(target=running.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not running.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", running


@pytest.fixture(scope="session")
def shipped_recognizer():
    """The recognizer test.py runs, with the shipped model (its committed LiteRT file: no TensorFlow)."""
    from emotion.recognizer import EmotionRecognizer
    return EmotionRecognizer()


@pytest.fixture(scope="session")
def served(shipped_recognizer):
    """The base URL of test.py --serve's app over the shipped model, on loopback, no token."""
    from emotion.serve import create_app
    url, running = start_server(create_app(shipped_recognizer))
    yield url
    running.should_exit = True

