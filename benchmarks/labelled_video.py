"""What the whole live path (video, Haar, crop, classifier) loses against feeding FER test images straight in.

    python benchmarks/labelled_video.py
    python benchmarks/labelled_video.py --faces-per-class 10 --margins 0,0.1,0.2,0.3
    python benchmarks/labelled_video.py --data-dir ../shared/fer2013/test --per-frame 2
    python benchmarks/labelled_video.py --scan-every 1 --frames-per-face 30
    python benchmarks/labelled_video.py --votes none       # FER2013's folder labels instead of FER+'s majority
"""
import inspect
import os
import platform
import sys
import tempfile
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()

import cv2
import numpy as np

from benchmarks import common
from emotion.classify import crop_faces
from emotion.data import DatasetError
from emotion.detect import CascadeError, to_gray
from emotion.model import ModelFileError
from emotion.recognizer import EmotionRecognizer
from emotion.sources import SourceError, open_source


def run_live_path(source, truth, recognizer, labels, margins):
    """The live loop as shipped (EmotionRecognizer.frames with a FaceTracker) on the video: the faces it shows
    that are on screen as (face index, frame number), shown faces on no face, frames decoded, shown labels
    that are right, and {margin: right per-frame labels of the shown faces, cropped at that margin}."""
    tracker = recognizer.tracker()
    found, wrong_boxes, decoded, shown_right = [], 0, 0, 0
    correct = dict.fromkeys(margins, 0)
    # One pass, frames never kept: 800 frames of 640x480 would hold 700 MB.
    for frame, faces in zip(recognizer.frames(source, tracker), truth):
        frame, shown = frame.image, frame.faces
        pairs = common.match([face.box for face in shown], faces)
        wrong_boxes += len(shown) - len(pairs)
        found += [(index, decoded) for index, _ in pairs]
        decoded += 1
        if not pairs:
            continue
        indices = [index for index, _ in pairs]
        shown_right += sum(shown[d].label == recognizer.class_names[labels[index]] for index, d in pairs)
        # The shown label is smoothed over frames; these are each frame's own, at the shown box.
        gray = to_gray(frame)
        for margin in margins:
            crops = crop_faces(gray, np.array([shown[d].box for _, d in pairs]), margin)
            correct[margin] += int(np.sum(np.argmax(recognizer.classifier.scores(crops), axis=1) == labels[indices]))
    return found, wrong_boxes, decoded, shown_right, correct


