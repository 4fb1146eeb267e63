import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion.sources import (
    Source,
    SourceError,
    _camera_frames,
    check_output,
    demo_frames,
    open_source,
    sample_face,
)
from tests.conftest import StoppingCamera, run_script, write_video


@pytest.mark.happens("The camera stops delivering frames")
def test_camera_that_stops_delivering_ends_cleanly_with_a_message():
    camera = StoppingCamera(frames=5)
    source = Source("camera", _camera_frames(camera, retries=3, retry_wait=0.02), 30.0, (4, 4))
    frames = [frame for _, frame in source.frames()]
    assert 1 <= len(frames) <= 5
    assert source.stopped_early == "camera stopped delivering frames"
    assert camera.released


def test_demo_source_is_a_moving_real_face():
    frames = list(demo_frames(count=3))
    assert [frame.shape for frame in frames] == [(480, 640, 3)] * 3
    assert (frames[0] != frames[2]).any()
    demo = open_source("demo")
    assert (demo.kind, demo.fps, demo.size, demo.expected_frames) == ("demo", 30.0, (640, 480), 300)
    assert next(demo.frames())[1].shape == (480, 640, 3)


@pytest.mark.happens("A folder source holds an image that cannot be read")
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
    with pytest.raises(SourceError, match="holds no image"):
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


@pytest.mark.happens("A video is truncated or corrupt")
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


# The parts of sources.py that need no display, camera or server: cameras and streams by fake captures.
CAPTURES = []  # every FakeCapture made


class FakeCapture:
    """cv2.VideoCapture's surface: `frames` frames of `size`, then failed reads; opened or not."""

    def __init__(self, frames=3, opened=True, fps=0.0, size=(64, 48), delay=0.0):
        self.left, self.opened, self.fps, self.size, self.delay = frames, opened, fps, size, delay
        self.released, self.args = False, None
        CAPTURES.append(self)

    def isOpened(self):
        return self.opened

    def read(self):
        time.sleep(self.delay)
        if not self.opened or self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.full((self.size[1], self.size[0], 3), self.left % 256, np.uint8)

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_FRAME_WIDTH: self.size[0],
                cv2.CAP_PROP_FRAME_HEIGHT: self.size[1]}.get(prop, 0.0)

    def release(self):
        self.released = True


def fake_captures(monkeypatch, *captures):
    """cv2.VideoCapture in sources.py hands out these captures in turn (then unopened ones), noting its arguments."""
    import emotion.sources
    queue_ = list(captures)
    calls = []

    def open_capture(*args):
        calls.append(args)
        capture = queue_.pop(0) if queue_ else FakeCapture(opened=False)
        capture.args = args
        return capture
    monkeypatch.setattr(emotion.sources.cv2, "VideoCapture", open_capture)
    return calls


def test_a_camera_is_opened_by_its_index_with_its_size_and_rate(monkeypatch):
    # At a camera's pace: a live source keeps only the newest frame, so frames that come faster than the loop takes
    # them are skipped by design (and a busy CPU made an instant second frame replace the first).
    calls = fake_captures(monkeypatch, FakeCapture(frames=2, fps=25.0, size=(320, 240), delay=0.1),
                          FakeCapture(fps=0.0))
    camera = open_source("2")
    assert calls[0] == (2,) and camera.kind == "camera" and camera.live
    assert camera.fps == 25.0 and camera.size == (320, 240) and camera.expected_frames is None
    assert [frame.shape for _, frame in camera.frames()] == [(240, 320, 3)] * 2
    assert open_source("0").fps == 30.0, "a camera that does not say its rate is taken as 30 fps"
    with pytest.raises(SourceError, match="^no camera at index 5: pass --source with another index, a video or image "
                                          "file, a folder, or 'demo'$"):
        open_source("5")


