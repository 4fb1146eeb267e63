"""How fast the live loop is, stage by stage, against the naive way (full-size Haar, model.predict per face).

    python benchmarks/live_loop.py                          # generated 1-face and 3-face 640x480 videos
    python benchmarks/live_loop.py --frames 30              # a quick look
    python benchmarks/live_loop.py --video clip.mp4 --video other.mp4
"""
import itertools
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()

import cv2
import keras
import numpy as np
import tensorflow as tf

from benchmarks.common import benchmark_parser, command_line, positive
from emotion.detect import HAAR_WINDOW, CascadeError, HaarCascade
from emotion.draw import draw_faces, draw_fps
from emotion.model import ModelFileError, load_model
from emotion.recognizer import EmotionRecognizer
from emotion.sources import SourceError, demo_frames, open_source, sample_face
from emotion.track import FaceTracker

SCAN, NEAR = "detect, whole-frame search", "detect, near the followed faces"
STAGES = ("decode", "detect", SCAN, NEAR, "crop and compare", "classify per face", "track", "draw", "whole frame")
SAME_CODE = ("decode", "crop and compare", "track", "draw")
FPS = 30.0  # the generated videos' rate, and the one delays are quoted at


def astronaut():
    from skimage import data
    # The whole picture is mostly suit and flag (a 95 px face in 512); cropped to head and shoulders
    # it is framed like the Grace Hopper photo, so the two faces come out the same size in the video.
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:277, 115:335]


def write_video(path, frames):
    # Written and read back as .mp4 so the decode stage costs what a real file costs.
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (640, 480))
    if not writer.isOpened():
        raise SourceError(f"cannot write {path} with the mp4v codec")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def predict_per_face(model, classes):
    """The naive classifier: one model.predict call per face."""
    def scores(faces, shifted=False):
        rows = [model.predict(face[None], verbose=0)[0] for face in faces]
        return np.array(rows, np.float32).reshape(len(faces), classes)
    return scores


class ScanCounter:
    """Counts a HaarCascade's whole-frame searches, its detect() wrapped in place: find_faces chooses per
    frame between a whole-frame search and searches near the followed faces, and does not say which."""

    def __init__(self, detector):
        self.count, search = 0, detector.detect

        def detect(gray):
            self.count += 1
            return search(gray)
        detector.detect = detect


class StageClock:
    """Seconds spent in each stage of the current frame, and when each stage was first entered in it (calls):
    timed(stage, function) is function, timed; on_call sees its arguments first."""

    def __init__(self):
        self.seconds, self.calls = {}, {}

    def timed(self, stage, function, on_call=None):
        def run(*args, **kwargs):
            if on_call:
                on_call(*args, **kwargs)
            self.calls.setdefault(stage, time.perf_counter())
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return run


def run_loop(recognizer, path, frames, scans):
    """({stage: [seconds per frame]}, boxes found per frame, faces shown per frame, (raw, shown) label of
    the largest face on frames with both).

    The frame path as test.py runs it (recognizer.frames over the video, read ahead), then the overlay drawn as a
    window shows it; each stage timed by wrapping the recognizer's and tracker's own methods for this run. scans
    is the ScanCounter of the cascade it searches whole frames with.
    """
    clock, tracker, found, raw_labels = StageClock(), recognizer.tracker(), [], []
    names = recognizer.class_names

    def given_to_tracker(boxes, scores, *rest):
        found.append(len(boxes))
        largest = int(np.argmax([w * h for _, _, w, h in boxes])) if len(boxes) else None
        raw_labels.append(None if largest is None else names[int(np.argmax(scores[largest]))])
    crops = []
    wrapped = [(recognizer, "process", "process", None), (recognizer, "find_faces", "detect", None),
               (recognizer.detector, "is_face", "check", None),
               (recognizer, "scores", "classify", lambda faces, *rest: crops.append(len(faces))),
               (tracker, "update", "track", given_to_tracker)]
    before = [vars(owner).get(method) for owner, method, _, _ in wrapped]  # an instance's own, as the naive path's
    for owner, method, stage, on_call in wrapped:
        setattr(owner, method, clock.timed(stage, getattr(owner, method), on_call))
    times = {stage: [] for stage in STAGES}
    shown, labels, fps = [], [], 0.0
    stream = recognizer.frames(open_source(path), tracker, max_frames=frames)
    try:
        while True:
            clock.seconds, clock.calls, scanned = {}, {}, scans.count
            crops.clear()
            start = time.perf_counter()
            frame = next(stream, None)
            if frame is None:
                break
            tracked = time.perf_counter()
            draw_fps(draw_faces(frame.image, frame.faces, names), fps)
            end = time.perf_counter()
            fps = 1 / (end - start)
            seconds = clock.seconds
            check = seconds.get("check", 0.0)  # BlazeFace's check runs inside the tracker's update: detection
            detect = seconds.get("detect", 0.0) + check
            times["detect"].append(detect)
            times[SCAN if scans.count > scanned else NEAR].append(detect)
            track = seconds.get("track", 0.0) - check
            classify = seconds.get("classify", 0.0)
            for stage, value in (("decode", clock.calls["process"] - start), ("track", track), ("draw", end - tracked),
                                 ("crop and compare", seconds["process"] - detect - classify - track),
                                 ("whole frame", end - start)):
                times[stage].append(value)
            if sum(crops):
                times["classify per face"].append(classify / sum(crops))
            shown.append(len(frame.faces))
            if raw_labels[-1] is not None and frame.faces:
                labels.append((raw_labels[-1], frame.faces[0].label))
    finally:
        stream.close()
        for (owner, method, _, _), function in zip(wrapped, before):
            if function is None:
                delattr(owner, method)  # the class's own method again
            else:
                setattr(owner, method, function)
    return times, found, shown, labels


