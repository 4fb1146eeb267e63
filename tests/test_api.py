import cv2
import numpy as np
import pytest

from emotion import EmotionRecognizer
from emotion.sources import SourceError, sample_face
from tests.conftest import CLASSES


@pytest.fixture(scope="module")
def recognizer(tiny_model):
    return EmotionRecognizer(model=tiny_model)


def test_detect_takes_an_array_or_a_path_and_gives_box_label_scores(recognizer, tmp_path):
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), sample_face())
    from_path, from_array = recognizer.detect(photo), recognizer.detect(sample_face())
    assert len(from_path) == len(from_array) == 1
    face = from_array[0]
    assert face.label in CLASSES and face.label == max(face.scores, key=face.scores.get)
    assert abs(sum(face.scores.values()) - 1) < 1e-4
    assert np.abs(np.subtract(face.box, from_path[0].box)).max() <= 8  # JPEG re-encoding moves it a little


def test_no_face_gives_an_empty_list_and_a_bad_path_a_named_error(recognizer, tmp_path):
    assert recognizer.detect(np.full((240, 320, 3), 90, np.uint8)) == []
    with pytest.raises(SourceError):
        recognizer.detect(tmp_path / "missing.jpg")


def paste(canvas, image, x, y):
    """Copy image onto canvas with its top-left at (x, y), cutting whatever falls outside."""
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + image.shape[0], canvas.shape[0]), min(x + image.shape[1], canvas.shape[1])
    canvas[top:bottom, left:right] = image[top - y:bottom - y, left - x:right - x]


def test_a_crowd_of_faces_cut_by_the_frame_edges_never_crashes(tiny_model):
    face = cv2.resize(sample_face(), (160, 188))
    crowd = np.full((960, 1280, 3), 60, np.uint8)
    for row in range(6):
        for column in range(9):
            paste(crowd, face, column * 150 - 40, row * 170 - 60)
    faces = EmotionRecognizer(model=tiny_model, detect_width=None).detect(crowd)
    assert len(faces) >= 20
    for found in faces:
        x, y, w, h = found.box
        assert 0 <= x and 0 <= y and x + w <= 1280 and y + h <= 960


def test_analyze_video_gives_per_frame_records_with_face_ids(recognizer, face_video):
    records = recognizer.analyze_video(face_video)
    assert [record["frame"] for record in records] == list(range(24))
    assert records[1]["time_s"] == pytest.approx(1 / 30, abs=1e-3)
    ids = {face["face_id"] for record in records for face in record["faces"]}
    assert len(ids) == 1, "one moving face keeps one id"


def test_detect_every_third_frame_holds_the_boxes_in_between(tiny_model):
    recognizer = EmotionRecognizer(model=tiny_model, detect_every=3)
    detected_on = []
    detect = recognizer.detector.detect
    recognizer.detector.detect = lambda gray: detected_on.append(tracker.frames) or detect(gray)
    tracker = recognizer.tracker()
    frames = [np.roll(sample_face(), 4 * index, axis=1) for index in range(7)]
    boxes = [[face.box for face in recognizer.process(frame, tracker)] for frame in frames]
    assert detected_on == [0, 3, 6]
    assert boxes[1] == boxes[2] == boxes[0] and boxes[4] == boxes[5] == boxes[3]
    assert boxes[3] != boxes[0], "the face moved 12 px by frame 3, and the new detection follows it"
    assert len(recognizer.process(frames[0])) == 1, "a single image is always detected"
    with pytest.raises(ValueError):
        EmotionRecognizer(model=tiny_model, detect_every=0)