def test_a_camera_that_recovers_within_its_retries_goes_on():
    class Hiccup(StoppingCamera):
        def __init__(self):
            super().__init__(frames=6)
            self.reads = 0

        def read(self):
            self.reads += 1
            if self.reads in (3, 4):  # two failed reads in a row, fewer than the retries allowed
                return False, None
            return super().read()
    camera = Hiccup()
    source = Source("camera", _camera_frames(camera, retries=2, retry_wait=0.05), 30.0, (4, 4))
    frames = [int(frame[0, 0, 0]) for _, frame in source.frames()]
    assert frames and frames[-1] == 0, "frames after the hiccup arrive"
    assert source.stopped_early == "camera stopped delivering frames" and camera.released


def test_a_stream_is_tried_until_reconnect_s_with_growing_waits_then_named_without_its_password(monkeypatch):
    calls = fake_captures(monkeypatch)
    start = time.monotonic()
    with pytest.raises(SourceError, match=r"^stream rtsp://admin:\*\*\*@cam\.local/live delivered no frame within "
                                          r"1\.2 s: check the address, and that the camera or server is running$"):
        open_source("rtsp://admin:secret@cam.local/live", reconnect_s=1.2)
    elapsed = time.monotonic() - start
    assert 1.2 <= elapsed < 2.5
    assert 3 <= len(calls) <= 4  # tries at 0, 0.25, 0.75 s (waits 0.25, 0.5, then 1 s cut short)
    url, backend, params = calls[0]
    assert url == "rtsp://admin:secret@cam.local/live" and backend == cv2.CAP_FFMPEG
    options = dict(zip(params[::2], params[1::2]))
    assert 1000 <= options[cv2.CAP_PROP_OPEN_TIMEOUT_MSEC] <= 1200 and options[cv2.CAP_PROP_READ_TIMEOUT_MSEC] == 1200
    assert all(capture.released for capture in CAPTURES[-len(calls):])


def test_a_stream_that_opens_late_and_drops_reconnects_then_says_it_did_not_come_back(monkeypatch):
    CAPTURES.clear()
    first, second = FakeCapture(frames=3, fps=12.5, size=(80, 60), delay=0.01), FakeCapture(frames=2, delay=0.01)
    calls = fake_captures(monkeypatch, FakeCapture(opened=False), first, second)
    stream = open_source("http://cam/feed.mjpg", reconnect_s=0.4)
    assert stream.kind == "stream" and stream.live and stream.fps == 12.5 and stream.size == (80, 60)
    options = dict(zip(calls[0][2][::2], calls[0][2][1::2]))
    assert options[cv2.CAP_PROP_READ_TIMEOUT_MSEC] == 400
    frames = [frame for _, frame in stream.frames()]
    assert 2 <= len(frames) <= 4 and all(frame.shape == (60, 80, 3) for frame in frames[:1])
    assert stream.stopped_early == "stream http://cam/feed.mjpg dropped and did not come back within 0.4 s"
    assert first.released and second.released
    slow = FakeCapture(frames=1)
    fake_captures(monkeypatch, slow)
    assert open_source("udp://0.0.0.0:5000", reconnect_s=0.2).fps == 30.0


def test_stream_urls_are_known_by_their_scheme_and_passwords_are_masked():
    from emotion.sources import is_stream_url, masked
    assert all(is_stream_url(url) for url in ("RTSP://cam/live", "rtmp://x/y", "http://x", "https://x", "udp://x:1"))
    assert not any(is_stream_url(spec) for spec in ("0", "clip.mp4", "ftp://x/y.mp4", "demo", "C:/videos/a.mp4"))
    assert masked("rtsp://user:pa:ss@cam:554/live?x=1") == "rtsp://user:***@cam:554/live?x=1"
    assert masked("rtsp://user@cam/live") == "rtsp://user@cam/live"
    assert masked("http://cam/x") == "http://cam/x"


