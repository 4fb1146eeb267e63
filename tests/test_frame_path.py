"""One frame path: EmotionRecognizer.frames is what test.py, the Python API and the Dask task read a source with, and
Source.time_s the one rule for a frame's time."""
import json
import time

import numpy as np
import pytest

from emotion import draw
from emotion.recognizer import EmotionRecognizer
from emotion.sources import DEFAULT_FPS, Source, open_source


def frames_of(images):
    return lambda source: ((None, image) for image in images)


@pytest.mark.parametrize("kind, fps, index, expected", [("video", 25.0, 50, 2.0), ("demo", DEFAULT_FPS, 15, 0.5),
                                                        ("image", 0.0, 3, None), ("folder", 0.0, 7, None)])
def test_files_keep_their_own_clock_and_images_have_none(kind, fps, index, expected):
    assert Source(kind, frames_of([]), fps, None).time_s(index, time.perf_counter() - 100) == expected


@pytest.mark.parametrize("kind", ["camera", "stream"])
def test_cameras_and_streams_keep_the_wall_clock(kind):
    started = time.perf_counter() - 2.5
    assert Source(kind, frames_of([]), 30.0, None).time_s(99, started) == pytest.approx(2.5, abs=0.2)


def test_a_video_without_a_frame_rate_is_timed_at_the_default_rate(face_video, monkeypatch):
    import cv2
    real_get = cv2.VideoCapture.get
    monkeypatch.setattr(cv2.VideoCapture, "get",
                        lambda capture, prop: 0.0 if prop == cv2.CAP_PROP_FPS else real_get(capture, prop))
    source = open_source(face_video)
    assert source.fps == DEFAULT_FPS and source.time_s(60, 0.0) == 60 / DEFAULT_FPS


@pytest.fixture(scope="module")
def recognizer(tiny_model):
    return EmotionRecognizer(model=tiny_model)


def test_frames_yields_each_frame_with_its_number_time_image_and_faces(recognizer, face_video):
    frames = list(recognizer.frames(open_source(face_video), recognizer.tracker(), max_frames=10))
    assert [frame.index for frame in frames] == list(range(10))
    assert [frame.time_s for frame in frames] == [index / 30.0 for index in range(10)]
    assert all(frame.image.shape == (480, 640, 3) and frame.name is None for frame in frames)
    assert any(frame.faces for frame in frames)


def test_frames_without_a_tracker_reads_stills_and_names_them(recognizer, tmp_path):
    import cv2

    from emotion.sources import sample_face
    cv2.imwrite(str(tmp_path / "a.png"), sample_face())
    cv2.imwrite(str(tmp_path / "b.png"), np.full((64, 64, 3), 128, np.uint8))
    frames = list(recognizer.frames(open_source(tmp_path)))
    assert [(frame.name, frame.time_s, len(frame.faces)) for frame in frames] == [("a.png", None, 1),
                                                                                 ("b.png", None, 0)]


def test_test_py_and_the_api_give_the_same_records_for_a_video(live, capsys, recognizer, tiny_model, face_video,
                                                               tmp_path):
    log = tmp_path / "log.jsonl"
    assert live.main(["--source", str(face_video), "--model", str(tiny_model), "--no-display", "--log", str(log)]) == 0
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert logged == recognizer.analyze_video(face_video)


def test_nothing_is_drawn_that_nothing_shows_or_writes(live, capsys, tiny_model, face_video, tmp_path, monkeypatch):
    calls = []
    real = draw.draw_overlay
    monkeypatch.setattr(draw, "draw_overlay", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    options = ["--source", str(face_video), "--model", str(tiny_model), "--no-display", "--max-frames", "6"]
    assert live.main([*options, "--log", str(tmp_path / "log.csv")]) == 0
    assert calls == []
    assert live.main([*options, "--output", str(tmp_path / "out.mp4")]) == 0
    assert len(calls) == 6
