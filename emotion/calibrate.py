"""Neutral calibration: one person's scores corrected by how the model reads that person's resting face.

A resting face that the model reads as partly sad or angry makes every later face of that person lean
the same way ("it always says sad for me"). Each class is weighted by how far the person's neutral
profile is from what a neutral face should score, in log space and tempered by alpha:

    corrected = normalise(scores * (target / neutral_profile) ** alpha)

    calibration = Calibration.from_scores(neutral_rows, class_names)
    corrected = calibration.apply(scores)     # rows still sum to 1
"""
from dataclasses import dataclass

import numpy as np

# Picked by benchmarks/calibration.py: halfway in log space, and a neutral face aimed at half neutral,
# raised held-out neutral faces read as neutral (muxspace: 23 % to 38 %) without costing the other
# expressions accuracy on either set; full strength or a uniform target lost more than it won.
ALPHA = 0.5
NEUTRAL_TARGET = 0.5
# Key c in test.py's window gathers a tracked face's scores for this long: enough frames to average out
# blinks and small movements, short enough to hold a neutral face.
HOLD_S = 2.0
# A class the neutral face all but never scores would otherwise be boosted without bound.
FLOOR = 0.01


@dataclass(frozen=True, eq=False)
class Calibration:
    """A per-class correction from one person's neutral profile (their neutral face's mean scores).

    alpha: 0 changes nothing, 1 makes the neutral face itself score exactly the target.
    neutral_target: the neutral share of that target, the other classes sharing the rest equally;
    1 / classes makes the correction a plain division by the profile.
    """
    class_names: tuple
    neutral_profile: np.ndarray
    alpha: float = ALPHA
    neutral_target: float = NEUTRAL_TARGET

    def __post_init__(self):
        if "neutral" not in self.class_names:
            raise ValueError(f"calibration needs a 'neutral' class; the model has {', '.join(self.class_names)}")
        if self.alpha < 0 or not 0 < self.neutral_target < 1:
            raise ValueError(f"alpha must be 0 or more and neutral_target between 0 and 1, "
                             f"not {self.alpha} and {self.neutral_target}")

    @classmethod
    def from_scores(cls, rows, class_names, alpha=ALPHA, neutral_target=NEUTRAL_TARGET):
        """Calibration from score rows of the person's neutral face (one row or several)."""
        rows = np.asarray(rows, np.float64).reshape(-1, len(class_names))
        if not len(rows):
            raise ValueError("calibration needs the scores of at least one neutral face")
        profile = rows.mean(axis=0)
        return cls(tuple(class_names), profile / profile.sum(), alpha, neutral_target)

    def weights(self):
        others = (1 - self.neutral_target) / (len(self.class_names) - 1)
        target = np.where(np.array(self.class_names) == "neutral", self.neutral_target, others)
        return (target / np.maximum(self.neutral_profile, FLOOR)) ** self.alpha

    def apply(self, scores):
        """float32 scores (n, classes) or (classes,) corrected for this person; rows sum to 1."""
        return normalise(np.asarray(scores, np.float64) * self.weights())

    def remove(self, scores):
        """The scores before apply: a tracker's smoothed scores are corrected ones, and a new calibration
        must start from what the model said."""
        return normalise(np.asarray(scores, np.float64) / self.weights())


def normalise(scores):
    return (scores / scores.sum(axis=-1, keepdims=True)).astype(np.float32)
