"""What the whole live path (video, Haar, crop, classifier) loses against feeding FER test images straight in.

    python benchmarks/labelled_video.py
    python benchmarks/labelled_video.py --faces-per-class 10 --margins 0,0.1,0.2,0.3
    python benchmarks/labelled_video.py --data-dir ../shared/fer2013/test --per-frame 2
    python benchmarks/labelled_video.py --scan-every 1 --frames-per-face 30
    python benchmarks/labelled_video.py --votes none       # FER2013's folder labels instead of FER+'s majority
"""
import argparse
import inspect
import math
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()

import cv2
import numpy as np

from emotion.constants import DEFAULT_MODEL_PATH, IMAGE_SIZE
from emotion.data import DatasetError, load_folder_by_votes, load_image_folder
from emotion.detect import CascadeError, crop_faces, to_gray
from emotion.model import ModelFileError
from emotion.recognizer import EmotionRecognizer
from emotion.sources import SourceError, open_source
from emotion.track import box_overlap

FRAME_SIZE = (640, 480)
FACE_SIZES = (110, 170)  # face width in the frame, px: a webcam user at arm's length
# FER faces are tight crops; Haar finds more of them with some context around (0.2: 61 of 80, none: 56 of 80).
BORDER = 0.25
DRIFT = 2.0  # px per frame at most, each way


def margin_list(text):
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def sample_faces(root, class_names, per_class, seed, votes=None):
    """uint8 (n, 48, 48) FER faces and their int labels, per_class drawn at random from each class: the class of
    their folder, or with a votes file (file, class, FER+'s ten counts) FER+'s majority label, from every folder."""
    if votes:
        split = load_folder_by_votes(root, votes, class_names)
    else:
        split = load_image_folder(root, class_names)
    random = np.random.default_rng(seed)
    chosen = np.concatenate([random.choice(np.flatnonzero(split.labels == label),
                                           min(per_class, int(np.sum(split.labels == label))), replace=False)
                             for label in range(len(class_names))])
    return split.images[chosen, ..., 0], split.labels[chosen]


def framed(face):
    """The face with a border of its own edge pixels, blurred and fading to mid grey outwards: a stand-in
    for the hair, ears and background a real frame has around a face."""
    pad = round(IMAGE_SIZE * BORDER)
    padded = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE).astype(np.float32)
    size = IMAGE_SIZE + 2 * pad
    rows, cols = np.mgrid[:size, :size]
    # Pixels from the face's edge, outwards: 0 on the face itself.
    outside = np.maximum(np.maximum(pad - cols, cols - (size - 1 - pad)),
                         np.maximum(pad - rows, rows - (size - 1 - pad)))
    fade = np.clip(outside / pad, 0, 1)
    border = (1 - fade) * cv2.GaussianBlur(padded, (0, 0), 3) + fade * 128
    return np.clip(np.where(outside > 0, border, padded), 0, 255).astype(np.uint8)


def paste(frame, tile, x, y):
    """Tile into frame at x, y, clipped where it runs off the frame."""
    height, width = frame.shape[:2]
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + tile.shape[1], width), min(y + tile.shape[0], height)
    if right > left and bottom > top:
        frame[top:bottom, left:right] = tile[top - y:bottom - y, left - x:right - x]


