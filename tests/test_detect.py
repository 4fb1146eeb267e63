import numpy as np
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


def test_reduced_resolution_detection_reports_full_resolution_boxes():
    gray = to_gray(sample_face())
    full = FaceDetector().detect(gray)[0]
    fast = FaceDetector(detect_width=256).detect(gray)[0]
    assert np.abs(fast - full).max() < 0.12 * full[2]


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