def main(argv=None) -> int:
    parser = common.benchmark_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=repo_root / "../shared/fer2013/test",
                        help="test images as <class>/*.jpg")
    parser.add_argument("--votes", default=str(repo_root / "../shared/ferplus/test.csv"),
                        help="FER+ votes of --data-dir's images: faces are drawn and scored by FER+'s majority label; "
                        "'none' takes the folder labels")
    parser.add_argument("--faces-per-class", type=common.positive, default=60, help="faces drawn from each class")
    parser.add_argument("--per-frame", type=common.positive, default=3, help="faces shown at once")
    parser.add_argument("--frames-per-face", type=common.positive, default=8, help="frames each face stays on screen")
    parser.add_argument("--margins", type=common.numbers, default="0,0.1,0.2", help="crop margins to compare")
    shipped = inspect.signature(EmotionRecognizer).parameters
    parser.add_argument("--scan-every", type=common.positive, default=shipped["scan_every"].default,
                        help="search the whole frame every n-th frame, in between only near the followed faces "
                             "(test.py --scan-every)")
    parser.add_argument("--no-verify", action="store_true",
                        help="show Haar's faces without BlazeFace's check (test.py --no-verify)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the face draw and the layout")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        try:
            if not args.data_dir.is_dir():
                raise DatasetError(f"data folder {args.data_dir} does not exist (pass --data-dir with <class>/*.jpg)")
            # Otherwise as shipped: min_face, margin, runtime.
            recognizer = EmotionRecognizer(model=args.model, scan_every=args.scan_every, verify=not args.no_verify)
            names = recognizer.class_names
            votes = None if args.votes.lower() == "none" else args.votes
            images, labels = common.sample_faces(args.data_dir, names, args.faces_per_class, args.seed, votes)
            path = Path(folder) / "labelled.mp4"
            truth = common.write_video(path, common.make_video(images, args.per_frame, args.frames_per_face, args.seed))
            source = open_source(path)
        # A missing folder or model deserves one line, not a traceback.
        except (DatasetError, ModelFileError, CascadeError, SourceError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        found, wrong_boxes, decoded, shown_right, correct = run_live_path(source, truth, recognizer, labels,
                                                                          args.margins)

    direct = np.argmax(recognizer.classifier.scores(images[..., None].astype(np.float32)), axis=1) == labels
    appearances = sum(len(faces) for faces in truth[:decoded])
    # A new face is shown after confirm_hits detections in a row: its first frames cannot count as found,
    # unless it took over the track of the face before it in the same place.
    tracker = recognizer.tracker()
    confirm_hits, hold = tracker.confirm_hits, tracker.hold
    showable = sum(len(faces) for number, faces in enumerate(truth[:decoded])
                   if number % args.frames_per_face >= confirm_hits - 1)
    found_later = sum(number % args.frames_per_face >= confirm_hits - 1 for _, number in found)
    found_indices = [index for index, _ in found]
    found_direct = direct[found_indices].mean() if found else float("nan")
    rows = []
    for margin, right in correct.items():
        accuracy = right / len(found) if found else float("nan")
        default = " (EmotionRecognizer default)" if margin == recognizer.margin else ""
        rows.append(f"| {margin:g}{default} | {accuracy:.1%} | {(accuracy - direct.mean()) * 100:+.1f} | "
                    f"{(accuracy - found_direct) * 100:+.1f} | {right / appearances:.1%} |")
    shown_accuracy = shown_right / len(found) if found else float("nan")

    command = common.command_line(argv)
    haar = recognizer.detector.cascade
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; OpenCV {cv2.__version__}\n"
          f"command: {command}\n"
          f"{len(images)} FER faces from {args.data_dir.resolve()} ({', '.join(names)}), seed {args.seed}, labelled "
          f"by {'FER+ majority' if votes else 'their folder (FER2013)'}\n"
          f"video: {decoded} frames {common.FRAME_SIZE[0]}x{common.FRAME_SIZE[1]}, {args.per_frame} faces at a time, "
          f"{common.FACE_SIZES[0]}-{common.FACE_SIZES[1]} px wide with a {common.BORDER:.0%} border, each shown "
          f"{args.frames_per_face} frames: {appearances} ground-truth faces\n"
          f"live path: EmotionRecognizer.process with a FaceTracker, as test.py runs it: Haar at "
          f"min_face={recognizer.detector.min_face} (scale factor {haar.scale_factor}, min_neighbors {haar.min_neighbors}), "
          f"scan_every={recognizer.scan_every}, verify={recognizer.detector.checks}, margin={recognizer.margin}, "
          f"{recognizer.runtime}; a shown face matches a true one at IoU >= 0.3\n\n"
          f"faces shown: {len(found)} of {appearances} ({len(found) / appearances:.1%}); "
          f"after each face's first {confirm_hits - 1} frames (a new face is shown "
          f"{'once BlazeFace confirms it' if recognizer.detector.checks else f'after {confirm_hits} detections in a row'}): "
          f"{found_later} of {showable} ({found_later / showable:.1%}); "
          f"shown faces on no face: {wrong_boxes} (a face that leaves stays shown at its last box for up to "
          f"{hold} frames)\n"
          f"direct accuracy (48x48 FER images straight to the classifier): {direct.mean():.1%} on all "
          f"{len(images)} faces, {found_direct:.1%} on the shown ones\n"
          f"shown label (smoothed over frames by the FaceTracker, margin {recognizer.margin:g}): "
          f"{shown_accuracy:.1%} right on the shown faces ({(shown_accuracy - found_direct) * 100:+.1f} points "
          f"vs direct on the same faces); a face that takes over the track of the one before it in the same "
          f"place starts from that face's scores\n\n"
          "| crop margin | end-to-end accuracy, shown faces, each frame's own label | gap vs direct, all (points) "
          "| gap vs direct, same faces (points) | accuracy, misses counted wrong |\n"
          "|---|---:|---:|---:|---:|\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
