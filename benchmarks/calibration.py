"""Neutral calibration on real photos: accuracy with and without it, and whether neutral faces still read neutral.

    python benchmarks/calibration.py
    python benchmarks/calibration.py --alphas 0.25,0.5,0.75,1 --targets 0.2,0.35,0.5,0.65 --model runs/new.h5

Each photo goes through EmotionRecognizer.detect (its largest face; no face counts as wrong), and each
person's neutral profile comes from EmotionRecognizer.calibrate with one neutral photo of theirs. A
calibration is a function of the scores alone (with one set, detect gives calibration.apply of the scores
it gives without; tests/test_calibrate.py), so each photo is scored once and every alpha and target is
applied to those scores.

yale: 15 people, one photo each of neutral, happy, sad and surprise. Calibrated with the person's neutral
photo, the other three are scored. That neutral photo cannot be scored fairly, and there is no second one,
so "neutral stays neutral" uses two stand-ins for another neutral photo of the person: its mirror image
(close to the photo itself, since the classifier averages each face with its mirror: only Haar's box
differs) and a shifted, shrunk crop (5 % cut off the top and left, then 90 % size: another box, another
scale). Both are the same face in the same light, so both are optimistic.
muxspace: the people with two or more neutral photos and at least one other, true leave-one-out: each photo
is scored once with each of the person's other neutral photos as the calibration, and its share of right
answers counted.
"""
import csv
import sys
from collections import defaultdict
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.common import benchmark_parser, command_line, numbers
from emotion.calibrate import ALPHA, NEUTRAL_TARGET, Calibration
from emotion.recognizer import EmotionRecognizer
from emotion.sources import SourceError

YALE_EXPRESSIONS = ("happy", "sad", "surprise")


def photos_by_person(set_dir):
    """{subject: {label: [BGR photo, ...]}} from set_dir/index.csv."""
    people = defaultdict(lambda: defaultdict(list))
    with open(set_dir / "index.csv") as file:
        for row in csv.DictReader(file):
            photo = cv2.imread(str(set_dir / row["file"]))
            if photo is not None:
                people[row["subject"]][row["label"]].append(photo)
    return people


