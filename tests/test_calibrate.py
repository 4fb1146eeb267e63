"""Neutral calibration: the correction's maths, the API on a real photo, and test.py --calibrate."""
import json
import re

import cv2
import numpy as np
import pytest

from emotion import EmotionRecognizer
from emotion.calibrate import Calibration
from emotion.sources import SourceError, sample_face
from tests.conftest import CLASSES, assert_one_line_error, run_script

NEUTRAL, SAD = CLASSES.index("neutral"), CLASSES.index("sad")
LEANS_SAD = np.float32([0.1, 0.05, 0.35, 0.45, 0.05])


def score_rows(count=50, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(len(CLASSES)), count).astype(np.float32)


def test_a_neutral_face_that_leans_sad_shifts_sad_scores_down_and_then_reads_neutral():
    calibration = Calibration.from_scores(LEANS_SAD, CLASSES)
    rows = score_rows()
    assert (calibration.apply(rows)[:, SAD] < rows[:, SAD]).all()
    assert np.argmax(calibration.apply(LEANS_SAD)) == NEUTRAL


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0, 2.0])
def test_rows_still_sum_to_one_and_alpha_0_is_the_identity(alpha):
    rows = score_rows()
    corrected = Calibration.from_scores(score_rows(3, seed=1), CLASSES, alpha=alpha).apply(rows)
    assert corrected.shape == rows.shape and corrected.dtype == np.float32
    np.testing.assert_allclose(corrected.sum(axis=1), 1, atol=1e-6)
    if alpha == 0:
        np.testing.assert_allclose(corrected, rows, atol=1e-6)


def test_a_neutral_face_that_scores_the_target_changes_nothing():
    rows = score_rows()
    uniform = np.full(len(CLASSES), 0.2)
    # With a uniform target the correction is a plain division by the profile: a uniform one changes nothing.
    np.testing.assert_allclose(Calibration(CLASSES, uniform, alpha=1, neutral_target=0.2).apply(rows), rows, atol=1e-6)
    target = np.where(np.array(CLASSES) == "neutral", 0.5, 0.125)
    np.testing.assert_allclose(Calibration(CLASSES, target, neutral_target=0.5).apply(rows), rows, atol=1e-6)


def test_at_full_strength_the_neutral_face_scores_the_target_and_remove_undoes_apply():
    profile = np.array([0.3, 0.05, 0.2, 0.4, 0.05])
    calibration = Calibration.from_scores(profile, CLASSES, alpha=1, neutral_target=0.6)
    np.testing.assert_allclose(calibration.apply(profile), [0.1, 0.1, 0.6, 0.1, 0.1], atol=1e-6)
    rows = score_rows()
    np.testing.assert_allclose(calibration.remove(calibration.apply(rows)), rows, atol=1e-5)


def test_a_class_the_neutral_face_never_scores_is_boosted_as_if_it_scored_the_floor():
    never_surprised = np.float64([0.2, 0.2, 0.4, 0.2, 0.0])
    shares = Calibration(CLASSES, never_surprised, alpha=1).apply(np.full(len(CLASSES), 0.2))
    # At full strength each class is weighted by target / profile; the surprise row's profile counts as 0.01.
    weights = np.array([0.125, 0.125, 0.5, 0.125, 0.125]) / np.maximum(never_surprised, 0.01)
    np.testing.assert_allclose(shares, weights / weights.sum(), atol=1e-6)
    assert np.all(np.isfinite(shares)) and shares[-1] < 0.9


@pytest.mark.parametrize(("rows", "class_names", "alpha", "target"), [
    ([], CLASSES, 0.5, 0.5), ([[0.5, 0.5]], ("happy", "sad"), 0.5, 0.5),
    ([[0.2] * 5], CLASSES, -1, 0.5), ([[0.2] * 5], CLASSES, 0.5, 1.0)])
def test_what_cannot_be_calibrated_is_a_value_error(rows, class_names, alpha, target):
    with pytest.raises(ValueError):
        Calibration.from_scores(rows, class_names, alpha, target)


def test_the_scale_of_the_neutral_rows_does_not_matter():
    # Percentages, or the sum of several frames' scores, give the same profile as scores that sum to 1.
    as_shares = Calibration.from_scores(LEANS_SAD, CLASSES)
    as_percent = Calibration.from_scores(LEANS_SAD * 100, CLASSES)
    np.testing.assert_allclose(as_percent.neutral_profile, LEANS_SAD, atol=1e-6)
    rows = score_rows()
    np.testing.assert_allclose(as_percent.apply(rows), as_shares.apply(rows), atol=1e-6)


