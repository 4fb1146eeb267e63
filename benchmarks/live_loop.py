"""How fast the live loop is, stage by stage, against the naive way (full-size Haar, model.predict per face).

    python benchmarks/live_loop.py                          # generated 1-face and 3-face 640x480 videos
    python benchmarks/live_loop.py --frames 30              # a quick look
    python benchmarks/live_loop.py --video clip.mp4 --video other.mp4
"""
import argparse
import itertools
import os
import platform
import shlex
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

from emotion.classify import FaceTracker
from emotion.constants import DEFAULT_MODEL_PATH
from emotion.detect import CascadeError, FaceDetector, crop_faces, to_gray
from emotion.draw import draw_faces, draw_fps
from emotion.model import ModelFileError
from emotion.recognizer import EmotionRecognizer
from emotion.sources import SourceError, demo_frames, open_source, sample_face

STAGES = ("decode", "detect", "crop+resize", "classify per face", "track", "draw", "whole frame")
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
    def scores(faces):
        rows = [model.predict(face[None], verbose=0)[0] for face in faces]
        return np.array(rows, np.float32).reshape(len(faces), classes)
    return scores


def run_loop(path, frames, detector, classify, class_names, margin, detect_every=1):
    """({stage: [seconds per frame]}, boxes per frame, (raw label, shown label) of the largest face per frame)."""
    stream = open_source(path).frames()
    tracker = FaceTracker(class_names)
    times = {stage: [] for stage in STAGES}
    counts, labels, fps = [], [], 0.0
    for _ in range(frames):
        marks = [time.perf_counter()]
        item = next(stream, None)
        if item is None:
            break
        frame = item[1]
        marks.append(time.perf_counter())
        gray = to_gray(frame)  # counted as detection: only the detector needs grey
        # As EmotionRecognizer.process with detect_every: the tracker's boxes stand in between detections.
        boxes = np.array(tracker.last_boxes) if tracker.frames % detect_every else detector.detect(gray)
        marks.append(time.perf_counter())
        crops = crop_faces(gray, boxes, margin)
        marks.append(time.perf_counter())
        scores = classify(crops)
        marks.append(time.perf_counter())
        faces = tracker.update(boxes, scores)
        marks.append(time.perf_counter())
        draw_fps(draw_faces(frame, faces, class_names), fps)
        marks.append(time.perf_counter())
        fps = 1 / (marks[-1] - marks[0])
        steps = np.diff(marks).tolist()
        for stage, seconds in zip(STAGES, steps[:3] + [steps[3] / max(len(boxes), 1)] + steps[4:]):
            if stage != "classify per face" or len(boxes):
                times[stage].append(seconds)
        times["whole frame"].append(marks[-1] - marks[0])
        if len(boxes):
            # boxes come largest first, and the tracker keeps their order
            labels.append((class_names[int(np.argmax(scores[0]))], faces[0].label))
        counts.append(len(boxes))
    stream.close()
    return times, counts, labels


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
        ratios = [np.median(times[-1]) / np.median(t) if t and times[-1] else float("nan") for t in times[:-1]]
        # Same code on all paths: their ratio shows the noise of the measurement.
        same = " (same code)" if stage in ("decode", "crop+resize", "track", "draw") else ""
        rows.append(f"| {stage}{same} | " + " | ".join(f"{ms(t, 50)} | {ms(t, 95)}" for t in times) + " | "
                    + " | ".join(f"{ratio:.1f}x" for ratio in ratios) + " |")
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


