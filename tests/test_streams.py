"""Network streams, served for real on the loopback address by the ffmpeg that the imageio-ffmpeg wheel ships.

The server is an MJPEG camera over HTTP, as IP cameras and phone-camera apps serve: ffmpeg's test pattern,
320x240 at 10 fps. ffmpeg serves one client, so each test starts its own. Every URL given to test.py carries a
password, which no output may show.
"""
import json
import socket
import subprocess
import sys
import time

import imageio_ffmpeg
import pytest

from emotion.sources import masked
from tests.conftest import ROOT, assert_one_line_error, run_script, user_environment

RECONNECT_S = 2


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Camera:
    def __init__(self):
        self.port, self.process = free_port(), None
        self.url = f"http://user:secret@127.0.0.1:{self.port}/"

    def start(self):
        self.process = subprocess.Popen(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "quiet", "-re", "-f", "lavfi",
             "-i", "testsrc=size=320x240:rate=10", "-c:v", "mjpeg", "-f", "mpjpeg", "-listen", "1",
             f"http://127.0.0.1:{self.port}/"], stdin=subprocess.DEVNULL)

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def camera():
    served = Camera()
    served.start()
    yield served
    served.kill()


def start_live_loop(url, log, *args):
    # Started, not run: the tests act on the server while the run goes on.
    args = ("--source", url, "--no-display", "--log", log, "--reconnect-s", RECONNECT_S, *args)
    return subprocess.Popen([sys.executable, str(ROOT / "test.py"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=user_environment())


def wait_for_frames(log, count, process, timeout=30):
    """Returns once log holds count frames; the run is killed, and the test failed, if it does not in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= count:
            return
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"no {count} frames logged: {process.communicate()[1]}")


def logged_frames(log):
    return [json.loads(line)["frame"] for line in log.read_text().splitlines()]


@pytest.mark.option("--source")
def test_a_stream_is_read_like_a_camera(camera, tmp_path):
    log = tmp_path / "faces.jsonl"
    result = run_script("test.py", "--source", camera.url, "--no-display", "--max-frames", 20, "--log", log,
                        timeout=60)
    assert result.returncode == 0, result.stderr
    assert logged_frames(log) == list(range(20))
    # The wall clock, as for a camera: 20 frames of a 10 fps stream take about 2 s.
    assert json.loads(log.read_text().splitlines()[-1])["time_s"] > 1
    assert result.stderr == "" and "secret" not in result.stdout  # and no progress bar, which goes to stderr


@pytest.mark.happens("A stream drops")
def test_a_stream_that_comes_back_within_reconnect_s_goes_on(camera, tmp_path):
    log = tmp_path / "faces.jsonl"
    run = start_live_loop(camera.url, log, "--max-frames", 60)
    wait_for_frames(log, 10, run)
    camera.kill()
    time.sleep(0.5)  # long enough for the run to find nobody there, and try again
    camera.start()
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    # The killed server had sent a few frames at most that were not yet logged: the rest came after the restart.
    assert logged_frames(log) == list(range(60))
    assert err == "" and "secret" not in out


@pytest.mark.option("--reconnect-s")
@pytest.mark.happens("A stream drops")
def test_a_stream_that_stays_down_ends_the_run_with_one_warning(camera, tmp_path):
    log = tmp_path / "faces.jsonl"
    run = start_live_loop(camera.url, log)
    wait_for_frames(log, 10, run)
    camera.kill()
    dropped = time.monotonic()
    out, err = run.communicate(timeout=30)
    took = time.monotonic() - dropped
    assert run.returncode == 0, err
    assert RECONNECT_S <= took < RECONNECT_S + 8
    assert err.splitlines() == [(f"warning: stream http://user:***@127.0.0.1:{camera.port}/ dropped and did not "
                                 f"come back within {RECONNECT_S} s")]
    frames = logged_frames(log)  # every line whole JSON: the log was closed, not cut off
    assert len(frames) >= 10 and frames == list(range(len(frames)))
    assert "secret" not in out


@pytest.mark.happens("A stream never opens")
@pytest.mark.parametrize("answer", ["nobody listens", "listens but never answers"])
def test_a_stream_that_never_opens_gives_one_line_in_time(answer, tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        if answer == "listens but never answers":
            server.listen()  # the kernel accepts the connection; nothing ever replies
        port = server.getsockname()[1]
        url = f"rtsp://user:secret@127.0.0.1:{port}/live"
        # A subprocess timeout under FFmpeg's own 30 s: without the open limit the test fails, it does not hang.
        result = run_script("test.py", "--source", url, "--no-display", "--reconnect-s", RECONNECT_S,
                            "--log", tmp_path / "faces.jsonl", timeout=25)
    assert result.returncode == 2
    assert_one_line_error(result, f"stream rtsp://user:***@127.0.0.1:{port}/live",
                          f"delivered no frame within {RECONNECT_S} s")
    assert "secret" not in result.stdout + result.stderr


@pytest.mark.happens("A stream drops")
@pytest.mark.parametrize("url, shown", [
    ("rtsp://admin:hunter2@10.0.0.5:554/stream1?channel=1", "rtsp://admin:***@10.0.0.5:554/stream1?channel=1"),
    ("rtsp://admin:p@ss@cam/live", "rtsp://admin:***@cam/live"),
    ("http://:token@cam/video.mjpg", "http://:***@cam/video.mjpg"),
    ("http://viewer@cam/video.mjpg", "http://viewer@cam/video.mjpg"),
    ("udp://127.0.0.1:5000", "udp://127.0.0.1:5000"),
])
def test_messages_show_a_url_without_its_password(url, shown):
    assert masked(url) == shown
