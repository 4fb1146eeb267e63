"""benchmarks/class_bias.py: a class's score multiplied before the argmax, and a photo without a face."""
import numpy as np

from benchmarks.common import leaned_predictions


def test_a_factor_moves_only_the_answers_it_outweighs():
    scores = np.array([[0.1, 0.6, 0.3],    # 0.3 * 2.5 = 0.75 > 0.6: now class 2
                       [0.1, 0.8, 0.1],    # 0.1 * 2.5 = 0.25: still class 1
                       [0.7, 0.1, 0.2]])   # 0.2 * 2.5 = 0.5 < 0.7: still class 0
    assert leaned_predictions(scores, 2, 1.0).tolist() == [1, 1, 0]
    assert leaned_predictions(scores, 2, 2.5).tolist() == [2, 1, 0]


def test_a_photo_without_a_face_stays_an_answer_of_no_face():
    scores = np.array([[np.nan] * 3, [0.2, 0.5, 0.3]])
    assert leaned_predictions(scores, 1, 3.0).tolist() == [3, 1]
