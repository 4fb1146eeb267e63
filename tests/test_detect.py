import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emotion.detect import FaceDetector, crop_faces, expand_box, to_gray
from emotion.sources import sample_face


def test_finds_the_one_face_in_a_real_photo():
    boxes = FaceDetector().detect(to_gray(sample_face()))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    # Grace Hopper's face sits in the upper middle of the 512x600 photo.
    assert 100 < x + w / 2 < 400 and 100 < y + h / 2 < 350 and 150 < w < 300


def test_shrunk_search_reports_full_resolution_boxes_and_skips_faces_under_min_face():
    gray = to_gray(sample_face())
    full = FaceDetector(min_face=24).detect(gray)[0]
    shrunk = FaceDetector(min_face=96).detect(gray)[0]  # searched on a copy a quarter the size
    assert np.abs(shrunk - full).max() < 0.12 * full[2]
    small = cv2.resize(gray, None, fx=0.25, fy=0.25)  # the face is now about 55 pixels
    assert len(FaceDetector(min_face=40).detect(small)) == 1
    assert len(FaceDetector(min_face=80).detect(small)) == 0


def test_search_near_a_box_follows_the_face_and_ignores_the_rest_of_the_frame():
    gray = to_gray(sample_face())
    box = FaceDetector().detect(gray)[0]
    moved = np.roll(gray, (9, -12), axis=(0, 1))
    near = FaceDetector().detect_near(moved, box)
    assert len(near) == 1
    np.testing.assert_allclose(near[0][:2], box[:2] + [-12, 9], atol=0.1 * box[2])
    # A region far from the face has none, though the frame still holds one.
    assert len(FaceDetector().detect_near(gray, (0, 450, box[2], box[3]))) == 0


def test_a_damaged_cascade_file_is_a_cascade_error(tmp_path):
    from emotion.detect import BUNDLED_CASCADE, CascadeError
    for name, content in (("random.xml", np.random.default_rng(0).bytes(4000)),
                          ("truncated.xml", BUNDLED_CASCADE.read_bytes()[:300]), ("empty.xml", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CascadeError, match="not a valid OpenCV cascade"):
            FaceDetector(tmp_path / name)


def test_blank_frame_has_no_faces():
    assert FaceDetector().detect(np.full((480, 640), 127, np.uint8)).shape == (0, 4)


def test_crops_are_48x48_raw_pixels():
    gray = to_gray(sample_face())
    crops = crop_faces(gray, FaceDetector().detect(gray), margin=0.1)
    assert crops.shape == (1, 48, 48, 1) and crops.dtype == np.float32
    assert 20 < crops.mean() < 235 and crops.max() > 1  # raw 0-255, not rescaled


@given(x=st.integers(-500, 1000), y=st.integers(-500, 1000), w=st.integers(0, 800), h=st.integers(0, 800),
       margin=st.floats(0, 1))
def test_any_box_gives_a_clipped_box_and_a_crop_without_crashing(x, y, w, h, margin):
    shape = (120, 160)
    left, top, width, height = expand_box((x, y, w, h), margin, shape)
    assert 0 <= left and 0 <= top and width >= 0 and height >= 0
    assert left + width <= shape[1] and top + height <= shape[0]
    crops = crop_faces(np.full(shape, 200, np.uint8), [(x, y, w, h)], margin)
    assert crops.shape == (1, 48, 48, 1)
    assert crops.max() in (0, 200)