def ms(values, q):
    return f"{np.percentile(values, q) * 1000:.1f}" if values else "-"


def speed_table(paths):
    """Markdown table of {path name: stage times}; the last path is the naive one every ratio divides."""
    fast = list(paths)[:-1]
    rows = ["| stage | " + " | ".join(f"{name} median ms | {name} p95 ms" for name in paths) + " | "
            + " | ".join(f"naive / {name}" for name in fast) + " |",
            "|---" + "|---:|---:" * len(paths) + "|---" * len(fast) + "|"]
    for stage in STAGES:
        times = [paths[name][stage] for name in paths]
        ratios = [f"{np.median(times[-1]) / np.median(t):.1f}x" if t and times[-1] else "-" for t in times[:-1]]
        # Same code on all paths: their ratio shows the noise of the measurement.
        same = " (same code)" if stage in SAME_CODE else ""
        counts = " / ".join(str(len(t)) for t in times)
        label = f"{stage} ({counts} frames)" if stage in (SCAN, NEAR) else stage + same
        rows.append(f"| {label} | " + " | ".join(f"{ms(t, 50)} | {ms(t, 95)}" for t in times) + " | "
                    + " | ".join(ratios) + " |")
    fps = [len(paths[name]["whole frame"]) / sum(paths[name]["whole frame"]) for name in paths]
    rows.append("| end-to-end FPS | " + " | ".join(f"{value:.1f} | " for value in fps) + " | "
                + " | ".join(f"{value / fps[-1]:.1f}x" for value in fps[:-1]) + " |")
    return "\n".join(rows)


def label_changes(labels):
    return sum(a != b for a, b in itertools.pairwise(labels))


def switch_delay(class_names, before, after, settle=30, limit=90):
    """Frames until a FaceTracker's label follows scores that switch from `before` to `after`; None: never."""
    tracker, box = FaceTracker(class_names), [(200, 120, 160, 160)]
    for _ in range(settle):
        tracker.update(box, before[None])
    target = class_names[int(np.argmax(after))]
    for frame in range(1, limit + 1):
        if tracker.update(box, after[None])[0].label == target:
            return frame
    return None


def delay_table(recognizer, photos):
    """Delay of the shown label after a real change: synthetic one-hot rows, then real crops' scores."""
    names = recognizer.class_names
    rows = {name: np.array([faces[0].scores[c] for c in names], np.float32)
            for name, faces in ((name, recognizer.process(photo)) for name, photo in photos.items()) if faces}
    one_hot = np.eye(len(names), dtype=np.float32)
    pairs = [("synthetic", one_hot[0], "synthetic", one_hot[1])]
    pairs += [(a, rows[a], b, rows[b]) for a in rows for b in rows if np.argmax(rows[a]) != np.argmax(rows[b])]
    out = ["| scores switch from -> to | frames | seconds at 30 FPS |", "|---|---:|---:|"]
    for a, before, b, after in pairs:
        frames = switch_delay(names, before, after)
        top = [f"{names[int(np.argmax(row))]} {row.max():.0%}" for row in (before, after)]
        out.append(f"| {a} ({top[0]}) -> {b} ({top[1]}) | {frames or 'never'} | "
                   f"{f'{frames / FPS:.2f}' if frames else '-'} |")
    if len(pairs) == 1:
        out.append("| (every real crop gets the same top class: only the synthetic switch applies) | | |")
    return "\n".join(out)


