"""Does averaging more views of each face than the mirror pair pay? Shifted, turned and resized copies, scored on
FER2013's test faces against their folder label, or with --votes against FER+'s majority label.

    python benchmarks/test_time_views.py
    python benchmarks/test_time_views.py --model /path/to/other.h5 --votes ../shared/ferplus/test.csv

The first four view sets are EmotionClassifier.scores' own (LiteRT, as test.py runs): the face as it is, its
mirror image, and the face moved by classify.SHIFT pixels to each of 9 positions (edges repeated, as training's
RandomTranslation fills them). Video uses the mirror pair; still images all 18. The others are candidates that
test.py does not use: the face turned and resized about its centre, each pose with its mirror image.
"""
import os
import platform
import shlex
import sys
import time
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()

import cv2
import numpy as np

from benchmarks.common import benchmark_parser
from emotion.classify import SHIFT, EmotionClassifier, litert_from_keras
from emotion.constants import IMAGE_SIZE
from emotion.data import DatasetError, load_folder_by_votes, load_image_folder
from emotion.model import ModelFileError, load_model
from emotion.report import classification_metrics

VIEW_SETS = {  # name: (mirror, shifted)
    "plain (1 view)": (False, False),
    "mirror (2 views: video)": (True, False),
    f"9 positions, {SHIFT} px apart (9 views)": (False, True),
    "9 positions and their mirrors (18 views: still images)": (True, True),
}
CANDIDATES = {  # name: poses (degrees turned, size), each scored with its mirror image
    "candidate: 3 turns, -8, 0 and 8 degrees (6 views)": [(angle, 1.0) for angle in (-8, 0, 8)],
    "candidate: 3 turns x 3 sizes, 0.95-1.05 (18 views)": [(angle, size) for angle in (-8, 0, 8)
                                                           for size in (0.95, 1.0, 1.05)],
}


def posed(face, poses):
    """(len(poses), 48, 48, 1) copies of one (48, 48, 1) face turned and resized about its centre, edges repeated."""
    centre = ((IMAGE_SIZE - 1) / 2,) * 2
    return np.stack([cv2.warpAffine(face[..., 0], cv2.getRotationMatrix2D(centre, angle, size), (IMAGE_SIZE,) * 2,
                                    borderMode=cv2.BORDER_REPLICATE) for angle, size in poses])[..., None]


def timed_scores(score_face, faces):
    """(scores of each face, one face a call as a photo with one face is scored; milliseconds a face)."""
    start = time.perf_counter()
    scores = np.concatenate([score_face(face) for face in faces])
    return scores, 1000 * (time.perf_counter() - start) / len(faces)


def main():
    parser = benchmark_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=repo_root.parent / "shared" / "fer2013" / "test",
                        help="faces as <class>/*.jpg")
    parser.add_argument("--votes", type=Path, default=None,
                        help="FER+ votes of --data-dir's faces (../shared/ferplus/test.csv), to score against FER+'s "
                        "majority label instead of the folder labels")
    args = parser.parse_args()
    try:
        model, class_names = load_model(args.model)
        if args.votes:
            data, labels = load_folder_by_votes(args.data_dir, args.votes, class_names), "FER+ majority labels"
        else:
            data, labels = load_image_folder(args.data_dir, class_names), "folder labels"
    except (ModelFileError, DatasetError) as error:
        raise SystemExit(f"error: {error}") from None
    litert = litert_from_keras(model, args.model)

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs\n"
          f"command: python {shlex.join(sys.argv)}\n"
          f"{len(data.labels)} faces from {args.data_dir.resolve()} ({labels}); model {args.model}, LiteRT\n")
    print("| views | accuracy | " + " | ".join(f"recall {name}" for name in class_names) + " | time per face |")
    print("|---|---:|" + "---:|" * len(class_names) + "---:|")
    runs = {}
    for name, (mirror, shifted) in VIEW_SETS.items():
        classifier = EmotionClassifier(model, class_names, flip_average=mirror, litert=litert)
        runs[name] = lambda face, classifier=classifier, shifted=shifted: classifier.scores(face[None], shifted)
    pair = EmotionClassifier(model, class_names, flip_average=True, litert=litert)
    for name, poses in CANDIDATES.items():
        runs[name] = lambda face, poses=poses: pair.scores(posed(face, poses)).mean(axis=0, keepdims=True)
    for name, score_face in runs.items():
        scores, milliseconds = timed_scores(score_face, data.images)
        result = classification_metrics(data.labels, scores, class_names)
        recalls = " | ".join(f"{result['per_class'][c]['recall']:.1%}" for c in class_names)
        print(f"| {name} | {result['accuracy']:.1%} | {recalls} | {milliseconds:.2f} ms |")


if __name__ == "__main__":
    main()
