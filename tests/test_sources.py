import json

import cv2
import numpy as np
import pytest

from emotion.sources import Source, SourceError, _camera_frames, check_output, demo_frames, open_source
from tests.conftest import run_script, write_video


class StoppingCamera:
    """A capture that delivers `frames` frames, then fails forever, like an unplugged webcam."""

    def __init__(self, frames):
        self.left, self.released = frames, False

    def read(self):
        if self.left == 0:
            return False, None
        self.left -= 1
        return True, np.full((4, 4, 3), self.left, np.uint8)

    def release(self):
        self.released = True


def test_camera_that_stops_delivering_ends_cleanly_with_a_message():
    camera = StoppingCamera(5)
    source = Source("camera", _camera_frames(camera, retries=3, retry_wait=0.001), 30.0, (4, 4))
    frames = [frame for _, frame in source.frames()]
    assert 1 <= len(frames) <= 5
    assert source.stopped_early == "camera stopped delivering frames"
    assert camera.released


def test_demo_source_is_a_moving_real_face():
    frames = list(demo_frames(count=3))
    assert [frame.shape for frame in frames] == [(480, 640, 3)] * 3
    assert (frames[0] != frames[2]).any()
    assert open_source("demo").kind == "demo"


def test_sources_are_recognised_by_what_they_are(tmp_path, face_video):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    assert open_source(face_video).kind == "video"
    assert open_source(tmp_path / "a.png").kind == "image"
    folder = open_source(tmp_path)
    assert folder.kind == "folder" and [name for name, _ in folder.frames()] == ["a.png"]
    with pytest.raises(SourceError, match="neither an image nor a video"):
        open_source(tmp_path / "notes.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no image files"):
        open_source(empty)


def test_output_checks_protect_existing_files(tmp_path, face_video):
    with pytest.raises(SourceError, match="source itself"):
        check_output(face_video, face_video, overwrite=True)
    with pytest.raises(SourceError, match="does not exist"):
        check_output(tmp_path / "no" / "out.mp4", face_video)
    (tmp_path / "out.mp4").write_bytes(b"x")
    with pytest.raises(SourceError, match="--overwrite"):
        check_output(tmp_path / "out.mp4", face_video)
    check_output(tmp_path / "out.mp4", face_video, overwrite=True)


def test_truncated_video_processes_every_readable_frame_and_warns(tiny_model, tmp_path):
    video = write_video(tmp_path / "clip.avi", demo_frames(count=30))
    video.write_bytes(video.read_bytes()[: int(video.stat().st_size * 0.6)])
    log, output = tmp_path / "log.jsonl", tmp_path / "out.avi"
    result = run_script("test.py", "--source", video, "--model", tiny_model, "--no-display", "--log", log,
                        "--output", output)
    assert result.returncode == 0, result.stderr
    frames = [json.loads(line)["frame"] for line in log.read_text().splitlines()]
    assert 5 < len(frames) < 30 and frames == list(range(len(frames)))
    assert "warning: video ended after" in result.stderr
    assert int(cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)


def test_folder_of_images_gives_an_annotated_folder_and_one_log(tiny_model, tmp_path):
    from emotion.sources import sample_face
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("one.jpg", "two.png"):
        cv2.imwrite(str(photos / name), sample_face())
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out, log = tmp_path / "annotated", tmp_path / "faces.csv"
    result = run_script("test.py", "--source", photos, "--model", tiny_model, "--no-display", "--output", out,
                        "--log", log)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.iterdir()) == ["one.jpg", "two.png"]
    assert len(log.read_text().splitlines()) == 3  # header + one face per photo