def test_a_video_counts_its_frames_and_an_image_or_folder_names_its_files(tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi", demo_frames(count=5, size=(96, 64)), fps=12.0)
    source = open_source(video)
    assert (source.kind, source.fps, source.size, source.expected_frames, source.live) == ("video", 12.0, (96, 64), 5,
                                                                                           False)
    frames = list(source.frames())
    assert len(frames) == 5 and frames[0][0] is None and frames[0][1].shape == (64, 96, 3)
    assert source.stopped_early is None
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "b.png"), np.full((10, 20, 3), 9, np.uint8))
    cv2.imwrite(str(photos / "a.jpg"), np.full((30, 40, 3), 200, np.uint8))
    (photos / "c.png").write_bytes((photos / "b.png").read_bytes()[:40])  # a PNG cut short
    cv2.imwrite(str(photos / ".hidden.png"), np.zeros((4, 4, 3), np.uint8))
    folder = open_source(photos)
    assert (folder.kind, folder.expected_frames, folder.live, folder.fps) == ("folder", 3, False, 0.0)
    assert [(name, frame.shape) for name, frame in folder.frames()] == [("a.jpg", (30, 40, 3)), ("b.png", (10, 20, 3))]
    assert f"warning: skipped unreadable image {photos / 'c.png'}" in capsys.readouterr().err
    image = open_source(photos / "b.png")
    assert (image.kind, image.size, image.expected_frames) == ("image", (20, 10), 1)
    assert [(name, frame.shape) for name, frame in image.frames()] == [("b.png", (10, 20, 3))]
    with pytest.raises(SourceError, match=f"^image {photos / 'c.png'} cannot be read$"):
        open_source(photos / "c.png")
    with pytest.raises(SourceError, match=r"^source nowhere\.mp4 not found: pass a camera index, a stream URL "
                                          r"\(rtsp, rtmp, http, https, udp\), a video or image file, a folder, or "
                                          r"'demo'$"):
        open_source("nowhere.mp4")


def test_the_demo_moves_and_resizes_the_face_inside_the_frame_the_same_way_every_time():
    from emotion.detect import HaarCascade, to_gray
    frames = list(demo_frames(count=8))
    assert len(frames) == 8 and all(frame.shape == (480, 640, 3) and frame.dtype == np.uint8 for frame in frames)
    again = list(demo_frames(count=8))
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    detector = HaarCascade()
    boxes = [detector.detect(to_gray(frame)) for frame in frames]
    assert all(len(found) == 1 for found in boxes)
    sizes = [found[0][2] for found in boxes]
    xs = [found[0][0] + found[0][2] / 2 for found in boxes]
    ys = [found[0][1] + found[0][3] / 2 for found in boxes]
    assert max(sizes) > 1.2 * min(sizes) and max(xs) - min(xs) > 100 and max(ys) - min(ys) > 20
    # One loop per `count` frames: halfway round, the face is back at the same x and size, at the mirrored y.
    assert abs(xs[4] - xs[0]) < 8 and abs(sizes[4] - sizes[0]) < 8 and abs(ys[4] - ys[0]) > 20
    # The photo takes 35-55 % of the frame height, its face about 40 % of the photo, over a textured background.
    assert 0.12 * 480 < min(sizes) and max(sizes) < 0.25 * 480
    corner = frames[0][:20, :20]
    assert 40 <= corner.min() and corner.max() <= 90 and corner.std() > 0
    two = next(demo_frames(count=2, faces=(sample_face, sample_face)))
    assert len(detector.detect(to_gray(two))) == 2
    assert next(demo_frames(count=1, size=(320, 240))).shape == (240, 320, 3)


def test_each_source_gets_the_sink_it_calls_for(tmp_path):
    from emotion.sources import ImageSink, VideoSink, open_sink
    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    image_sink = open_sink(tmp_path / "out.jpg", open_source(photo))
    assert isinstance(image_sink, ImageSink) and not image_sink.folder
    with pytest.raises(SourceError, match=f"^output {tmp_path / 'out.avi'} should be an image file name "
                                          r"\(.jpg or .png\) for an image source$"):
        open_sink(tmp_path / "out.avi", open_source(photo))
    folder_sink = open_sink(tmp_path / "annotated", open_source(tmp_path))
    assert isinstance(folder_sink, ImageSink) and folder_sink.folder and (tmp_path / "annotated").is_dir()
    video = open_sink(tmp_path / "out.mp4", Source("demo", None, 0.0, (64, 48)))
    assert isinstance(video, VideoSink)
    for _ in range(3):
        video.write(np.zeros((48, 64, 3), np.uint8))
    video.close()
    written = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 3 and written.get(cv2.CAP_PROP_FPS) == 30.0
    assert int(written.get(cv2.CAP_PROP_FRAME_WIDTH)) == 64
    with pytest.raises(SourceError, match=f"^cannot write video {tmp_path / 'no' / 'x.mp4'} "
                                          r"\(try a .mp4 or .avi name\)$"):
        VideoSink(tmp_path / "no" / "x.mp4", 25.0, (64, 48))


