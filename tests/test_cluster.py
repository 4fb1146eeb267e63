"""test.py --cluster on a real Dask cluster on loopback: a scheduler and two workers, each a process of its own."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import matplotlib
import pytest

from benchmarks.common import local_cluster
from tests.conftest import (
    CLASSES,
    ROOT,
    assert_one_line_error,
    run_script,
    save_narrow_model,
    user_environment,
    write_video,
)

pytest.importorskip("distributed")

# Frames of the video that a worker is killed in the middle of: enough that it is still running when the test sees
# it has started, on a busy machine too.
LONG_FRAMES = 240


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A folder as an archive holds it: two short videos and a long one (the demo's face, moving), a video that
    cannot be read, and images, one of them unreadable too."""
    from emotion.sources import demo_frames
    folder = tmp_path_factory.mktemp("cluster") / "archive"
    folder.mkdir()
    frames = list(demo_frames(count=LONG_FRAMES, size=(320, 240)))
    write_video(folder / "a.mp4", frames[:30])
    write_video(folder / "b.avi", frames[90:120], fps=25.0)
    write_video(folder / "long.mp4", frames)
    (folder / "broken.mp4").write_bytes((folder / "a.mp4").read_bytes()[:300])
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    cv2.imwrite(str(folder / "hopper.png"), hopper)
    (folder / "m_unreadable.png").write_bytes(b"not a png")
    cv2.imwrite(str(folder / "small.jpg"), cv2.resize(hopper, (200, 170)))
    return folder