@pytest.mark.parametrize(("rows", "class_names", "alpha", "target", "message"), [
    ([], CLASSES, 0.5, 0.5, "^calibration needs the scores of at least one neutral face$"),
    ([[0.5, 0.5]], ("happy", "sad"), 0.5, 0.5, "needs a 'neutral' class; the model has happy, sad$"),
    ([[0.2] * 5], CLASSES, 0.5, 0.0, "neutral_target between 0 and 1, not 0.5 and 0.0"),
    ([[0.2] * 5], CLASSES, -0.5, 0.5, "alpha must be 0 or more")])
def test_what_cannot_be_calibrated_says_why(rows, class_names, alpha, target, message):
    with pytest.raises(ValueError, match=message):
        Calibration.from_scores(rows, class_names, alpha, target)


@pytest.fixture(scope="module")
def recognizer(tiny_model):
    return EmotionRecognizer(model=tiny_model)


@pytest.fixture
def reads_sad(recognizer, monkeypatch):
    """The recognizer, its classifier reading every face as the complaint goes: a resting face partly sad.
    The tiny model reads a real face as it pleases, often as neutral at 1.0, which nothing can raise."""
    monkeypatch.setattr(recognizer.classifier, "scores",
                        lambda crops, *views: np.tile(LEANS_SAD, (len(crops), 1)))
    recognizer.calibration = None
    yield recognizer
    recognizer.calibration = None


def test_calibrating_with_a_face_raises_its_neutral_score_until_removed(reads_sad):
    before = reads_sad.detect(sample_face())[0]
    reads_sad.calibrate(sample_face())
    after = reads_sad.detect(sample_face())[0]
    assert before.label == "sad" and after.label == "neutral"
    assert after.scores["neutral"] > before.scores["neutral"] and after.scores["sad"] < before.scores["sad"]
    # Calibrating again starts from the model's scores, not from the ones the first calibration corrected.
    np.testing.assert_allclose(reads_sad.calibrate([sample_face(), sample_face()]).neutral_profile, LEANS_SAD,
                               atol=1e-6)
    reads_sad.calibration = None
    assert reads_sad.detect(sample_face())[0].scores == before.scores


def test_a_calibration_applies_to_video_frames_too(reads_sad, face_video):
    before = reads_sad.analyze_video(face_video, max_frames=5)
    reads_sad.calibrate(sample_face())
    after = reads_sad.analyze_video(face_video, max_frames=5)
    neutral = [[face["scores"]["neutral"] for record in records for face in record["faces"]]
               for records in (before, after)]
    assert len(neutral[0]) == len(neutral[1]) >= 3
    assert all(calibrated > raw for raw, calibrated in zip(*neutral))


def test_detect_gives_the_calibration_applied_to_the_model_s_own_scores(recognizer):
    recognizer.calibration = None
    before = list(recognizer.detect(sample_face())[0].scores.values())
    calibration = recognizer.calibrate(sample_face())
    after = list(recognizer.detect(sample_face())[0].scores.values())
    # benchmarks/calibration.py relies on this: it scores each photo once and applies every setting to it.
    np.testing.assert_allclose(after, calibration.apply(before), atol=1e-5)
    np.testing.assert_allclose(calibration.neutral_profile, before, atol=1e-5)
    recognizer.calibration = None


def test_a_calibration_image_without_a_face_is_a_named_error(recognizer):
    with pytest.raises(SourceError, match="no face"):
        recognizer.calibrate([sample_face(), np.full((240, 320), 90, np.uint8)])


@pytest.mark.option("--calibrate")
def test_cli_calibrate_runs_on_a_video_and_refuses_an_image_without_a_face(tiny_model, face_video, tmp_path):
    neutral, blank, log = tmp_path / "neutral.jpg", tmp_path / "blank.png", tmp_path / "faces.jsonl"
    cv2.imwrite(str(neutral), sample_face())
    cv2.imwrite(str(blank), np.full((240, 320), 90, np.uint8))
    result = run_script("test.py", "--source", face_video, "--model", tiny_model, "--no-display",
                        "--calibrate", neutral, "--log", log, "--max-frames", 5)
    assert result.returncode == 0, result.stderr
    assert re.search(r"calibrated to a neutral face that reads as angry \d\.\d\d, .*neutral \d\.\d\d", result.stdout)
    assert any(json.loads(line)["faces"] for line in log.read_text().splitlines())
    result = run_script("test.py", "--source", face_video, "--model", tiny_model, "--no-display",
                        "--calibrate", neutral, blank)
    assert_one_line_error(result, "no face", str(blank), code=2)
