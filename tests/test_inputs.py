"""What the API and test.py do with awkward inputs and outputs: images in other forms, things that are not
images, and a disk that fills up while test.py writes."""
import csv
import errno
import json
import os
import re
import shutil

import cv2
import numpy as np
import pytest

from emotion import EmotionRecognizer, records, sources
from emotion.sources import SourceError, sample_face
from tests.conftest import FullDisk

FACE = sample_face()
GREY = cv2.cvtColor(FACE, cv2.COLOR_BGR2GRAY)


@pytest.fixture(scope="module")
def recognizer(tiny_model):
    return EmotionRecognizer(model=tiny_model)


@pytest.mark.happens("The API gets a float, 16-bit, bool, BGRA or `(h, w, 1)` image")
@pytest.mark.parametrize("form", ["float 0-1", "float 0-255", "uint16", "bool", "BGRA", "grey", "grey (h, w, 1)"])
def test_images_in_other_forms_give_the_face(recognizer, form):
    image = {
        "float 0-1": FACE / 255,
        "float 0-255": FACE.astype(np.float32),
        "uint16": FACE.astype(np.uint16) * 257,
        "bool": GREY > 110,
        "BGRA": cv2.cvtColor(FACE, cv2.COLOR_BGR2BGRA),
        "grey": GREY,
        "grey (h, w, 1)": GREY[..., None],
    }[form]
    faces = recognizer.detect(image)
    assert len(faces) == 1
    if form != "bool":  # the same pixels, so the same box
        assert faces[0].box == recognizer.detect(FACE)[0].box


@pytest.mark.happens("The API gets something that is not an image")
@pytest.mark.parametrize("case", ["None", "empty", "one pixel", "a list", "2 channels", "5 channels", "1-D", "4-D",
                                  "floats from -1 to 1", "NaN", "text"])
def test_what_is_not_an_image_gives_a_source_error_that_says_why(recognizer, case):
    image, message = {
        "None": (None, "not NoneType: cv2.imread gives None for a file it cannot read"),
        "empty": (np.zeros((0, 0, 3), np.uint8), "image is empty"),
        "one pixel": (FACE[:1, :1], "1x1 pixels: too small"),
        "a list": (GREY[:16, :16].tolist(), "numpy array or a file path, not list"),
        "2 channels": (FACE[..., :2], "shape (600, 512, 2)"),
        "5 channels": (np.dstack([FACE, FACE[..., :2]]), "shape (600, 512, 5)"),
        "1-D": (FACE.ravel(), "shape (921600,)"),
        "4-D": (FACE[None], "shape (1, 600, 512, 3)"),
        "floats from -1 to 1": (FACE / 127.5 - 1, "values run from -1.0 to 1.0"),
        "NaN": (np.full((64, 64), np.nan), "values run from nan"),
        "text": (np.full((64, 64), "a"), "dtype <U1"),
    }[case]
    with pytest.raises(SourceError, match=re.escape(message)):
        recognizer.detect(image)


@pytest.mark.happens("The API gets something that is not an image")
def test_a_file_that_is_not_an_image_gives_a_source_error(recognizer, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    with pytest.raises(SourceError, match="notes.txt cannot be read"):
        recognizer.detect(notes)
    with pytest.raises(ValueError, match="cv2.imread gives None"):  # SourceError is a ValueError
        recognizer.detect(cv2.imread(str(notes)))


def fill_disk_after(monkeypatch, free):
    disk = FullDisk(free)
    for module in (records, sources):
        monkeypatch.setattr(module, "open", disk.open, raising=False)


def assert_ends_with_one_error_line(capsys, line):
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines()[-1] == line, stderr  # after the progress bar
    assert stderr.count("error:") == 1 and "Traceback" not in stderr


def frame_count(video):
    return int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))


