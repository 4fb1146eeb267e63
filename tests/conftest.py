"""What the tests share, all made here: synthetic face folders, Kaggle CSVs and FER+ votes files, narrow and one-epoch
models, a generated video, a face photo, fakes of a camera, a screen and a full disk, the scripts run in this process,
and the README's option tables read."""
import contextlib
import csv
import errno
import importlib.util
import os
import re
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion.data import FERPLUS_VOTE_COLUMNS
from emotion.model import build_little_vgg

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


def run_live(live, capsys, *args):
    """test.py's main() here: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = live.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(result, *fragments, code=None):
    """One 'error:' line on stderr, no traceback, and the exit code the README promises (test.py: 2)."""
    assert result.returncode == code if code is not None else result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


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


def write_classes(root, counts, seed=0):
    """root/<class>/<n>.png synthetic images (pattern_image), counts {class folder: images}; returns root."""
    for label, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            cv2.imwrite(str(root / name / f"{index}.png"), pattern_image(label, seed * 1000 + label * 100 + index))
    return root


def write_dataset(root, per_class=6, classes=CLASSES, seed=0):
    """root/<class>/<n>.png, per_class synthetic images of each class; returns root."""
    return write_classes(root, dict.fromkeys(classes, per_class), seed)


def pixels_of(label, seed):
    """pattern_image as a Kaggle CSV's pixels field."""
    return " ".join(map(str, pattern_image(label, seed).ravel()))


def write_fer_csv(path, rows):
    """A Kaggle fer2013.csv of rows (emotion, pixels, usage); returns path."""
    with open(path, "w", newline="") as file:
        file.write("emotion,pixels,Usage\n")
        file.writelines(f"{emotion},{pixels},{usage}\n" for emotion, pixels, usage in rows)
    return path


def write_votes(path, rows):
    """A votes CSV in ../shared/ferplus's layout from (class folder, file, counts) rows."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "class", "row", *FERPLUS_VOTE_COLUMNS])
        writer.writerows([name, folder, row, *counts] for row, (folder, name, counts) in enumerate(rows))
    return path


def narrow_vgg(num_classes=5):
    """build_little_vgg four filters wide: the same network, built, converted and trained in seconds. The function
    is the one imported above, so that it still builds where a test has patched emotion.model's to call this."""
    return build_little_vgg(num_classes, widths=(4,) * 5, dense_widths=(8, 8))


def save_narrow_model(path, classes=CLASSES):
    """A narrow_vgg saved as training.py saves it, with its LiteRT file beside it (quick to load); returns path."""
    from emotion.classify import litert_from_keras
    from emotion.model import save_model
    model = narrow_vgg(len(classes))
    save_model(model, path, list(classes))
    litert_from_keras(model, path)
    return path


@contextlib.contextmanager
def narrow_network(patch):
    """training.py builds narrow_vgg while patch (a MonkeyPatch) is active."""
    import keras

    from emotion import model as model_module
    patch.setattr(model_module, "build_little_vgg", lambda num_classes, **kwargs: narrow_vgg(num_classes))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")  # as the rest of the suite expects it


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
def photo(tmp_path_factory):
    """Grace Hopper's face (sample_face) as a PNG file."""
    from emotion.sources import sample_face
    path = tmp_path_factory.mktemp("photo") / "hopper.png"
    cv2.imwrite(str(path), sample_face())
    return path


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



class StoppingCamera:
    """cv2.VideoCapture of a webcam that delivers `frames` frames, a frame every 5 ms, then fails forever
    (unplugged). Each frame is the face photo at 320x240 with its corner pixel counting the frames left: 0 in the
    last."""

    def __init__(self, index=0, frames=6):
        from emotion.sources import sample_face
        self.left, self.released = frames, False
        self.face = cv2.resize(sample_face(), (320, 240))

    def isOpened(self):  # OpenCV's name
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: 320, cv2.CAP_PROP_FRAME_HEIGHT: 240, cv2.CAP_PROP_FPS: 30.0}.get(prop, 0)

    def read(self):
        time.sleep(0.005)
        if self.left == 0:
            return False, None
        self.left -= 1
        frame = self.face.copy()
        frame[0, 0] = self.left
        return True, frame

    def release(self):
        self.released = True


class FakeScreen:
    """cv2's window calls, with no display: keys pressed in turn, then none; waitKey waits as the real one does."""

    def __init__(self, monkeypatch, keys=()):
        self.keys, self.shown = [ord(key) if isinstance(key, str) else key for key in keys], []
        monkeypatch.setattr(cv2, "imshow", lambda title, image: self.shown.append(image.copy()))
        monkeypatch.setattr(cv2, "waitKey", self.wait_key)
        monkeypatch.setattr(cv2, "getWindowProperty", lambda title, prop: 1.0)
        monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)

    def wait_key(self, ms):
        key = self.keys.pop(0) if self.keys else -1
        if key == -1:
            time.sleep(ms / 1000)
        return key


class FullDisk:
    """open() for the code under test: the files it writes share `free` bytes, then fail with ENOSPC, as
    on a real disk (an unbuffered write takes what fits and says so; a buffered one raises)."""

    def __init__(self, free):
        self.free = free

    def open(self, file, mode="r", buffering=-1, **kwargs):
        opened = open(file, mode, buffering, **kwargs)  # noqa: SIM115 - closed by the code under test
        return DiskFile(opened, self, raw=buffering == 0) if "w" in mode else opened


class DiskFile:
    def __init__(self, file, disk, raw):
        self.file, self.disk, self.raw = file, disk, raw

    def write(self, data):
        fits = min(len(data), self.disk.free)
        self.file.write(data[:fits])
        self.disk.free -= fits
        if fits == len(data) or (self.raw and fits):
            return fits
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


# Where each script's options are documented: the README's section (one table per group, each under a "###"
# heading named as the script's argparse group), and, for training.py, docs/training.md's table with every detail.
OPTION_SECTIONS = {"training.py": ("README.md", "Training: `training.py`"),
                   "test.py": ("README.md", "Options of `test.py`")}
DETAILED_OPTIONS = {"training.py": ("docs/training.md", "Every option in full")}


def doc_section(title, path="README.md"):
    """The text under the heading `title` (of any level) of a Markdown file, up to the next heading of that level or
    above; headings inside code blocks do not count."""
    lines, fenced, start, level = (ROOT / path).read_text().splitlines(), False, None, 0
    for index, line in enumerate(lines):
        fenced ^= line.startswith("```")
        heading = None if fenced else re.match(r"(#+) (.+)", line)
        if heading and start is not None and len(heading.group(1)) <= level:
            return "\n".join(lines[start:index])
        if heading and start is None and heading.group(2).strip() == title:
            start, level = index + 1, len(heading.group(1))
    assert start is not None, f"{path} has no heading {title!r}"
    return "\n".join(lines[start:])


def option_rows(text):
    """[(options, default cell, what-it-does cell)] of the option tables' rows in text."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| `--"):
            cells = [cell.strip() for cell in line.split("|")[1:-1]]
            rows.append((re.findall(r"`(--[a-z0-9-]+)`", cells[0]), cells[1], cells[2]))
    return rows


def readme_options(script, where=OPTION_SECTIONS):
    """The options of a script's tables in the README (or in `where`'s place for it), e.g. ['--source', ...]."""
    return [option for options, _, _ in option_rows(doc_section(where[script][1], where[script][0]))
            for option in options]