def make_video(images, per_frame, frames_per_face, seed):
    """(BGR frame, [(face index, ground-truth box)]) pairs: per_frame faces at a time, each in a cell
    of a grid of its own, drifting a little for frames_per_face frames."""
    random = np.random.default_rng(seed)
    width, height = FRAME_SIZE
    cols = math.ceil(math.sqrt(per_frame))
    rows = math.ceil(per_frame / cols)
    cell_w, cell_h = width // cols, height // rows
    background = cv2.cvtColor(cv2.GaussianBlur(random.integers(40, 90, (height, width), dtype=np.uint8), (0, 0), 9),
                              cv2.COLOR_GRAY2BGR)
    order = random.permutation(len(images))
    for start in range(0, len(order), per_frame):
        faces = []
        for index, cell in zip(order[start:start + per_frame], random.permutation(cols * rows)):
            size = min(int(random.integers(FACE_SIZES[0], FACE_SIZES[1] + 1)), cell_w, cell_h)
            # The face itself stays inside its cell all along, so faces never overlap; borders may.
            room = max((min(cell_w, cell_h) - size) / 2 - DRIFT * frames_per_face, 0)
            centre = np.array([(cell % cols + 0.5) * cell_w, (cell // cols + 0.5) * cell_h])
            centre += random.uniform(-room, room, 2)
            tile = framed(images[index])
            side = round(tile.shape[0] * size / IMAGE_SIZE)
            tile = cv2.cvtColor(cv2.resize(tile, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
            faces.append((index, tile, centre - size / 2, random.uniform(-DRIFT, DRIFT, 2), size))
        for step in range(frames_per_face):
            frame, boxes = background.copy(), []
            for index, tile, corner, velocity, size in faces:
                x, y = np.round(corner + velocity * step).astype(int)
                pad = (tile.shape[0] - size) // 2
                paste(frame, tile, x - pad, y - pad)
                boxes.append((index, (int(x), int(y), size, size)))
            yield frame, boxes


def match(detections, truth, min_overlap=0.3):
    """[(face index, detection index)]: each ground-truth face paired with at most one detection, best overlap first."""
    pairs = sorted(((box_overlap(box, true_box), d, t) for d, box in enumerate(detections)
                    for t, (_, true_box) in enumerate(truth)), reverse=True)
    used_d, used_t, matched = set(), set(), []
    for overlap, d, t in pairs:
        if overlap >= min_overlap and d not in used_d and t not in used_t:
            used_d.add(d)
            used_t.add(t)
            matched.append((truth[t][0], d))
    return matched


def write_video(path, video):
    """Frames of (frame, boxes) pairs into path; returns the boxes of each frame."""
    # Through an .mp4 and back, so the faces carry the codec's artefacts as a real video's do.
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, FRAME_SIZE)
    if not writer.isOpened():
        raise SourceError(f"cannot write {path} with the mp4v codec")
    truth = []
    for frame, boxes in video:
        writer.write(frame)
        truth.append(boxes)
    writer.release()
    return truth


def run_live_path(source, truth, recognizer, labels, margins):
    """The live loop as shipped (EmotionRecognizer.process with a FaceTracker) on the video: the faces it shows
    that are on screen as (face index, frame number), shown faces on no face, frames decoded, shown labels
    that are right, and {margin: right per-frame labels of the shown faces, cropped at that margin}."""
    tracker = recognizer.tracker()
    found, wrong_boxes, decoded, shown_right = [], 0, 0, 0
    correct = dict.fromkeys(margins, 0)
    # One pass, frames never kept: 800 frames of 640x480 would hold 700 MB.
    for (_, frame), faces in zip(source.frames(), truth):
        shown = recognizer.process(frame, tracker)
        pairs = match([face.box for face in shown], faces)
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


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="the .h5 model")
    parser.add_argument("--data-dir", type=Path, default=repo_root / "../shared/fer2013/test",
                        help="test images as <class>/*.jpg")
    parser.add_argument("--votes", default=str(repo_root / "../shared/ferplus/test.csv"),
                        help="FER+ votes of --data-dir's images: faces are drawn and scored by FER+'s majority label; "
                        "'none' takes the folder labels")
    parser.add_argument("--faces-per-class", type=positive, default=60, help="faces drawn from each class")
    parser.add_argument("--per-frame", type=positive, default=3, help="faces shown at once")
    parser.add_argument("--frames-per-face", type=positive, default=8, help="frames each face stays on screen")
    parser.add_argument("--margins", type=margin_list, default="0,0.1,0.2", help="crop margins to compare")
    shipped = inspect.signature(EmotionRecognizer).parameters
    parser.add_argument("--scan-every", type=positive, default=shipped["scan_every"].default,
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
            images, labels = sample_faces(args.data_dir, names, args.faces_per_class, args.seed, votes)
            path = Path(folder) / "labelled.mp4"
            truth = write_video(path, make_video(images, args.per_frame, args.frames_per_face, args.seed))
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

    command = "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    haar = recognizer.haar
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; OpenCV {cv2.__version__}\n"
          f"command: {command}\n"
          f"{len(images)} FER faces from {args.data_dir.resolve()} ({', '.join(names)}), seed {args.seed}, labelled "
          f"by {'FER+ majority' if votes else 'their folder (FER2013)'}\n"
          f"video: {decoded} frames {FRAME_SIZE[0]}x{FRAME_SIZE[1]}, {args.per_frame} faces at a time, "
          f"{FACE_SIZES[0]}-{FACE_SIZES[1]} px wide with a {BORDER:.0%} border, each shown "
          f"{args.frames_per_face} frames: {appearances} ground-truth faces\n"
          f"live path: EmotionRecognizer.process with a FaceTracker, as test.py runs it: Haar at "
          f"min_face={recognizer.min_face} (scale factor {haar.scale_factor}, min_neighbors {haar.min_neighbors}), "
          f"scan_every={recognizer.scan_every}, verify={recognizer.verify}, margin={recognizer.margin}, "
          f"{recognizer.runtime}; a shown face matches a true one at IoU >= 0.3\n\n"
          f"faces shown: {len(found)} of {appearances} ({len(found) / appearances:.1%}); "
          f"after each face's first {confirm_hits - 1} frames (a new face is shown "
          f"{'once BlazeFace confirms it' if recognizer.verify else f'after {confirm_hits} detections in a row'}): "
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
