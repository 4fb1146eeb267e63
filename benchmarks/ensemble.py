"""Which models make good teachers for `training.py --teacher`? Each model and their ensemble, scored on FER2013.

    python benchmarks/ensemble.py --model Emotion_little_vgg.h5 --model runs/long/Emotion_little_vgg.h5
    python benchmarks/ensemble.py --model A.h5 --model B.h5 --train-sample 3000
    python benchmarks/ensemble.py --model runs/fold1/Emotion_little_vgg.h5 --train-sample 6000

The test faces are scored by FER+'s majority label (--votes), as compare_fer.py scores them; every model is
mirror-averaged, as the teachers' answers are; the ensemble is the mean of their answers, what
`--teacher A --teacher B` blends into the training targets. --train-sample also scores that ensemble on a random
sample of the training images: answers that merely repeat the labels there teach a student nothing new. A model
trained with --hold-out is also scored apart on the sampled images of its held-out fold, which it never saw, and
on the others.
"""
import shlex
import sys
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()

import numpy as np

from benchmarks.common import benchmark_parser
from emotion.data import DatasetError, fold_mask, load_folder_by_votes, load_image_folder
from emotion.model import ModelFileError, load_model, read_held_out
from emotion.report import classification_metrics
from emotion.train import ensemble_answers

FER2013 = repo_root.parent / "shared" / "fer2013"


def main():
    parser = benchmark_parser(__doc__, model=False)
    parser.add_argument("--model", type=Path, action="append", required=True,
                        help="a trained .h5 (repeat it; all must share their classes)")
    parser.add_argument("--data-dir", type=Path, default=FER2013 / "test", help="faces scored, as <class>/*.jpg")
    parser.add_argument("--votes", default=repo_root.parent / "shared" / "ferplus" / "test.csv",
                        help="FER+ votes of --data-dir's faces, scored against FER+'s majority label; 'none': the "
                        "folder labels")
    parser.add_argument("--train-dir", type=Path, default=FER2013 / "train", help="the images the models trained on")
    parser.add_argument("--train-sample", type=int, default=0, help="also score this many random training images")
    args = parser.parse_args()
    try:
        models = [load_model(path) for path in args.model]
        class_names = models[0][1]
        if any(names != class_names for _, names in models):
            raise SystemExit("error: the models were trained on different classes")
        test = (load_image_folder(args.data_dir, class_names) if str(args.votes) == "none"
                else load_folder_by_votes(args.data_dir, args.votes, class_names))
        train = load_image_folder(args.train_dir, class_names) if args.train_sample else None
    except (ModelFileError, DatasetError) as error:
        raise SystemExit(f"error: {error}") from None

    labelled = "their folder labels" if str(args.votes) == "none" else f"FER+'s majority label ({args.votes})"
    print(f"command: python {shlex.join(sys.argv)}\n{len(test.labels)} faces from {args.data_dir.resolve()}, "
          f"scored by {labelled}\n")
    print("| model (mirror-averaged) | accuracy | " + " | ".join(f"recall {name}" for name in class_names) + " |")
    print("|---|---:|" + "---:|" * len(class_names))
    answers = []  # each model's own answers, averaged below: the ensemble without scoring every model twice
    for path, (model, _) in zip(args.model, models, strict=True):
        answers.append(ensemble_answers([model], test.images))
        print_row(path, classification_metrics(test.labels, answers[-1], class_names))
    print_row(f"ensemble of {len(models)}", classification_metrics(test.labels, np.mean(answers, axis=0), class_names))

    if train is not None:
        chosen = np.random.default_rng(0).choice(len(train.labels), min(args.train_sample, len(train.labels)),
                                                 replace=False)
        images, labels = train.images[chosen], train.labels[chosen]
        ensemble = ensemble_answers([model for model, _ in models], images)
        print(f"\non {len(chosen)} random training images from {args.train_dir.resolve()}, the ensemble "
              f"{agreement(ensemble, labels)}")
        for path, (model, _) in zip(args.model, models, strict=True):
            fold = read_held_out(path)
            if fold and fold["images"] == len(train.labels):
                unseen = fold_mask(len(train.labels), fold["fold"], fold["folds"])[chosen]
                answers = ensemble_answers([model], images)
                for part, name in ((unseen, "never saw"), (~unseen, "trained on")):
                    print(f"{path} (held out fold {fold['fold']} of {fold['folds']}), on the {part.sum()} of them "
                          f"it {name}: {agreement(answers[part], labels[part])}")


def agreement(answers, labels):
    """How far answers repeat labels: the share whose top class is the label, and the label's mean score."""
    return (f"agrees with the label on {np.mean(answers.argmax(axis=1) == labels):.1%} and gives the true class "
            f"{answers[np.arange(len(labels)), labels].mean():.2f} on average")


def print_row(name, metrics):
    recalls = " | ".join(f"{scores['recall']:.1%}" for scores in metrics["per_class"].values())
    print(f"| {name} | {metrics['accuracy']:.1%} | {recalls} |")


if __name__ == "__main__":
    main()