@pytest.mark.happens("The disk fills up while `test.py` writes")
@pytest.mark.parametrize(("suffix", "free"), [(".jsonl", 1000), (".csv", 1000), (".csv", 0)])
def test_a_full_disk_ends_the_run_with_one_line_and_what_was_written_stays_readable(
        live, tiny_model, face_video, tmp_path, monkeypatch, capsys, suffix, free):
    log, video = tmp_path / f"faces{suffix}", tmp_path / "annotated.mp4"
    fill_disk_after(monkeypatch, free)
    assert live.main(["--source", str(face_video), "--model", str(tiny_model), "--no-display",
                        "--log", str(log), "--output", str(video)]) == 2
    assert_ends_with_one_error_line(capsys, f"error: cannot write {log}: No space left on device")
    text = log.read_text()
    assert not text or text.endswith("\n"), "a half-written frame is cut off"
    if suffix == ".jsonl":
        frames = [json.loads(line)["frame"] for line in text.splitlines()]
        logged = len(frames)
    else:
        rows = list(csv.reader(text.splitlines()))
        assert all(len(row) == 13 for row in rows)
        frames = [int(row[0]) for row in rows[1:]]
        logged = frames[-1] + 1 if frames else 0  # the face is in every frame from its third on
    assert frames == sorted(frames) and logged < 24
    if free:
        assert 0 < logged == frame_count(video), "the video is closed, with the frames logged"


@pytest.mark.happens("The disk fills up while `test.py` writes")
def test_a_full_disk_while_writing_annotated_images_keeps_the_ones_written(live, tiny_model, tmp_path,
                                                                            monkeypatch, capsys):
    photos, annotated = tmp_path / "photos", tmp_path / "annotated"
    photos.mkdir()
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        cv2.imwrite(str(photos / name), FACE)
    fill_disk_after(monkeypatch, int(1.5 * (photos / "1.jpg").stat().st_size))
    assert live.main(["--source", str(photos), "--model", str(tiny_model), "--no-display",
                        "--output", str(annotated)]) == 2
    assert_ends_with_one_error_line(capsys, f"error: cannot write {annotated / '2.jpg'}: No space left on device")
    assert [path.name for path in annotated.iterdir()] == ["1.jpg"], "the half-written image is removed"
    assert cv2.imread(str(annotated / "1.jpg")).shape == FACE.shape


@pytest.mark.happens("The disk fills up while `test.py` writes")
def test_a_full_disk_while_drawing_the_timeline_keeps_the_log(live, tiny_model, face_video, tmp_path,
                                                               monkeypatch, capsys):
    def savefig(figure, path, **kwargs):
        with open(path, "wb") as file:
            file.write(b"\x89PNG")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(records.Figure, "savefig", savefig)
    log = tmp_path / "faces.jsonl"
    assert live.main(["--source", str(face_video), "--model", str(tiny_model), "--no-display", "--log", str(log),
                        "--max-frames", "3"]) == 2
    assert_ends_with_one_error_line(capsys, f"error: cannot write {log.with_suffix('.png')}: "
                                             "No space left on device")
    assert not log.with_suffix(".png").exists(), "the half-written picture is removed"
    assert len(log.read_text().splitlines()) == 3


@pytest.mark.happens("The disk fills up while `test.py` writes")
@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_disk_that_fills_up_stops_the_video_while_it_can_still_be_closed(live, tiny_model, face_video, tmp_path,
                                                                           monkeypatch, capsys, suffix):
    """OpenCV's writer never reports a failed write, and an .mp4 on a full disk cannot be finished: the free
    space is watched instead, and the run stops while the video can still be closed."""
    from emotion import sources
    video = tmp_path / f"annotated{suffix}"
    monkeypatch.setattr(sources, "DISK_CHECK_EVERY", 5)
    free = iter([10 * sources.DISK_RESERVE, 2 * sources.DISK_RESERVE, sources.DISK_RESERVE - 1])
    real_usage = shutil.disk_usage
    monkeypatch.setattr(sources.shutil, "disk_usage", lambda path: real_usage(path)._replace(free=next(free)))
    assert live.main(["--source", str(face_video), "--model", str(tiny_model), "--no-display",
                        "--output", str(video)]) == 2
    assert_ends_with_one_error_line(capsys, f"error: cannot write {video}: the disk is almost full (under 20 MB "
                                            "free); the video is closed after frame 10")
    assert readable_frames(video) == frame_count(video) == 10, "the frames written before are a whole video"


def readable_frames(video):
    """Frames read from the start until the first that cannot be (the header's count may be missing or wrong)."""
    capture, count = cv2.VideoCapture(str(video)), 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count