def detection_table(detection):
    """Per video and path: faces shown (after confirmation) and boxes found, against the faces on screen."""
    out = ["| video | path | frames x faces | faces shown | boxes found | extra: shown / boxes |",
           "|---|---|---:|---:|---:|---:|"]
    for video, faces, path, found, shown in detection:
        if faces is None:  # a --video file: how many faces it shows is unknown
            out.append(f"| {video} | {path} | ? | {sum(shown)} | {sum(found)} | - |")
            continue
        hits = [sum(min(n, faces) for n in counts) for counts in (shown, found)]
        extra = [sum(max(n - faces, 0) for n in counts) for counts in (shown, found)]
        total = faces * len(shown)
        out.append(f"| {video} | {path} | {total} | {hits[0]} ({hits[0] / total:.1%}) "
                   f"| {hits[1]} ({hits[1] / total:.1%}) | {extra[0]} / {extra[1]} |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--frames", type=positive, default=300, help="frames per video (generated ones and --video)")
    parser.add_argument("--video", type=Path, action="append", default=[], help="also time this video file")
    parser.add_argument("--scan-every", type=positive, default=1,
                        help="also time the live loop searching the whole frame every n-th frame (test.py --scan-every)")
    args = parser.parse_args(argv)
    photos = {"Grace Hopper": sample_face, "astronaut": astronaut, "mirrored": lambda: cv2.flip(sample_face(), 1)}
    try:
        import skimage  # noqa: F401
    except ImportError:
        photos["astronaut"] = lambda: cv2.flip(sample_face()[60:460, 56:456], 1)  # zoomed in: a bigger face
        print("notice: scikit-image is not installed (pip install scikit-image); "
              "the 3-face video shows a zoomed Grace Hopper copy instead of the astronaut")

    with tempfile.TemporaryDirectory() as folder:
        try:
            recognizer = EmotionRecognizer(model=args.model)  # the live loop exactly as shipped
            other = EmotionRecognizer(model=args.model, scan_every=args.scan_every)
            # The naive path: the whole frame searched by Haar at full size (min_face at the cascade's own window, as
            # before min_face) in every frame, no BlazeFace check, every face classified by model.predict alone.
            naive = EmotionRecognizer(model=args.model, verify=False, scan_every=1, max_change=0)
            naive_detector = naive.detector.cascade = HaarCascade(min_face=HAAR_WINDOW, scale_factor=1.1)
            extra = [(path.name, None, path) for path in args.video if open_source(path)]  # bad files fail now
            videos = [("1 face", 1, write_video(Path(folder) / "one.mp4", demo_frames(args.frames))),
                      ("3 faces", 3, write_video(Path(folder) / "three.mp4",
                                                 demo_frames(args.frames, faces=tuple(photos.values()))))] + extra
        except (ModelFileError, CascadeError, SourceError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        names = recognizer.class_names
        naive.scores = predict_per_face(load_model(args.model)[0], len(names))
        # First calls trace graphs, build predict functions and load BlazeFace: start-up, not the loop.
        for count in (1, 3):
            naive.scores(np.zeros((count, 48, 48, 1), np.float32))
        for live in (recognizer, other):
            live.detect(sample_face())
        paths = {"shipped": recognizer, f"scan every {args.scan_every}": other, "naive": naive}
        scans = {label: ScanCounter(live.detector.cascade) for label, live in paths.items()}

        haar = recognizer.detector.cascade
        command = command_line(argv)
        print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start\n"
              f"TensorFlow {tf.__version__}, Keras {keras.__version__}, OpenCV {cv2.__version__}\n"
              f"command: {command}\n"
              f"shipped: EmotionRecognizer() as test.py runs it: find_faces with Haar at min_face={recognizer.detector.min_face} "
              f"(scale factor {haar.scale_factor}, min_neighbors {haar.min_neighbors}), the whole frame searched on 1 "
              f"frame in {recognizer.scan_every} and near the followed faces in between, verify={recognizer.detector.checks} "
              f"(BlazeFace checks each new face; timed as detection), one batched {recognizer.runtime} call per "
              f"frame, crop margin {recognizer.margin}, max_change {recognizer.max_change}, FaceTracker update; the "
              "frames read ahead and run through EmotionRecognizer.frames as test.py --no-display runs them\n"
              f"scan every {args.scan_every}: the same with scan_every={other.scan_every}\n"
              f"naive: full-size Haar (min_face={naive_detector.min_face}, scale factor {naive_detector.scale_factor}) "
              "+ model.predict per face, no BlazeFace check\n")
        detection = []
        for name, faces, path in videos:
            # All paths on one video before the next, so a change in background load hits them alike.
            results = {label: run_loop(live, path, args.frames, scans[label]) for label, live in paths.items()}
            table = speed_table({label: result[0] for label, result in results.items()})
            print(f"### {name}: {len(results['shipped'][1])} frames\n\n{table}\n")
            detection += [(name, faces, label, result[1], result[2]) for label, result in results.items()]
            if name == "1 face":
                labels = results["shipped"][3]

    # Per second of the frames that show the face, where both labels exist.
    raw, shown = (label_changes([pair[i] for pair in labels]) / (max(len(labels), 1) / FPS) for i in (0, 1))
    ratio = f"{raw / shown:.1f}x fewer" if shown else ("none either way" if not raw else "all removed")
    darkened = (sample_face() * 0.45).astype(np.uint8)
    confirm_hits = FaceTracker(names).confirm_hits
    print(f"### faces found\n\n{detection_table(detection)}\n\n"
          "On the live loop's paths a new face is shown once BlazeFace agrees, from its first frame; on the naive "
          f"path, which has no such check, after {confirm_hits} detections in a row. A shown face missed by the "
          "detector stays on screen for a few frames.\n\n"
          f"### smoothing on the 1-face video ({len(labels)} frames with a face found and shown; same face, same "
          f"expression)\n\n"
          f"label changes per second: raw scores {raw:.2f}, FaceTracker {shown:.2f} ({ratio})\n\n"
          f"{delay_table(recognizer, {**{n: make() for n, make in photos.items()}, 'darkened': darkened})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
