"""Does averaging more views of each face than the mirror pair pay? Shifted copies, scored on FER2013 faces.

    python benchmarks/test_time_views.py
    python benchmarks/test_time_views.py --model /path/to/other.h5

The views are EmotionClassifier.scores' own (LiteRT, as test.py runs): the face as it is, its mirror image,
and the face moved by classify.SHIFT pixels to each of 9 positions (edges repeated, as training's
RandomTranslation fills them). Video uses the mirror pair; still images all 18.
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

import numpy as np

from benchmarks.common import benchmark_parser
from emotion.classify import SHIFT, EmotionClassifier, litert_from_keras
from emotion.data import DatasetError, load_image_folder
from emotion.model import ModelFileError, load_model
from emotion.report import classification_metrics

VIEW_SETS = {  # name: (mirror, shifted)
    "plain (1 view)": (False, False),
    "mirror (2 views: video)": (True, False),
    f"9 positions, {SHIFT} px apart (9 views)": (False, True),
    "9 positions and their mirrors (18 views: still images)": (True, True),
}


def main():
    parser = benchmark_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=repo_root.parent / "shared" / "fer2013" / "test",
                        help="faces as <class>/*.jpg")
    args = parser.parse_args()
    try:
        model, class_names = load_model(args.model)
        data = load_image_folder(args.data_dir, class_names)
    except (ModelFileError, DatasetError) as error:
        raise SystemExit(f"error: {error}") from None
    litert = litert_from_keras(model, args.model)

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs\n"
          f"command: python {shlex.join(sys.argv)}\n"
          f"{len(data.labels)} faces from {args.data_dir.resolve()}; model {args.model}, LiteRT\n")
    print("| views | accuracy | " + " | ".join(f"recall {name}" for name in class_names) + " | time per face |")
    print("|---|---:|" + "---:|" * len(class_names) + "---:|")
    for name, (mirror, shifted) in VIEW_SETS.items():
        classifier = EmotionClassifier(model, class_names, flip_average=mirror, litert=litert)
        start = time.perf_counter()
        # One face a call, as a photo with one face is scored.
        scores = np.concatenate([classifier.scores(face[None], shifted) for face in data.images])
        seconds = time.perf_counter() - start
        result = classification_metrics(data.labels, scores, class_names)
        recalls = " | ".join(f"{result['per_class'][c]['recall']:.1%}" for c in class_names)
        print(f"| {name} | {result['accuracy']:.1%} | {recalls} | {1000 * seconds / len(data.labels):.2f} ms |")


if __name__ == "__main__":
    main()
