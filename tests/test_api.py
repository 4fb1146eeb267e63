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
    faces = EmotionRecognizer(model=tiny_model, min_face=24).detect(crowd)
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


def test_video_searches_the_whole_frame_every_scan_every_frames_and_near_the_face_in_between(tiny_model):
    recognizer = EmotionRecognizer(model=tiny_model, scan_every=4)
    scans, near = [], []
    haar = recognizer.detector.cascade
    detect, detect_near = haar.detect, haar.detect_near
    haar.detect = lambda gray: scans.append(tracker.frames) or detect(gray)
    haar.detect_near = lambda gray, box: near.append(tracker.frames) or detect_near(gray, box)
    tracker = recognizer.tracker()
    frames = [np.roll(sample_face(), 4 * index, axis=1) for index in range(9)]
    boxes = [[face.box for face in recognizer.process(frame, tracker)] for frame in frames]
    assert scans == [0, 4, 8] and near == [1, 2, 3, 5, 6, 7]
    assert all(len(frame_boxes) == 1 for frame_boxes in boxes[2:])
    # The face moves 4 px a frame, and the box found near it follows.
    assert boxes[7][0][0] - boxes[3][0][0] == pytest.approx(16, abs=6)
    # A face lost near its box is looked for in the whole frame at once.
    blank = np.full_like(frames[0], 90)
    recognizer.process(blank, tracker)
    assert scans[-1] == 9 and near[-1] == 9
    with pytest.raises(ValueError):
        EmotionRecognizer(model=tiny_model, scan_every=0)


def test_a_tight_face_crop_still_gives_its_face(recognizer):
    from emotion.detect import HaarCascade, to_gray
    photo = sample_face()
    x, y, w, h = HaarCascade().detect(to_gray(photo))[0]
    inset = w * 15 // 100
    crop = photo[y + inset:y + h - inset, x + inset:x + w - inset]
    assert len(HaarCascade().detect(to_gray(crop))) == 0, "Haar needs a margin around the face"
    faces = recognizer.detect(crop)
    assert len(faces) == 1
    fx, fy, fw, fh = faces[0].box
    assert fx >= 0 and fy >= 0 and fx + fw <= crop.shape[1] and fy + fh <= crop.shape[0]
    assert fw * fh > 0.6 * crop.shape[0] * crop.shape[1], "the face fills the crop"
    # A thumbnail smaller than --min-face (as FER2013's own 48x48 images) is enlarged to find it.
    thumbnail = cv2.resize(crop, (40, 40), interpolation=cv2.INTER_AREA)
    faces = recognizer.detect(thumbnail)
    assert len(faces) == 1 and faces[0].box[2] > 30


def test_detector_none_takes_each_image_and_frame_as_one_face(tiny_model, face_video):
    recognizer = EmotionRecognizer(model=tiny_model, detector="none")
    crop = cv2.resize(sample_face()[100:340, 150:390], (48, 48))
    faces = recognizer.detect(crop)
    assert [face.box for face in faces] == [(0, 0, 48, 48)]
    assert recognizer.detect(np.full((30, 70), 90, np.uint8))[0].box == (0, 0, 70, 30), "whatever it shows"
    records = recognizer.analyze_video(face_video, max_frames=5)
    assert [[face["box"] for face in record["faces"]] for record in records] == [[[0, 0, 640, 480]]] * 5


def test_a_still_face_is_scored_on_18_views_each_moved_or_mirrored_once():
    from emotion.classify import SHIFT, EmotionClassifier, shift
    face = np.zeros((1, 48, 48, 1), np.float32)
    face[0, 10:30, 20, 0] = 255  # a vertical line, off the middle and off centre: every view differs
    moved = shift(face, SHIFT, -SHIFT)
    assert moved[0, 10 - SHIFT:30 - SHIFT, 20 + SHIFT, 0].min() == 255 and moved[0, :, 20, 0].max() == 0

    def where_is_the_line(views):  # a stand-in model: two "scores" from the line's column and top row
        columns = views[..., 0].argmax(axis=2).max(axis=1)
        rows = views[..., 0].max(axis=2).argmax(axis=1)
        return np.stack([columns, rows], axis=1).astype(np.float32)

    classifier = EmotionClassifier(None, ["a", "b"], flip_average=True, litert=where_is_the_line)
    views = [shift(face, dx, dy) for dx in (-SHIFT, 0, SHIFT) for dy in (-SHIFT, 0, SHIFT)]
    views += [view[:, :, ::-1] for view in views]
    expected = np.mean([where_is_the_line(view) for view in views], axis=0)
    np.testing.assert_allclose(classifier.scores(face, shifted=True), expected)
    np.testing.assert_allclose(classifier.scores(face), (where_is_the_line(face) + where_is_the_line(face[:, :, ::-1])) / 2)
    single = EmotionClassifier(None, ["a", "b"], flip_average=False, litert=where_is_the_line)
    np.testing.assert_allclose(single.scores(face, shifted=True),
                               np.mean([where_is_the_line(view) for view in views[:9]], axis=0))


def test_photos_get_the_18_views_and_video_frames_the_mirror_pair(recognizer, monkeypatch):
    asked = []
    scores = recognizer.classifier.scores
    monkeypatch.setattr(recognizer.classifier, "scores", lambda crops, shifted=False: asked.append(shifted)
                        or scores(crops, shifted))
    assert recognizer.detect(sample_face()) and asked == [True]
    recognizer.process(sample_face(), recognizer.tracker())
    assert asked[-1] is False
