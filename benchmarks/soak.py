"""Soak run: thousands of frames through test.py's live loop, watching memory and speed over time.

    python benchmarks/soak.py                     # 10,000 frames of the generated demo video
    python benchmarks/soak.py --frames 2000 --video my_clip.mp4
"""
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

import cv2

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from benchmarks.common import benchmark_parser
from emotion.sources import demo_frames


def write_video(path, frames, size=(640, 480), fps=30.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for frame in frames:
        writer.write(frame)
    writer.release()


def rss_mb(pid):
    """Resident memory of a process in MB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line")


def main(argv=None):
    parser = benchmark_parser(__doc__, model=False)
    parser.add_argument("--frames", type=int, default=10_000, help="frames to push through the loop")
    parser.add_argument("--video", default=None, help="video to loop over (default: the generated demo)")
    parser.add_argument("--warm-up", type=int, default=500, help="frames before memory is taken as the baseline")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    args = parser.parse_args(argv)
    if not Path("/proc/self/status").exists():
        print("error: this benchmark reads memory from /proc (Linux only)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "soak.mp4"
        if args.video:
            capture = cv2.VideoCapture(args.video)
            source_frames = []
            while (frame := capture.read())[0]:
                source_frames.append(cv2.resize(frame[1], (640, 480)))
            if not source_frames:
                print(f"error: cannot read frames from {args.video}", file=sys.stderr)
                return 2
        else:
            source_frames = list(demo_frames(count=300))
        # The loop meets a long stream of moving faces, not one cached frame.
        write_video(video, islice(cycle(source_frames), args.frames))
        log = Path(folder) / "soak.jsonl"
        command = [sys.executable, str(repo_root / "test.py"), "--source", str(video), "--no-display",
                   "--log", str(log), "--output", str(Path(folder) / "out.mp4")]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = []  # (seconds, frames done, RSS MB)
        start = time.perf_counter()
        while process.poll() is None:
            time.sleep(args.interval)
            try:
                done = log.read_bytes().count(b"\n") if log.exists() else 0
                samples.append((time.perf_counter() - start, done, rss_mb(process.pid)))
            except (OSError, RuntimeError):
                break
        process.wait()

    if process.returncode != 0 or not samples:
        print(f"error: test.py exited with {process.returncode}", file=sys.stderr)
        return 1
    after_warm_up = [sample for sample in samples if sample[1] >= args.warm_up]
    baseline, final, peak = after_warm_up[0][2], after_warm_up[-1][2], max(s[2] for s in after_warm_up)
    # Speed in the first and last fifths of the run (after warm-up): a slowdown shows as a falling ratio.
    fifth = max(len(after_warm_up) // 5, 2)

    def fps(window):
        return (window[-1][1] - window[0][1]) / max(window[-1][0] - window[0][0], 1e-9)

    early, late = fps(after_warm_up[:fifth]), fps(after_warm_up[-fifth:])
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores")
    print(f"command: python benchmarks/soak.py {shlex.join(argv if argv is not None else sys.argv[1:])}")
    print(f"frames processed: {samples[-1][1]} of {args.frames}")
    print(f"resident memory after {args.warm_up} frames: {baseline:.0f} MB; at the end: {final:.0f} MB; "
          f"growth {final - baseline:+.1f} MB (peak {peak:.0f} MB)")
    print(f"speed: {early:.1f} FPS early, {late:.1f} FPS late (late/early = {late / early:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
