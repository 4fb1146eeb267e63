"""Fuzzing every file a user hands the scripts: random bytes, real files cut short, and files of another kind
under the expected name, as test.py's image, video and folder sources, its --model and --cascade, and
training.py's --csv and training folders; and a disk that fills up while a model is saved.

What each must give: test.py one line on stderr and exit code 2 (docs/what-happens.md: "Every user mistake ends like
this"); training.py one `error:` line, its exit code 1 (`raise SystemExit("error: ...")`); inside a dataset (a
folder source, training images, CSV rows) a skip that is counted or named, the rest used. Never a traceback, never
a hang: each hypothesis example has a deadline, each subprocess a timeout, and each test a watchdog (no_hang).
Most cases call the scripts' main() in this process, where a bad source, model or cascade is refused in
milliseconds; stderr is then what the scripts print. Two cases run a script as a user does, where stderr is all
that the process prints, C libraries included.

Bad inputs tried per run: 226 distinct files or rows (41 explicit, 185 drawn by hypothesis).
- 41 explicit cases: 7 sources (random bytes, empty, a model, a cascade, a CSV or a folder under an image or
  video name, a PNG cut short), 5 broken members of a folder source, 7 models, 7 cascades, 7 Kaggle CSVs (one,
  with a byte-order mark, must be read), 6 training images (one the only image of its class), and, run as a
  user does, a CSV with a 140 KB field and a PNG source cut short.
- 185 hypothesis examples, drawn anew each run: 30 random files as a source, 15 real images and videos cut
  short (an AVI cut in its index alone is still whole), 25 models, 20 cascades, 25 CSVs, 50 Kaggle rows,
  20 training images.
Full disk: 10 disk sizes for a model save (hypothesis), a disk full before the first save, and training.py's export.
"""
import errno
import faulthandler
import io
import json
import os
import re
import shutil
import tempfile
from datetime import timedelta
from itertools import islice
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotion import batches as batches_module
from emotion import model as model_module
from emotion.data import FER_CSV_LABELS, parse_fer_row
from emotion.detect import BUNDLED_CASCADE
from emotion.model import build_little_vgg, load_model, save_model
from emotion.sources import demo_frames, sample_face
from tests.conftest import (
    CLASSES,
    FullDisk,
    narrow_vgg,
    pixels_of,
    run_live,
    run_script,
    save_narrow_model,
    write_dataset,
    write_fer_csv,
    write_video,
)

