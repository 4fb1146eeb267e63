import cv2
import numpy as np

from emotion.draw import label_colour
from emotion.records import plot_timeline

NAMES = ["sad", "happy", "angry"]  # not alphabetical: colours follow the model's own class order


def test_the_timeline_draws_each_emotion_in_the_overlays_colour(tmp_path):
    records = [{"frame": i, "time_s": i / 30, "faces": [{"face_id": 0, "scores": {"sad": 0.1, "happy": 0.8, "angry": 0.1}}]}
               for i in range(30)]
    plot_timeline(records, NAMES, tmp_path / "timeline.png")
    picture = cv2.imread(str(tmp_path / "timeline.png")).reshape(-1, 3).astype(int)

    def pixels_of(name):
        return int((np.abs(picture - label_colour(name, NAMES)).sum(axis=1) < 40).sum())

    assert pixels_of("happy") > 200 and pixels_of("sad") > 50 and pixels_of("angry") > 50
    assert label_colour("sad", NAMES) != label_colour("sad", sorted(NAMES))