def detection_table(detection, detect_width):
    """Faces found by the fast path (detecting every frame) against full-size Haar."""
    out = [(f"| video | frames x faces | found at detect_width={detect_width} | found full size | gap (points) "
            "| extra boxes fast / full |"), "|---|---:|---:|---:|---:|---:|"]
    for name, faces, fast, full in detection:
        if faces is None:  # a --video file: how many faces it shows is unknown
            out.append(f"| {name} | ? | {sum(fast)} boxes | {sum(full)} boxes | - | - |")
            continue
        found = [sum(min(n, faces) for n in counts) for counts in (fast, full)]
        extra = [sum(max(n - faces, 0) for n in counts) for counts in (fast, full)]
        total = faces * len(fast)
        out.append(f"| {name} | {total} | {found[0]} ({found[0] / total:.1%}) | {found[1]} ({found[1] / total:.1%}) "
                   f"| {(found[0] - found[1]) / total * 100:+.1f} | {extra[0]} / {extra[1]} |")
    return "\n".join(out)


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="the .h5 model")
    parser.add_argument("--frames", type=positive, default=300, help="frames per video (generated ones and --video)")
    parser.add_argument("--video", type=Path, action="append", default=[], help="also time this video file")
    parser.add_argument("--detect-every", type=positive, default=2,
                        help="also time the fast path detecting on every n-th frame only (test.py --detect-every)")
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
            recognizer = EmotionRecognizer(model=args.model)  # the fast path exactly as shipped
            naive_detector = FaceDetector(detect_width=None, scale_factor=1.1)
            extra = [(path.name, None, path) for path in args.video if open_source(path)]  # bad files fail now
            videos = [("1 face", 1, write_video(Path(folder) / "one.mp4", demo_frames(args.frames))),
                      ("3 faces", 3, write_video(Path(folder) / "three.mp4",
                                                 demo_frames(args.frames, faces=tuple(photos.values()))))] + extra
        except (ModelFileError, CascadeError, SourceError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        names = recognizer.class_names
        naive_classify = predict_per_face(recognizer.model, len(names))
        # First calls trace graphs and build predict functions: start-up, not the loop.
        for count in (1, 3):
            recognizer.classifier.scores(np.zeros((count, 48, 48, 1), np.float32))
            naive_classify(np.zeros((count, 48, 48, 1), np.float32))

        command = "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
        print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start\n"
              f"TensorFlow {tf.__version__}, Keras {keras.__version__}, OpenCV {cv2.__version__}\n"
              f"command: {command}\n"
              f"fast: FaceDetector(detect_width={recognizer.detector.detect_width}) + one batched {recognizer.runtime} "
              f"call per frame; naive: full-size Haar + model.predict per face; crop margin {recognizer.margin}\n")
        detection = []
        for name, faces, path in videos:
            # Both paths on one video before the next, so a change in background load hits both alike.
            fast = run_loop(path, args.frames, recognizer.detector, recognizer.classifier.scores, names,
                            recognizer.margin)
            sparse = run_loop(path, args.frames, recognizer.detector, recognizer.classifier.scores, names,
                              recognizer.margin, args.detect_every)
            naive = run_loop(path, args.frames, naive_detector, naive_classify, names, recognizer.margin)
            table = speed_table({"fast": fast[0], f"fast, detect every {args.detect_every}": sparse[0],
                                 "naive": naive[0]})
            print(f"### {name}: {len(fast[1])} frames\n\n{table}\n")
            detection.append((name, faces, fast[1], naive[1]))
            if name == "1 face":
                frames, labels = len(fast[1]), fast[2]

    raw, shown = (label_changes([pair[i] for pair in labels]) / (frames / FPS) for i in (0, 1))
    ratio = f"{raw / shown:.1f}x fewer" if shown else ("none either way" if not raw else "all removed")
    darkened = (sample_face() * 0.45).astype(np.uint8)
    print(f"### faces found\n\n{detection_table(detection, recognizer.detector.detect_width)}\n\n"
          f"### smoothing on the 1-face video ({len(labels)} frames with a face; same face, same expression)\n\n"
          f"label changes per second: raw scores {raw:.2f}, FaceTracker {shown:.2f} ({ratio})\n\n"
          f"{delay_table(recognizer, {**{n: make() for n, make in photos.items()}, 'darkened': darkened})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