def read_logs(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).glob("*.csv"))}


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory):
    """The logs of a --jobs 1 run of the archive (with the shipped model, as all runs here)."""
    logs = tmp_path_factory.mktemp("reference") / "logs.csv"
    result = run_script("test.py", "--source", archive, "--no-display", "--jobs", 1, "--log", logs)
    assert result.returncode == 2, result.stderr  # broken.mp4
    assert sorted(read_logs(logs.with_suffix(""))) == ["a.csv", "b.csv", "images.csv", "long.csv"]
    return read_logs(logs.with_suffix(""))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two one-thread workers on 127.0.0.1, with the project importable as an install makes it;
    the workers run without a nanny, so that killing one's process kills the worker. Yields its address, a client
    to look at it, and {worker address: its process}."""
    from distributed import Client
    with (local_cluster(2, tmp_path_factory.mktemp("dask"), user_environment()) as (address, processes),
          Client(address, timeout=30) as client):
        client.wait_for_workers(2, timeout=60)
        pids = client.run(os.getpid)
        workers = {worker: next(process for process in processes if process.pid == pid)
                   for worker, pid in pids.items()}
        yield SimpleNamespace(address=address, client=client, workers=workers)


def start_client(folder, address, *options):
    """test.py --cluster on the archive beside folder/archive, from folder, with relative paths (the workers' own
    working folder is another)."""
    return subprocess.Popen([sys.executable, str(ROOT / "test.py"), "--source", "archive", "--no-display",
                             "--log", "logs.csv", "--cluster", address, *options],
                            cwd=folder, env=user_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def until(condition, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


@pytest.mark.option("--cluster")
def test_a_worker_killed_mid_video_leaves_its_video_to_the_other_and_the_logs_are_those_of_jobs_1(
        cluster, archive, reference, tmp_path):
    (tmp_path / "archive").symlink_to(archive)
    client_run = start_client(tmp_path, cluster.address, "--output", "annotated")

    def worker_mid_long_video():
        partial = tmp_path / "annotated" / ".long.partial.mp4"
        if partial.is_file():
            return next((worker for worker, keys in cluster.client.processing().items()
                         if any(key.startswith("long.mp4-") for key in keys)), None)
        return None

    victim = until(worker_mid_long_video, client_run)
    cluster.workers[victim].send_signal(signal.SIGKILL)
    assert cluster.workers[victim].wait(timeout=30) == -signal.SIGKILL
    assert not (tmp_path / "annotated" / "long.mp4").exists(), "killed only after the video was done"
    stdout, stderr = client_run.communicate(timeout=300)

    assert client_run.returncode == 2, stderr  # broken.mp4, as with --jobs 1
    assert "archive: 4 of 5 run(s) done; failed: broken.mp4" in stdout
    assert [line for line in stderr.splitlines() if "error" in line] == [
        f"error: {archive / 'broken.mp4'} is neither an image nor a video that OpenCV can read"]
    assert read_logs(tmp_path / "logs") == reference
    assert sorted(path.name for path in (tmp_path / "annotated").iterdir()) == [
        "a.mp4", "b.mp4", "hopper.png", "long.mp4", "small.jpg"]
    assert cv2.VideoCapture(str(tmp_path / "annotated" / "long.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == LONG_FRAMES
    assert [row.split(",")[:2] for row in (tmp_path / "logs.report.csv").read_text().splitlines()] == [
        ["video", "frames"], ["a.mp4", "30"], ["b.avi", "30"], ["long.mp4", str(LONG_FRAMES)]]
    assert (tmp_path / "logs.report.png").stat().st_size > 10_000


@pytest.mark.option("--cluster")
def test_a_client_killed_mid_archive_then_run_again_skips_the_videos_done_and_does_the_rest(
        cluster, archive, reference, tmp_path, live, monkeypatch, capsys):
    import emotion.cluster
    (tmp_path / "archive").symlink_to(archive)
    first = start_client(tmp_path, cluster.address)
    until(lambda: (tmp_path / "logs" / "a.csv").is_file() or (tmp_path / "logs" / "b.csv").is_file(), first)
    first.kill()
    first.communicate()
    done = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "logs").glob("*.csv")}
    assert 1 <= len(done) <= 2 and "long.csv" not in done

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(emotion.cluster, "IMAGES_PER_TASK", 1)  # an image a task: their log joins the chunks
    assert live.main(["--source", "archive", "--no-display", "--log", "logs.csv", "--cluster", cluster.address]) == 2
    out = capsys.readouterr().out
    assert f"archive: skipped, done before: {len(done)} video(s) (--overwrite does them again)" in out
    assert "archive: 4 of 5 run(s) done; failed: broken.mp4" in out
    assert {name: (tmp_path / "logs" / name).stat().st_mtime_ns for name in done} == done, "a video done twice"
    assert read_logs(tmp_path / "logs") == reference
    rows = (tmp_path / "logs.report.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["video", "a.mp4", "b.avi", "long.mp4"]
    assert rows[3].endswith(f",{archive / 'long.mp4'}")


def free_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@pytest.mark.option("--cluster")
def test_an_unreachable_scheduler_is_one_line_within_seconds_and_nothing_is_written(archive, tmp_path):
    started = time.monotonic()
    result = run_script("test.py", "--source", archive, "--no-display", "--log", tmp_path / "logs.csv",
                        "--cluster", f"tcp://127.0.0.1:{free_port()}", timeout=60)
    assert time.monotonic() - started < 30  # the client gives up after 5 s; the rest is Python starting
    assert_one_line_error(result, "no Dask scheduler answered at tcp://127.0.0.1:", code=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.option("--cluster")
def test_cluster_needs_a_folder_of_videos_and_a_log_and_no_jobs(live, archive, capsys):
    for options, message in [(["--source", archive / "a.mp4", "--log", "x.csv"], "a folder holding videos"),
                             (["--source", archive], "--cluster needs --log"),
                             (["--source", archive, "--log", "x.csv", "--jobs", 2], "leave out --jobs")]:
        assert live.main([*map(str, options), "--no-display", "--cluster", "tcp://127.0.0.1:1"]) == 2
        assert message in capsys.readouterr().err


# --- the archive's resume rules, without a cluster ---------------------------------------------------------------


def test_a_report_row_cut_off_mid_write_does_not_count_as_a_video_done(tmp_path):
    from emotion.cluster import ArchiveReport
    report = ArchiveReport(tmp_path / "logs", CLASSES)
    report.keep([])  # as a run starts: the header
    report.add(Path("a.mp4"), [])
    report.add(Path("b.mp4"), [])
    with open(report.path, "a") as file:
        file.write("c.mp4,30,1")  # a run stopped while the row was being written
    assert list(ArchiveReport(tmp_path / "logs", CLASSES).rows) == ["a.mp4", "b.mp4"]
    assert ArchiveReport(tmp_path / "logs", ["happy", "sad"]).rows == {}, "another model's columns: nothing done"


def test_a_video_log_is_put_in_place_only_after_its_report_row_and_a_log_without_its_row_is_not_done(
        tmp_path, monkeypatch):
    from emotion.cluster import ArchiveReport, VideoFaces, videos_to_do, write_video_log
    video, log = Path("a.mp4"), tmp_path / "logs" / "a.jsonl"
    answer = VideoFaces(list(CLASSES), 30.0, [[], []], None)
    report = ArchiveReport(tmp_path / "logs", CLASSES)
    report.keep([])

    def cut_off(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(report, "add", cut_off)
    with pytest.raises(KeyboardInterrupt):
        write_video_log(answer, video, log, report)
    assert not log.exists(), "a log in place means its row is in the report"
    monkeypatch.undo()
    write_video_log(answer, video, log, report)
    assert log.is_file() and list(ArchiveReport(tmp_path / "logs", CLASSES).rows) == ["a.mp4"]
    assert videos_to_do([video], {video: log}, ArchiveReport(tmp_path / "logs", CLASSES), False)[:2] == ([video], [])
    report.path.unlink()  # the log stays, its row is gone: another run's log, refused as test.py refuses it
    assert videos_to_do([video], {video: log}, ArchiveReport(tmp_path / "logs", CLASSES), False) == ([], [], [video])


def test_a_worker_keeps_its_recognizer_until_the_model_is_retrained_in_place(tmp_path):
    from emotion.cluster import RecognizerSettings, cached_recognizer
    from emotion.constants import MAX_CHANGE, MIN_FACE, SCAN_EVERY
    model = save_narrow_model(tmp_path / "m.h5")
    settings = RecognizerSettings(str(model), None, MIN_FACE, "haar", False, SCAN_EVERY, MAX_CHANGE, True, "litert", ())
    first = cached_recognizer(settings)
    assert cached_recognizer(settings) is first
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 10**9))  # written again
    second = cached_recognizer(settings)
    assert second is not first and cached_recognizer(settings) is second