def shifted(photo):
    height, width = photo.shape[:2]
    return cv2.resize(photo[height // 20:, width // 20:], None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)


class Scorer:
    """Uncorrected scores and neutral profiles of photos, end to end through one recognizer."""

    def __init__(self, recognizer):
        self.recognizer = recognizer
        self.class_names = list(recognizer.class_names)

    def scores(self, photo):
        """The largest face's scores, or None where no face is found."""
        faces = self.recognizer.detect(photo)
        return np.array(list(faces[0].scores.values())) if faces else None

    def profile(self, photo):
        """The neutral profile that calibrate() takes from this photo, or None where it finds no face."""
        try:
            return self.recognizer.calibrate([photo]).neutral_profile
        except SourceError:
            return None
        finally:
            self.recognizer.calibration = None  # every photo is scored uncorrected

    def right(self, scores, label, profile, alpha, target):
        """Whether the scores, corrected by profile (alpha 0: not at all), read as label; no face is wrong."""
        if scores is None:
            return False
        scores = Calibration(tuple(self.class_names), profile, alpha, target).apply(scores)
        return self.class_names[int(np.argmax(scores))] == label


def measure_yale(scorer, people, settings):
    """{setting: (other expressions right per label, mirror right, shifted right)}; setting None is raw."""
    results = {setting: [defaultdict(int), 0, 0] for setting in [None, *settings]}
    counted = 0
    for person in tqdm(people.values(), desc="yale", unit="person", leave=False):
        neutral = person["neutral"][0]
        profile = scorer.profile(neutral)
        if profile is None:  # nothing to calibrate with: left out of every row alike
            continue
        counted += 1
        others = [(label, scorer.scores(photo)) for label in YALE_EXPRESSIONS for photo in person[label]]
        stand_ins = [scorer.scores(neutral[:, ::-1]), scorer.scores(shifted(neutral))]
        for setting, result in results.items():
            alpha, target = setting or (0.0, NEUTRAL_TARGET)
            for label, scores in others:
                result[0][label] += scorer.right(scores, label, profile, alpha, target)
            for index, scores in enumerate(stand_ins, 1):
                result[index] += scorer.right(scores, "neutral", profile, alpha, target)
    return results, counted


def measure_leave_one_out(scorer, people, settings):
    """{setting: (other expressions' share right, held-out neutral photos' share right)}, and the counts."""
    people = {name: person for name, person in people.items()
              if len(person["neutral"]) >= 2 and len(person) > 1}
    right = {setting: [[], []] for setting in [None, *settings]}
    for person in tqdm(people.values(), desc="muxspace", unit="person", leave=False):
        neutral = [scorer.profile(photo) for photo in person["neutral"]]
        photos = [(label, index, scorer.scores(photo) if label != "neutral" else neutral[index])
                  for label, photos in person.items() for index, photo in enumerate(photos)]
        for label, index, scores in photos:
            held_out = label == "neutral"
            profiles = [profile for other, profile in enumerate(neutral)
                        if profile is not None and not (held_out and other == index)]
            if not profiles:  # no other neutral photo with a face: this photo has nothing to calibrate with
                continue
            for setting, (others, neutrals) in right.items():
                alpha, target = setting or (0.0, NEUTRAL_TARGET)
                (neutrals if held_out else others).append(
                    np.mean([scorer.right(scores, label, profile, alpha, target) for profile in profiles]))
    return right, len(people)


def main(argv=None):
    parser = benchmark_parser(__doc__)
    parser.add_argument("--real-dir", type=Path, default=repo_root / "../shared/real/faces",
                        help="holds yale/ and muxspace/, each <class>/<photo> with an index.csv naming each subject")
    parser.add_argument("--alphas", type=numbers, default=[0.25, 0.5, 0.75, 1.0], help="strengths to try")
    parser.add_argument("--targets", type=numbers, default=[0.2, NEUTRAL_TARGET],
                        help="neutral shares of the target to try (0.2 with 5 classes: plain division)")
    args = parser.parse_args(argv)
    missing = [name for name in ("yale", "muxspace") if not (args.real_dir / name / "index.csv").is_file()]
    if missing:
        print(f"error: no {', '.join(missing)} with an index.csv under {args.real_dir} (pass --real-dir)",
              file=sys.stderr)
        return 2

    command = command_line(argv)
    print(f"command: {command}\nmodel: {args.model}\n")
    scorer = Scorer(EmotionRecognizer(model=args.model))
    settings = [(alpha, target) for target in args.targets for alpha in args.alphas]
    yale, yale_people = measure_yale(scorer, photos_by_person(args.real_dir / "yale"), settings)
    mux, mux_people = measure_leave_one_out(scorer, photos_by_person(args.real_dir / "muxspace"), settings)

    others, neutrals = len(mux[None][0]), len(mux[None][1])
    expressions = yale_people * len(YALE_EXPRESSIONS)
    print(f"| neutral target | alpha | yale: {', '.join(YALE_EXPRESSIONS)} right, of {expressions} "
          f"| yale: mirrored neutral reads neutral | yale: shifted neutral reads neutral "
          f"| muxspace: other expressions right, {others} photos | muxspace: held-out neutral reads neutral, "
          f"{neutrals} photos |\n|---|---:|---:|---:|---:|---:|---:|")
    for setting in [None, *settings]:
        (per_label, mirrored, moved), (mux_others, mux_neutrals) = yale[setting], mux[setting]
        target, alpha = (f"{setting[1]:g}", f"{setting[0]:g}") if setting else ("without", "")
        chosen = " (default)" if setting == (ALPHA, NEUTRAL_TARGET) else ""
        counts = " + ".join(str(per_label[label]) for label in YALE_EXPRESSIONS)
        print(f"| {target}{chosen} | {alpha} | {sum(per_label.values()) / expressions:.1%} ({counts}) "
              f"| {mirrored}/{yale_people} | {moved}/{yale_people} "
              f"| {np.mean(mux_others):.1%} | {np.mean(mux_neutrals):.1%} |")
    print(f"\nyale: {yale_people} people. muxspace: {mux_people} people with two or more neutral photos; "
          "shares averaged over every choice of calibration photo.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
