"""How test.py --cluster scales: the same archive of real clips on one worker, then on two, one thread each.

    python benchmarks/cluster_scaling.py                              # 8 clips made from ../shared/real/videos
    python benchmarks/cluster_scaling.py --clips 2 --max-frames 20    # a quick check that it runs

The archive: the real clips (596x336 stock footage) copied in turn until there are --clips of them, in a temporary
folder. For each worker count, a new scheduler and that many workers start on 127.0.0.1, each a process of its
own as `dask worker` is on another machine, and the same `test.py --source ARCHIVE --no-display --cluster ...
--log ...` runs; its wall time, the tasks' compute time (distributed's task stream) and the logs are kept, and the
logs of the two runs must be the same. Then what bounds the speed-up, measured in this process: loading the model
(once per worker), decoding the videos alone (part of each task's work, whatever the worker count), and the bytes
of faces a video sends back to the client per frame.

On a machine busy with other work the figures say nothing about the project: run it on an idle machine with at
least as many free cores as workers, plus one for the client and the scheduler.
"""
import argparse
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from benchmarks.common import local_cluster
from emotion.cluster import RecognizerSettings, analyze_video, cached_recognizer
from emotion.sources import folder_videos

REAL_VIDEOS = repo_root.parent / "shared" / "real" / "videos"
WORKER_COUNTS = (1, 2)


def make_archive(sources, count, folder):
    """count copies of the source clips, taken in turn, as clip01.mp4, clip02.mp4...; returns the folder."""
    folder.mkdir()
    for number in range(count):
        source = sources[number % len(sources)]
        shutil.copyfile(source, folder / f"clip{number + 1:02d}{source.suffix}")
    return folder


def timed_run(archive, workers, folder, max_frames):
    """(wall seconds of the test.py run, seconds its tasks computed in all, its logs) on `workers` workers."""
    from distributed import Client
    with local_cluster(workers, folder / "dask") as (address, _), Client(address, timeout=30) as client:
        client.wait_for_workers(workers, timeout=120)
        client.get_task_stream()  # starts the scheduler's record of tasks, read back below
        command = [sys.executable, str(repo_root / "test.py"), "--source", str(archive), "--no-display",
                   "--cluster", address, "--log", str(folder / "logs.csv"),
                   *(["--max-frames", str(max_frames)] if max_frames else [])]
        started = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if run.returncode != 0:
            raise SystemExit(f"error: {' '.join(command)} failed:\n{run.stderr}")
        compute = sum(part["stop"] - part["start"] for task in client.get_task_stream()
                      for part in task["startstops"] if part["action"] == "compute")
    logs = {path.name: path.read_bytes() for path in sorted((folder / "logs").glob("*.jsonl"))}
    return wall, compute, logs


def decode_seconds(videos, max_frames):
    """(seconds, frames) to decode the archive's frames alone, in one thread, as each task does before its work."""
    started, frames = time.perf_counter(), 0
    for video in videos:
        capture = cv2.VideoCapture(str(video))
        for _ in range(max_frames or sys.maxsize):
            if not capture.read()[0]:
                break
            frames += 1
        capture.release()
    return time.perf_counter() - started, frames


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=REAL_VIDEOS, help="folder of the clips to make the archive of")
    parser.add_argument("--clips", type=int, default=8, help="videos in the archive")
    parser.add_argument("--max-frames", type=int, default=None, help="frames of each video (test.py --max-frames)")
    args = parser.parse_args(argv)
    sources = folder_videos(args.videos) if args.videos.is_dir() else []
    if not sources:
        raise SystemExit(f"error: no videos in {args.videos}")
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load:.1f}"
          + (" -- other work is running: these figures are not the project's" if load > 0.5 else ""))

    with tempfile.TemporaryDirectory() as temporary:
        temporary = Path(temporary)
        archive = make_archive(sources, args.clips, temporary / "archive")
        runs = {workers: timed_run(archive, workers, temporary / f"{workers}-workers", args.max_frames)
                for workers in WORKER_COUNTS}
        decode, frames = decode_seconds(folder_videos(archive), args.max_frames)

        started = time.perf_counter()
        settings = RecognizerSettings(None, None, 32, "haar", True, 15, True, "litert", ())
        cached_recognizer(settings)
        model_load = time.perf_counter() - started
        shortest = min(folder_videos(archive), key=lambda video: video.stat().st_size)
        answer = analyze_video(str(shortest), settings, args.max_frames, True, False, None)
        bytes_per_frame = len(pickle.dumps(answer)) / max(len(answer.frames), 1)

    assert runs[1][2] == runs[2][2], "the logs differ between 1 and 2 workers"
    print(f"archive: {args.clips} clips from {args.videos}, {frames} frames in all")
    one = runs[1][0]
    for workers, (wall, compute, _) in runs.items():
        speedup = one / wall
        print(f"{workers} worker(s): {wall:6.1f} s wall, {frames / wall:6.1f} frames/s, tasks computing "
              f"{compute:6.1f} s ({compute / (workers * wall):.0%} of the workers' time); speed-up {speedup:.2f}, "
              f"{speedup / workers:.0%} per worker")
    print("what bounds it:")
    print(f"  model load: {model_load:.2f} s, once per worker (the shipped model from its LiteRT file)")
    print(f"  video decode alone: {1000 * decode / frames:.1f} ms a frame, of "
          f"{1000 * runs[1][1] / frames:.1f} ms a frame of a task's work (the rest: faces and scores)")
    print(f"  result transfer: {bytes_per_frame:.0f} bytes of faces a frame sent back, "
          f"{bytes_per_frame * frames / 1e6:.2f} MB for the archive")
    print("  the rest of the wall time: the client and the scheduler starting, and the last video's task running "
          "alone while the other worker has nothing left")


if __name__ == "__main__":
    main()
