"""What leaning toward one class buys and costs: its score multiplied by a factor before the argmax.

    python benchmarks/class_bias.py
    python benchmarks/class_bias.py --lean sad --factors 1,1.5,2,2.2,3 --model runs/new.h5

A factor is a shift of the class's prior (log(factor) added to its logit), the cheapest fix for a class the
model under-calls: yale's sad faces, mostly read as neutral. Every face is scored once, as test.py scores a
photo: FER2013's test/ faces labelled by FER+'s majority (18 views, LiteRT, as benchmarks/compare_fer.py), and
the real photos end to end (EmotionRecognizer.detect, its largest face; no face counts as wrong, as
benchmarks/real_faces.py). Each factor then re-ranks those scores.
"""
import sys
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks import common
from emotion.data import DatasetError, load_folder_by_votes
from emotion.model import ModelFileError
from emotion.recognizer import EmotionRecognizer


def photo_scores(recognizer, paths, class_names, desc):
    """(photos, classes) scores of each photo's largest face, NaN where no face is found or the file is unread."""
    rows = []
    for path in tqdm(paths, desc=desc, unit="photo", leave=False):
        image = cv2.imread(str(path))
        faces = recognizer.detect(image) if image is not None else []
        rows.append([faces[0].scores[name] for name in class_names] if faces else [np.nan] * len(class_names))
    return np.array(rows).reshape(-1, len(class_names))


def main(argv=None) -> int:
    parser = common.benchmark_parser(__doc__)
    parser.add_argument("--lean", default="sad", help="the class whose score is multiplied")
    parser.add_argument("--factors", type=common.numbers, default=[1, 1.5, 2, 2.2, 2.5, 3],
                        help="comma-separated factors")
    parser.add_argument("--data-dir", type=Path, default=repo_root / "../shared/fer2013/test",
                        help="test images as <class>/*.jpg")
    parser.add_argument("--votes", type=Path, default=repo_root / "../shared/ferplus/test.csv",
                        help="FER+ votes of --data-dir's images (file, class, ten counts)")
    parser.add_argument("--real-dir", type=Path, default=repo_root / "../shared/real/faces",
                        help="photo sets as <set>/<class>/<photo>")
    args = parser.parse_args(argv)

    try:
        recognizer = EmotionRecognizer(model=args.model)
        class_names = list(recognizer.class_names)
        if args.lean not in class_names:
            raise ModelFileError(f"{args.model} has no class {args.lean!r}; its classes: {', '.join(class_names)}")
        test = load_folder_by_votes(args.data_dir, args.votes, class_names)
    # A missing file or a bad model deserves one line, not a traceback.
    except (ModelFileError, DatasetError, OSError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    set_names = sorted(path.name for path in args.real_dir.glob("*") if path.is_dir())
    if not set_names:
        print(f"error: no photo set under {args.real_dir} (pass --real-dir)", file=sys.stderr)
        return 2

    # The recognizer's own classifier, so the test faces are scored by what scores the photos.
    scored = {"FER+ test": (common.live_scores(recognizer.classifier, test.images, shifted=True), test.labels)}
    for name in set_names:
        paths, labels = common.list_photos(args.real_dir / name, class_names, None)
        scored[name] = (photo_scores(recognizer, paths, class_names, name), labels)

    column = class_names.index(args.lean)
    print("command: " + common.command_line(argv))
    print(f"model: {args.model}; each cell: accuracy (recall {' / '.join(class_names)}), "
          f"{args.lean}'s score multiplied by the factor\n")
    print("| factor | " + " | ".join(f"{name} ({len(labels)})" for name, (_, labels) in scored.items()) + " |")
    print("|---:" + "|---" * len(scored) + "|")
    for factor in args.factors:
        cells = []
        for scores, labels in scored.values():
            results = common.score(labels, common.leaned_predictions(scores, column, factor), class_names)
            recalls = " / ".join(f"{results['per_class'][name]['recall']:.0%}"
                                 if results["per_class"][name]["support"] else "-" for name in class_names)
            cells.append(f"{results['accuracy']:.1%} ({recalls})")
        print(f"| {factor:g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