def test_an_image_sink_writes_same_named_files_and_removes_a_half_written_one(tmp_path, monkeypatch):
    from emotion.sources import ImageSink
    frame = np.full((12, 16, 3), 77, np.uint8)
    sink = ImageSink(tmp_path / "out", folder=True)
    sink.write(frame, "a.png")
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "out" / "a.png")), frame)
    single = ImageSink(tmp_path / "one.png", folder=False)
    single.write(frame, "ignored.png")
    assert (tmp_path / "one.png").is_file() and not (tmp_path / "ignored.png").exists()

    class FullDisk:
        def __init__(self, path, mode):
            self.file = open(path, mode)  # noqa: SIM115

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(bytes(data)[:10])
            raise OSError(28, "No space left on device")
    monkeypatch.setattr("emotion.sources.open", FullDisk, raising=False)
    with pytest.raises(SourceError, match=f"^cannot write {tmp_path / 'out' / 'b.png'}: No space left on device$"):
        sink.write(frame, "b.png")
    monkeypatch.undo()
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.png"]


def test_output_checks_compare_resolved_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"x")
    with pytest.raises(SourceError, match="^output clip.mp4 is the source itself: choose another name$"):
        check_output("./clip.mp4", tmp_path / "clip.mp4", overwrite=True)
    with pytest.raises(SourceError, match="^clip.mp4 already exists: add --overwrite to replace it$"):
        check_output("clip.mp4", "demo")
    check_output("new.mp4", "0")
    (tmp_path / "folder_out").mkdir()
    check_output("folder_out", "photos")  # an existing folder is not a file to overwrite
    with pytest.raises(SourceError, match=f"^output folder {tmp_path / 'no'} does not exist$"):
        check_output("no/out.mp4", "demo")


def test_a_failed_write_undoes_itself_and_says_what_could_not_be_written(tmp_path):
    from emotion.sources import write_or_undo
    undone = []
    with (pytest.raises(SourceError, match="^cannot write x.log: No space left on device$") as raised,
          write_or_undo("x.log", lambda: undone.append(True))):
        raise OSError(28, "No space left on device")
    assert undone == [True] and isinstance(raised.value.__cause__, OSError)
    with pytest.raises(SourceError, match="^cannot write y.log: odd$"), write_or_undo("y.log", lambda: None):
        raise OSError("odd")
    with write_or_undo("z.log", lambda: undone.append("no")):
        pass
    assert undone == [True]