# A watchdog for each test: a hang in C code (a decoder, HDF5) cannot be interrupted, so the whole run is ended,
# with every thread's stack on stderr, rather than left waiting.
HANG_S = 240
# Per example: a bad input is refused in milliseconds, a run on a cut video takes a second; the margin is for a
# machine busy with other work.
FUZZ = settings(deadline=timedelta(seconds=30), database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SOURCE_ERRORS = ("error: {path} is neither an image nor a video that OpenCV can read",
                 "error: image {path} cannot be read")
KAGGLE_IDS = {"angry": 0, "happy": 3, "neutral": 6, "sad": 4, "surprise": 5}
VIDEO_FRAMES = 12
# A tqdm bar, from where it starts to its "[00:01<00:02, 9.1frame/s]" or "[00:00, ?row/s]"; a line printed
# while a bar is shown follows it on the same line.
PROGRESS_BAR = re.compile(r"^.*?\[\d\d:\d\d[<,][^\]]*\]")


@pytest.fixture(autouse=True)
def no_hang():
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def new_file(work, name, content):
    """content in a folder of its own (hypothesis calls a test many times with one tmp_path)."""
    path = Path(tempfile.mkdtemp(dir=work)) / name
    path.write_bytes(content)
    return path


@pytest.fixture(scope="module")
def good(work, narrow):
    """The bytes of a real file of each kind, to cut short or to pass under another kind's name."""
    face = cv2.resize(sample_face(), (128, 150))
    frames = [cv2.resize(frame, (160, 120)) for frame in islice(demo_frames(), VIDEO_FRAMES)]
    # PublicTest rows first, then two rounds of Training rows: most cuts keep every class of one split or both.
    rows = [(KAGGLE_IDS[name], pixels_of(label, seed), usage)
            for seed, usage in enumerate(["PublicTest"] + ["Training"] * 2) for label, name in enumerate(CLASSES)]
    return {
        "jpg": cv2.imencode(".jpg", face)[1].tobytes(), "png": cv2.imencode(".png", face)[1].tobytes(),
        "avi": write_video(work / "good.avi", frames).read_bytes(),
        "mp4": write_video(work / "good.mp4", frames).read_bytes(),
        "h5": narrow.read_bytes(), "xml": BUNDLED_CASCADE.read_bytes(),
        "csv": write_fer_csv(work / "good.csv", rows).read_bytes(),
        "csv rows": [f"{emotion},{pixels},{usage}" for emotion, pixels, usage in rows],
    }


def message_lines(stderr):
    """What stderr says, line by line, without the progress bars (which redraw themselves with \\r)."""
    parts = (PROGRESS_BAR.sub("", part) for line in stderr.split("\n") for part in line.split("\r"))
    return [part for part in parts if part.strip()]


class StopAfterReading(Exception):
    """Raised where training.py would start building its tf.data pipelines: the data has been read and counted."""


@pytest.fixture
def stop_after_reading(monkeypatch):
    def stop(*args, **kwargs):
        raise StopAfterReading
    monkeypatch.setattr(batches_module, "make_dataset", stop)


def run_training(trainer, capsys, work, *args):
    """training.py's main() here, up to the end of reading: ("read", stdout, stderr) or (the one-line message
    it exits with, stdout, stderr)."""
    capsys.readouterr()
    model_out = Path(tempfile.mkdtemp(dir=work)) / "m.h5"
    try:
        trainer.main([*map(str, args), "--precision", "float32", "--model-out", str(model_out)])
        outcome = "finished"  # not expected: reading is followed by training
    except SystemExit as stop:
        outcome = stop.code
    except StopAfterReading:
        outcome = "read"
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return outcome, captured.out, captured.err


def run_lines(live, capsys, *args):
    """test.py's main() here: (exit code, stderr's lines, stderr)."""
    code, _, stderr = run_live(live, capsys, *args)
    return code, message_lines(stderr), stderr


@pytest.fixture(scope="module")
def narrow(work):
    return save_narrow_model(work / "narrow.h5")


def assert_one_line(code, lines, stderr, expected):
    """test.py refused the input: exit code 2 and stderr is this one line (a pattern, or a list of choices)."""
    assert "Traceback" not in stderr
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    choices = expected if isinstance(expected, list) else [expected]
    assert any(re.fullmatch(choice, lines[0]) for choice in choices), lines[0]


def assert_training_refused(outcome, *fragments):
    """training.py stopped with one `error:` line (SystemExit's message: printed on stderr, exit code 1)."""
    assert isinstance(outcome, str), outcome
    assert len(outcome.splitlines()) == 1 and outcome.startswith("error: "), outcome
    for fragment in fragments:
        assert str(fragment) in outcome


def source_errors(path):
    return [re.escape(error.format(path=path)) for error in SOURCE_ERRORS]


def cut(content, share):
    return content[:int(len(content) * share)]


# --- test.py --source: an image or a video ------------------------------------------------------------------


@pytest.mark.happens("Any file given to either script is random bytes")
@settings(FUZZ, max_examples=30)
@given(content=st.binary(max_size=4096), suffix=st.sampled_from([".jpg", ".png", ".bmp", ".mp4", ".avi", ".mov", ""]))
def test_random_bytes_as_a_source_end_with_one_line(live, narrow, work, capsys, content, suffix):
    path = new_file(work, f"source{suffix}", content)
    assert_one_line(*run_lines(live, capsys, "--source", path, "--model", narrow, "--no-display"), source_errors(path))


@pytest.mark.happens("Any file given to either script is random bytes")
@pytest.mark.parametrize("case", ["random bytes as .jpg", "empty .mp4", "a model as .jpg", "a cascade as .mp4",
                                  "a CSV as .avi", "a folder named .jpg", "a PNG cut short"])
def test_a_source_of_the_wrong_kind_ends_with_one_line(live, narrow, good, work, capsys, case):
    name, content = {
        "random bytes as .jpg": ("x.jpg", np.random.default_rng(0).bytes(3000)),
        "empty .mp4": ("x.mp4", b""),
        "a model as .jpg": ("x.jpg", good["h5"]),
        "a cascade as .mp4": ("x.mp4", good["xml"]),
        "a CSV as .avi": ("x.avi", good["csv"]),
        "a folder named .jpg": ("x.jpg", None),
        "a PNG cut short": ("x.png", cut(good["png"], 0.5)),
    }[case]
    path = Path(tempfile.mkdtemp(dir=work)) / name
    if content is None:
        path.mkdir()
        (path / "notes.txt").write_text("no image here")
        expected = re.escape(f"error: folder {path} holds no image") + ".*"
    else:
        path.write_bytes(content)
        expected = source_errors(path)
    assert_one_line(*run_lines(live, capsys, "--source", path, "--model", narrow, "--no-display"), expected)


@pytest.mark.happens("A video is truncated or corrupt")
@settings(FUZZ, max_examples=15)
@given(kind=st.sampled_from(["jpg", "png", "avi", "mp4"]), share=st.floats(0, 1, exclude_max=True))
def test_a_real_image_or_video_cut_short_is_refused_in_one_line_or_read_as_far_as_it_goes(
        live, narrow, good, work, capsys, kind, share):
    path = new_file(work, f"cut.{kind}", cut(good[kind], share))
    log = path.with_suffix(".jsonl")
    code, lines, stderr = run_lines(live, capsys, "--source", path, "--model", narrow, "--no-display",
                                   "--detector", "none", "--log", log)
    if code == 2:
        assert_one_line(code, lines, stderr, source_errors(path))
        assert not log.exists(), "a refused source leaves no log behind"
        return
    assert code == 0 and "Traceback" not in stderr, stderr
    frames = [json.loads(line)["frame"] for line in log.read_text().splitlines()]
    assert frames == list(range(len(frames))) and frames
    if kind in ("jpg", "png"):  # a JPEG cut short decodes, its missing part grey
        assert (len(frames), lines) == (1, []), stderr
    elif len(frames) < VIDEO_FRAMES:  # "a warning says where the video stopped"
        assert lines == [f"warning: video ended after {len(frames)} of {VIDEO_FRAMES} frames (truncated?)"], stderr
    else:
        assert lines == [], stderr


# --- test.py --source: a folder with a broken image among good ones --------------------------------------------

@pytest.mark.happens("A folder source holds an image that cannot be read")
@pytest.mark.parametrize("broken", [
    "a PNG cut short", "a JPEG header then garbage",
    "random bytes", "empty", "a model named .jpg"])
def test_a_broken_image_in_a_folder_source_is_skipped_and_named(live, narrow, good, work, capsys, broken):
    folder = Path(tempfile.mkdtemp(dir=work)) / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(good["jpg"])
    (folder / "c.png").write_bytes(good["png"])
    name, content = {
        "a PNG cut short": ("b.png", cut(good["png"], 0.4)),
        "a JPEG header then garbage": ("b.jpg", b"\xff\xd8\xff" + np.random.default_rng(1).bytes(500)),
        "random bytes": ("b.jpg", np.random.default_rng(2).bytes(500)),
        "empty": ("b.jpg", b""),
        "a model named .jpg": ("b.jpg", good["h5"]),
    }[broken]
    (folder / name).write_bytes(content)
    annotated, log = folder.parent / "annotated", folder.parent / "faces.jsonl"
    code, lines, stderr = run_lines(live, capsys, "--source", folder, "--model", narrow, "--no-display",
                                   "--detector", "none", "--output", annotated, "--log", log)
    assert code == 0 and "Traceback" not in stderr, stderr
    assert sorted(path.name for path in annotated.iterdir()) == ["a.jpg", "c.png"]
    assert [json.loads(line)["file"] for line in log.read_text().splitlines()] == ["a.jpg", "c.png"]
    assert lines == [f"warning: skipped unreadable image {folder / name}"], stderr


# --- test.py --model ----------------------------------------------------------------------------------------


def assert_model_refused(result, path):
    assert_one_line(*result, rf"error: (model file |cannot load model |model ){re.escape(str(path))}\b.*")


@pytest.mark.happens("Any file given to either script is random bytes")
@settings(FUZZ, max_examples=25)
@given(kind=st.sampled_from(["random bytes", "cut short", "HDF5 signature then random bytes"]),
       share=st.floats(0, 1, exclude_max=True), noise=st.binary(max_size=2048))
def test_a_bad_model_file_ends_with_one_line(live, photo, good, work, capsys, kind, share, noise):
    content = {"random bytes": noise, "cut short": cut(good["h5"], share),
               "HDF5 signature then random bytes": b"\x89HDF\r\n\x1a\n" + noise}[kind]
    path = new_file(work, "model.h5", content)
    assert_model_refused(run_lines(live, capsys, "--source", photo, "--model", path, "--no-display"), path)


@pytest.mark.happens("The model file is missing, truncated or not HDF5")
@pytest.mark.parametrize("case", ["empty", "a JPEG", "the cascade", "a CSV", "HDF5 without a model",
                                  "a Keras zip", "class names not JSON"])
def test_a_model_file_of_the_wrong_kind_ends_with_one_line(live, photo, good, narrow, work, capsys, case):
    path = Path(tempfile.mkdtemp(dir=work)) / "model.h5"
    if case == "HDF5 without a model":
        with h5py.File(path, "w") as file:
            file["pixels"] = np.zeros(4)
    elif case == "a Keras zip":
        load_model(narrow)[0].save(path.with_suffix(".keras"))
        path.with_suffix(".keras").rename(path)
    elif case == "class names not JSON":  # a hand-edited attribute (or a damaged one) used to escape as JSONDecodeError
        shutil.copy(narrow, path)
        with h5py.File(path, "a") as file:
            file.attrs["class_names"] = "angry happy neutral sad surprise"
    else:
        path.write_bytes({"empty": b"", "a JPEG": good["jpg"], "the cascade": good["xml"], "a CSV": good["csv"]}[case])
    assert_model_refused(run_lines(live, capsys, "--source", photo, "--model", path, "--no-display"), path)


# --- test.py --cascade --------------------------------------------------------------------------------------


def assert_cascade_refused(result, path):
    assert_one_line(*result, re.escape(f"error: cascade file {path} ") + "(is not a valid OpenCV cascade|not found)")


@pytest.mark.happens("The cascade file is damaged")
@settings(FUZZ, max_examples=20)
@given(kind=st.sampled_from(["random bytes", "cut short", "its start then random bytes"]),
       share=st.floats(0, 1, exclude_max=True), noise=st.binary(max_size=2048))
def test_a_bad_cascade_file_ends_with_one_line(live, photo, narrow, good, work, capsys, kind, share, noise):
    whole = good["xml"][:-len(b"</opencv_storage>\n")]  # cut short at least by its closing tag
    content = {"random bytes": noise, "cut short": cut(whole, share),
               "its start then random bytes": cut(whole, share) + noise}[kind]
    path = new_file(work, "cascade.xml", content)
    assert_cascade_refused(run_lines(live, capsys, "--source", photo, "--model", narrow, "--cascade", path,
                                    "--no-display"), path)


@pytest.mark.happens("Any file given to either script is random bytes")
@pytest.mark.parametrize("case", ["empty", "a JPEG", "a model", "another OpenCV file", "UTF-16", "a folder",
                                  "text"])
def test_a_cascade_file_of_the_wrong_kind_ends_with_one_line(live, photo, narrow, good, work, capsys, case):
    path = Path(tempfile.mkdtemp(dir=work)) / "cascade.xml"
    if case == "a folder":
        path.mkdir()
    else:
        path.write_bytes({
            "empty": b"", "a JPEG": good["jpg"], "a model": good["h5"],
            "another OpenCV file": b'<?xml version="1.0"?>\n<opencv_storage>\n<size>3</size>\n</opencv_storage>\n',
            "UTF-16": good["xml"].decode().encode("utf-16"), "text": b"haarcascade_frontalface_default\n",
        }[case])
    assert_cascade_refused(run_lines(live, capsys, "--source", photo, "--model", narrow, "--cascade", path,
                                    "--no-display"), path)


# --- training.py --csv --------------------------------------------------------------------------------------


def expected_from_cut(good, n):
    """What training.py must make of the Kaggle CSV's first n bytes: ("read", training images, validation images,
    rows skipped) or ("refused", what the line says)."""
    text = good["csv"][:n].decode()
    if "\n" not in text:  # inside the header
        if {"emotion", "pixels", "Usage"} <= set(text.split(",")):
            return "refused", "(Training rows) has no readable image for class(es) " + ", ".join(CLASSES)
        return "refused", "is not a fer2013 CSV"
    pieces = text.split("\n")[1:]
    whole = [piece for piece in pieces if piece in good["csv rows"]]
    skipped = sum(1 for piece in pieces if piece and piece not in good["csv rows"])  # the row cut in two
    for usage in ("Training", "PublicTest"):
        names = {CLASSES[list(KAGGLE_IDS.values()).index(int(row.split(",")[0]))] for row in whole
                 if row.endswith(f",{usage}")}
        missing = [name for name in CLASSES if name not in names]
        if missing:
            return "refused", f"({usage} rows) has no readable image for class(es) {', '.join(missing)}"
    return ("read", sum(row.endswith(",Training") for row in whole), sum(row.endswith(",PublicTest") for row in whole),
            skipped)


@pytest.mark.happens("Any file given to either script is random bytes")
@settings(FUZZ, max_examples=25)
@given(kind=st.sampled_from(["cut short", "cut short", "random bytes", "its header then random text"]),
       share=st.floats(0, 1, exclude_max=True), noise=st.binary(max_size=2048), text=st.text(max_size=300))
def test_a_bad_kaggle_csv_is_refused_in_one_line_or_its_broken_row_counted(
        trainer, good, work, capsys, stop_after_reading, kind, share, noise, text):
    n = int(len(good["csv"]) * share)
    content = {"cut short": good["csv"][:n], "random bytes": noise,
               "its header then random text": b"emotion,pixels,Usage\n" + text.encode("utf-8", "surrogatepass")}[kind]
    path = new_file(work, "fer2013.csv", content)
    outcome, stdout, _ = run_training(trainer, capsys, work, "--csv", path)
    if kind != "cut short":
        assert_training_refused(outcome, path)
        return
    expected = expected_from_cut(good, n)
    if expected[0] == "refused":
        assert_training_refused(outcome, path, expected[1])
        return
    _, training, validation, skipped = expected
    assert outcome == "read", outcome
    assert f"training: {training} images" in stdout and f"validation: {validation} images" in stdout
    assert ("skipped 1 unreadable file(s) or row(s), e.g. line " in stdout) == bool(skipped), stdout


@pytest.mark.option("--csv")
@pytest.mark.happens("The Kaggle CSV starts with a byte-order mark")
@pytest.mark.parametrize("case", ["empty", "a JPEG", "a model", "another CSV", "only its header",
                                  "a stray quote", "a byte-order mark"])
def test_a_kaggle_csv_of_the_wrong_kind_is_refused_in_one_line(trainer, good, work, capsys, stop_after_reading, case):
    rows = good["csv"].split(b"\n")
    content = {
        "empty": b"", "a JPEG": good["jpg"], "a model": good["h5"], "another CSV": b"a,b,c\n1,2,3\n",
        "only its header": rows[0] + b"\n",
        # The quote opens a field that swallows the next rows, so that a class goes missing.
        "a stray quote": b"\n".join([rows[0], rows[1].replace(b",", b',"', 1), *rows[2:]]),
        # What spreadsheet programs write first; it used to hide the "emotion" column.
        "a byte-order mark": b"\xef\xbb\xbf" + good["csv"],
    }[case]
    path = new_file(work, "fer2013.csv", content)
    outcome, stdout, _ = run_training(trainer, capsys, work, "--csv", path)
    if case == "a byte-order mark":
        assert outcome == "read" and "training: 10 images" in stdout and "validation: 5 images" in stdout
    else:
        assert_training_refused(outcome, path)


@pytest.mark.happens("Any file given to either script is random bytes")
@pytest.mark.happens("The Kaggle CSV starts with a byte-order mark")
@pytest.mark.e2e
def test_a_kaggle_csv_with_a_field_over_the_csv_limit_ends_with_one_line(work):
    """Run as a user does: csv.Error used to escape as a traceback."""
    path = work / "long_field.csv"
    path.write_bytes(b"emotion,pixels,Usage\n3," + b"1 " * 70000 + b",Training\n")
    result = run_script("training.py", "--csv", path, "--model-out", work / "unused.h5", timeout=180)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert message_lines(result.stderr) == [f"error: cannot read {path}: field larger than field limit (131072)"]


@pytest.mark.happens("The Kaggle CSV starts with a byte-order mark")
@settings(FUZZ, max_examples=50)
@given(emotion=st.one_of(st.integers(-10, 10).map(str), st.text(max_size=4)), position=st.integers(0, 48 * 48 - 1),
       token=st.one_of(st.integers(-2 ** 80, 2 ** 80).map(str), st.text(max_size=6)))
def test_any_kaggle_row_gives_a_face_or_a_reason(emotion, position, token):
    pixels = pixels_of(0, 0).split()
    pixels[position] = token
    row = {"emotion": emotion, "pixels": " ".join(pixels), "Usage": "Training"}
    try:
        value = int(emotion)  # the column holds an id, 0-6
    except ValueError:
        value = None
    in_range = value is not None and 0 <= value < len(FER_CSV_LABELS)
    try:
        image, label = parse_fer_row(row, list(CLASSES))
    except ValueError as reason:  # the row is skipped and counted, with this reason
        assert re.match(r"unknown emotion|\d+ pixels instead of 2304|pixels that are not whole numbers|pixels outside "
                        r"0-255", str(reason)), reason
        if value is not None and not in_range:
            assert str(reason).startswith("unknown emotion"), "a negative id used to count from the end: -1 as neutral"
        if in_range and re.fullmatch(r"\d+", token) and int(token) <= 255:
            pytest.fail(f"a good row refused: {reason}")
        return
    assert in_range, f"emotion {emotion!r} accepted"
    name = FER_CSV_LABELS[value]
    assert label == (CLASSES.index(name) if name in CLASSES else None)
    assert image.shape == (48, 48) and image.dtype == np.uint8 and image[divmod(position, 48)] == int(token)


# --- training.py --train-dir: a broken image among good ones --------------------------------------------------


def dataset_with(work, name, content):
    root = Path(tempfile.mkdtemp(dir=work))
    write_dataset(root / "train", per_class=1)
    write_dataset(root / "val", per_class=1, seed=1)
    broken = root / "train" / "happy" / name
    broken.write_bytes(content)
    return root, broken


def assert_counted(outcome, stdout, broken):
    """Read, with the broken file either used (OpenCV reads it) or skipped, counted and named."""
    assert outcome == "read", outcome
    readable = cv2.imread(str(broken), cv2.IMREAD_GRAYSCALE) is not None
    assert f"training: {5 + readable} images" in stdout and "validation: 5 images" in stdout, stdout
    assert (f"skipped 1 unreadable file(s) or row(s), e.g. {broken}" in stdout) == (not readable), stdout


@settings(FUZZ, max_examples=20)
@given(kind=st.sampled_from(["random bytes", "a JPEG cut short", "a PNG cut short"]),
       suffix=st.sampled_from([".jpg", ".png", ".jpeg"]), share=st.floats(0, 1, exclude_max=True),
       noise=st.binary(max_size=2048))
def test_a_broken_training_image_is_skipped_and_counted(trainer, good, work, capsys, stop_after_reading, kind,
                                                          suffix, share, noise):
    content = {"random bytes": noise, "a JPEG cut short": cut(good["jpg"], share),
               "a PNG cut short": cut(good["png"], share)}[kind]
    root, broken = dataset_with(work, f"broken{suffix}", content)
    outcome, stdout, _ = run_training(trainer, capsys, work, "--train-dir", root / "train", "--val-dir", root / "val")
    assert_counted(outcome, stdout, broken)


@pytest.mark.happens("Training data has hidden files")
@pytest.mark.parametrize("case", ["empty", "a model", "text", "a PNG cut short", "a JPEG header then garbage",
                                  "the only image of its class"])
def test_a_training_image_of_the_wrong_kind_is_skipped_and_counted(trainer, good, work, capsys, stop_after_reading,
                                                                     case):
    name, content = {
        "empty": ("x.jpg", b""), "a model": ("x.jpg", good["h5"]), "text": ("x.png", b"not an image\n"),
        "a PNG cut short": ("x.png", cut(good["png"], 0.3)),
        "a JPEG header then garbage": ("x.jpg", b"\xff\xd8\xff" + bytes(300)),
        "the only image of its class": ("0.png", cut(good["png"], 0.3)),
    }[case]
    root, broken = dataset_with(work, name, content)  # 0.png replaces the happy folder's one good image
    outcome, stdout, _ = run_training(trainer, capsys, work, "--train-dir", root / "train", "--val-dir", root / "val")
    if case == "the only image of its class":
        assert_training_refused(outcome, f"{root / 'train'} has no readable image for class(es) happy")
    else:
        assert_counted(outcome, stdout, broken)


# --- run as a user does: stderr is everything the process prints ----------------------------------------------


@pytest.mark.happens("An image source cannot be decoded")
@pytest.mark.e2e
def test_a_png_cut_short_as_the_source_gives_one_line_and_nothing_else(narrow, good, work):
    path = work / "cut_short.png"
    path.write_bytes(cut(good["png"], 0.7))
    result = run_script("test.py", "--source", path, "--model", narrow, "--no-display", timeout=180)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: image {path} cannot be read"]


# --- a full disk while a model is saved -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    return narrow_vgg()


@pytest.fixture(scope="module")
def saved_size(small_model, work):
    """The bytes that saving small_model with five one-letter names writes."""
    path = work / "sized.h5"
    save_model(small_model, path, list("vwxyz"))
    return path.stat().st_size


@pytest.mark.happens("The disk fills up while `training.py` saves the model")
@settings(FUZZ, max_examples=10)
@given(free_share=st.floats(0, 1.05))
def test_a_disk_that_fills_up_during_a_save_keeps_the_previous_model(small_model, saved_size, work, monkeypatch,
                                                                       free_share):
    folder = Path(tempfile.mkdtemp(dir=work))
    target = folder / "m.h5"
    save_model(small_model, target, CLASSES)
    before = target.read_bytes()
    free, needed = int(saved_size * free_share), saved_size
    with monkeypatch.context() as patch:
        patch.setattr(model_module, "open", FullDisk(free).open, raising=False)
        try:
            save_model(small_model, target, list("vwxyz"))
            error = None
        except OSError as raised:
            error = raised
    assert [path.name for path in folder.iterdir()] == ["m.h5"], "no half-written file is left behind"
    if free >= needed:
        assert error is None and load_model(target)[1] == list("vwxyz")
        return
    assert error is not None and error.errno == errno.ENOSPC
    assert target.read_bytes() == before and load_model(target)[1] == list(CLASSES)


def test_a_disk_that_is_full_before_the_first_save_leaves_nothing(small_model, tmp_path, monkeypatch):
    monkeypatch.setattr(model_module, "open", FullDisk(0).open, raising=False)
    with pytest.raises(OSError, match="No space left on device"):
        save_model(small_model, tmp_path / "m.h5", CLASSES)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.happens("The disk fills up while `training.py` saves the model")
def test_a_disk_that_fills_up_while_training_exports_keeps_the_previous_model(trainer, tmp_path, monkeypatch):
    """training.py's last step: the best checkpoint rebuilt in float32 and saved over --model-out."""
    checkpoint, model_out = tmp_path / "m.best.h5", tmp_path / "m.h5"
    build_little_vgg(len(CLASSES)).save(checkpoint)  # the full-width network, as export rebuilds it
    save_model(load_model(checkpoint)[0], model_out, list("vwxyz"))  # the run before's model
    before = model_out.read_bytes()
    monkeypatch.setattr(model_module, "open", FullDisk(100_000).open, raising=False)
    with pytest.raises(SystemExit) as error:
        trainer.export(checkpoint, model_out, list(CLASSES))
    assert str(error.value) == (f"error: cannot save {model_out}: No space left on device; the best weights are "
                                f"still in {checkpoint}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.best.h5", "m.h5"]
    assert model_out.read_bytes() == before and load_model(model_out)[1] == list("vwxyz")


@pytest.mark.happens("The disk fills up while `training.py` saves the model")
def test_a_saved_model_is_whole_before_it_is_renamed(small_model, tmp_path, monkeypatch):
    """The rename comes after every byte is written and synced: a crash in between leaves the old model."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(model_module.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(model_module.os, "replace", lambda a, b: (events.append(("replace", Path(a).stat().st_size)),
                                                                 real_replace(a, b))[1])
    save_model(small_model, tmp_path / "m.h5", CLASSES)
    size = (tmp_path / "m.h5").stat().st_size
    assert events == ["fsync", ("replace", size)]
    buffer = io.BytesIO((tmp_path / "m.h5").read_bytes())
    with h5py.File(buffer, "r") as file:
        assert json.loads(file.attrs["class_names"]) == list(CLASSES)