def test_a_window_needs_a_display_on_linux(monkeypatch):
    from emotion.sources import has_display
    monkeypatch.setattr(sys, "platform", "linux")
    for display, wayland, expected in ((None, None, False), (":0", None, True), (None, "wayland-0", True), ("", "", False)):
        for name, value in (("DISPLAY", display), ("WAYLAND_DISPLAY", wayland)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        assert has_display() is expected
    monkeypatch.setattr(sys, "platform", "darwin")
    assert has_display() is True


def test_a_camera_gets_exactly_its_retries_in_a_row_even_before_its_first_frame():
    class SlowStart(StoppingCamera):
        def __init__(self, failures):
            super().__init__(frames=3)
            self.failures = failures

        def read(self):
            if self.failures:
                self.failures -= 1
                return False, None
            return super().read()
    for failures, frames in ((2, 3), (3, 0)):  # retries=2: two failures are waited out, a third ends it
        source = Source("camera", _camera_frames(SlowStart(failures), retries=2, retry_wait=0.001), 30.0, (4, 4))
        got = [frame for _, frame in source.frames()]
        assert (len(got) > 0) == (frames > 0) and source.stopped_early == "camera stopped delivering frames"
    source = Source("camera", _camera_frames(SlowStart(20), retry_wait=0.001), 30.0, (4, 4))  # 20 by default
    assert len([frame for _, frame in source.frames()]) > 0
    source = Source("camera", _camera_frames(SlowStart(21), retry_wait=0.001), 30.0, (4, 4))
    assert [frame for _, frame in source.frames()] == []


def test_a_stream_left_early_releases_its_capture(monkeypatch):
    capture = FakeCapture(frames=1000, delay=0.002)
    fake_captures(monkeypatch, capture)
    stream = open_source("rtsp://cam/live", reconnect_s=0.5)
    frames = stream.frames()
    next(frames)
    next(frames)
    frames.close()  # the loop stops reading (q pressed, --max-frames reached)
    assert capture.released and capture.left > 0 and stream.stopped_early is None


def test_an_image_folder_sink_may_exist_and_a_refused_write_is_a_source_error(tmp_path, monkeypatch):
    from emotion.sources import ImageSink
    (tmp_path / "out").mkdir()
    sink = ImageSink(tmp_path / "out", folder=True)  # a second run into the same folder

    def refused(path, mode):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr("emotion.sources.open", refused, raising=False)
    with pytest.raises(SourceError, match=f"^cannot write {tmp_path / 'out' / 'a.png'}: Permission denied$"):
        sink.write(np.zeros((4, 4, 3), np.uint8), "a.png")


def test_a_folder_run_finds_its_videos_by_name_and_writes_one_file_per_input_into_a_folder(tmp_path, monkeypatch):
    from emotion.sources import batch_folder, batch_path, folder_videos
    for name in ("b.mp4", "A.MOV", ".hidden.mp4", "notes.txt", "c.avi.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "d.mkv").mkdir()
    assert [file.name for file in folder_videos(tmp_path)] == ["A.MOV", "b.mp4"]
    monkeypatch.chdir(tmp_path)
    assert batch_path("annotated.avi", "clip1", ".mp4") == Path("annotated/clip1.avi") and Path("annotated").is_dir()
    assert batch_path("logs", "clip1", ".jsonl") == Path("logs/clip1.jsonl") and Path("logs").is_dir()
    assert batch_folder("logs") == Path("logs"), "an existing folder is used as it is"
    assert batch_path(None, "clip1", ".mp4") is None


def test_a_live_source_that_ends_still_gives_its_last_frame():
    camera = StoppingCamera(frames=3)
    source = Source("camera", _camera_frames(camera, retries=2, retry_wait=0.01), 30.0, (4, 4))
    frames = []
    for _, frame in source.frames():
        frames.append(frame)
        time.sleep(0.03)  # a slow loop: frames are skipped, but never the last one
    assert frames[-1][0, 0, 0] == 0, "the camera's last frame (value 0) reaches the loop"


def test_an_output_image_name_opencv_cannot_encode_is_one_clear_error(tmp_path):
    from emotion.sources import ImageSink
    with pytest.raises(SourceError, match="unknown image extension"):
        ImageSink(tmp_path / "annotated.xyz", folder=False).write(np.zeros((8, 8, 3), np.uint8))


def test_a_video_is_read_ahead_on_a_thread_every_frame_in_order_and_the_thread_ends_with_the_loop(tmp_path):
    import threading

    from emotion.sources import READ_AHEAD, open_source
    # Each frame's number is where its bright band is, so order and gaps show.
    frames = [np.zeros((32, 320, 3), np.uint8) for _ in range(40)]
    for number, frame in enumerate(frames):
        frame[:, 8 * number:8 * number + 8] = 255
    video = write_video(tmp_path / "numbered.avi", frames, fps=10.0)
    before = threading.active_count()
    read = [int(frame.mean(axis=(0, 2)).argmax()) // 8 for _, frame in open_source(video).frames()]
    assert read == list(range(40))
    stream = open_source(video).frames()
    next(stream)
    time.sleep(0.2)  # the reader fills its queue, then waits on it
    assert threading.active_count() == before + 1
    stream.close()  # a loop stopped early (q, --max-frames) stops the reader too
    assert threading.active_count() == before and READ_AHEAD >= 2
