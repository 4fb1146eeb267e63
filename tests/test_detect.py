from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emotion.boxes import expand_box
from emotion.classify import crop_faces
from emotion.detect import HaarCascade, to_gray
from emotion.sources import sample_face


def test_finds_the_one_face_in_a_real_photo():
    boxes = HaarCascade().detect(to_gray(sample_face()))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    # Grace Hopper's face sits in the upper middle of the 512x600 photo.
    assert 100 < x + w / 2 < 400 and 100 < y + h / 2 < 350 and 150 < w < 300


def test_shrunk_search_reports_full_resolution_boxes_and_skips_faces_under_min_face():
    gray = to_gray(sample_face())
    full = HaarCascade(min_face=24).detect(gray)[0]
    shrunk = HaarCascade(min_face=96).detect(gray)[0]  # searched on a copy a quarter the size
    assert np.abs(shrunk - full).max() < 0.12 * full[2]
    small = cv2.resize(gray, None, fx=0.25, fy=0.25)  # the face is now about 55 pixels
    assert len(HaarCascade(min_face=40).detect(small)) == 1
    assert len(HaarCascade(min_face=80).detect(small)) == 0


def test_search_near_a_box_follows_the_face_and_ignores_the_rest_of_the_frame():
    gray = to_gray(sample_face())
    box = HaarCascade().detect(gray)[0]
    moved = np.roll(gray, (9, -12), axis=(0, 1))
    near = HaarCascade().detect_near(moved, box)
    assert len(near) == 1
    np.testing.assert_allclose(near[0][:2], box[:2] + [-12, 9], atol=0.1 * box[2])
    # A region far from the face has none, though the frame still holds one.
    assert len(HaarCascade().detect_near(gray, (0, 450, box[2], box[3]))) == 0


def test_a_damaged_cascade_file_is_a_cascade_error(tmp_path):
    from emotion.detect import BUNDLED_CASCADE, CascadeError
    for name, content in (("random.xml", np.random.default_rng(0).bytes(4000)),
                          ("truncated.xml", BUNDLED_CASCADE.read_bytes()[:300]), ("empty.xml", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CascadeError, match="not a valid OpenCV cascade"):
            HaarCascade(tmp_path / name)


def test_blank_frame_has_no_faces():
    assert HaarCascade().detect(np.full((480, 640), 127, np.uint8)).shape == (0, 4)


def test_crops_are_48x48_raw_pixels():
    gray = to_gray(sample_face())
    crops = crop_faces(gray, HaarCascade().detect(gray), margin=0.1)
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


def test_grey_images_pass_through_and_an_alpha_channel_is_ignored():
    bgr = sample_face()
    gray = to_gray(bgr)
    assert gray.shape == bgr.shape[:2] and gray.dtype == np.uint8
    assert to_gray(gray) is gray
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = np.random.default_rng(0).integers(0, 255, bgra.shape[:2])
    np.testing.assert_array_equal(to_gray(bgra), gray)


def test_a_missing_cascade_file_is_named(tmp_path):
    from emotion.detect import CascadeError
    with pytest.raises(CascadeError, match=f"^cascade file {tmp_path / 'absent.xml'} not found$"):
        HaarCascade(tmp_path / "absent.xml")
    assert len(HaarCascade(None).detect(to_gray(sample_face()))) == 1  # None: the bundled cascade


def test_faces_under_min_face_are_not_searched_for_and_faces_over_it_are_found():
    small = cv2.resize(to_gray(sample_face()), None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    [box] = HaarCascade(min_face=24).detect(small)  # the face is about 34 pixels
    assert 28 < box[2] < 42
    assert len(HaarCascade(min_face=0).detect(small)) == 1
    assert len(HaarCascade(min_face=44).detect(small)) == 0


def test_several_faces_come_largest_first_each_box_square_and_in_frame_pixels():
    gray = to_gray(sample_face())
    crop = gray[60:380, 110:420]
    canvas = np.full((400, 800), 120, np.uint8)
    canvas[:320, :310] = crop
    canvas[40:264, 420:637] = cv2.resize(crop, (217, 224))
    canvas[220:380, 600:760] = cv2.resize(crop, (160, 160))
    boxes = HaarCascade().detect(canvas)
    assert len(boxes) == 3
    areas = boxes[:, 2] * boxes[:, 3]
    assert list(areas) == sorted(areas, reverse=True)
    assert (boxes[:, 2] == boxes[:, 3]).all()
    assert 0 < boxes[0][0] < 310 and 600 <= boxes[2][0] + boxes[2][2] / 2 <= 760


def test_search_near_a_box_takes_only_a_face_of_about_its_size_in_the_region_around_it():
    gray = to_gray(sample_face())
    detector = HaarCascade()
    face = detector.detect(gray)[0]  # about 225 pixels
    centre = face[:2] + face[2:] // 2
    for size in (0.6 * face[2], 1.6 * face[2]):  # a face much smaller or larger than the box is another face
        size = int(size)
        assert detector.detect_near(gray, (*(centre - size // 2), size, size)).shape == (0, 4)
    [near] = detector.detect_near(gray, face)
    assert near[2] == near[3] and abs(near[2] - face[2]) < 0.1 * face[2]
    # Two faces side by side: the other one lies outside the region twice the box's size.
    crop = gray[60:380, 110:420]
    pair = np.hstack([crop, crop])
    left = min(detector.detect(pair).tolist())
    [found] = detector.detect_near(pair, left)
    assert abs(found[0] - left[0]) < 20
    # A region too small for the cascade's window has no face, in the usual (0, 4) shape.
    assert detector.detect_near(gray, (0, 0, 10, 10)).shape == (0, 4)
    assert detector.detect_near(gray, (500, 590, 30, 30)).shape == (0, 4)


def test_boxes_grow_by_the_margin_of_their_own_width_and_height_and_stay_in_the_frame():
    assert expand_box((40, 30, 20, 60), 0.5, (200, 300)) == (30, 0, 40, 120)
    assert expand_box((40, 70, 20, 60), 0.25, (200, 300)) == (35, 55, 30, 90)
    assert expand_box((280, 180, 30, 40), 0.5, (200, 300, 3)) == (265, 160, 35, 40)


def test_a_crop_is_its_box_scaled_to_48x48_the_right_way_up_and_round():
    # Noise: every part of the frame differs, top from bottom and left from right.
    gray = np.random.default_rng(0).integers(0, 256, (120, 160), dtype=np.uint8)
    boxes = [(10, 30, 40, 80), (100, 5, 50, 20)]  # tall and wide
    crops = crop_faces(gray, boxes)
    for crop, (x, y, w, h) in zip(crops, boxes):
        expected = cv2.resize(gray[y:y + h, x:x + w], (48, 48), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(crop[..., 0], expected)
    [grown] = crop_faces(gray, boxes[:1], margin=0.25)  # (0, 10, 60, 120) once clipped
    np.testing.assert_array_equal(grown[..., 0], cv2.resize(gray[10:120, 0:60], (48, 48), interpolation=cv2.INTER_AREA))
    assert crop_faces(gray, [(500, 500, 20, 20)]).max() == 0
    assert crop_faces(gray, []).shape == (0, 48, 48, 1)


def test_search_near_a_box_that_is_not_square_looks_for_a_face_as_wide_as_the_box():
    gray = to_gray(sample_face())
    detector = HaarCascade()
    x, y, w, h = detector.detect(gray)[0]
    centre_y = y + h // 2
    # A box four times taller than wide (a whole person, say) and one flatter than the face: the width decides.
    for height in (4 * w, 2 * w // 3):
        [near] = detector.detect_near(gray, (x, centre_y - height // 2, w, height))
        assert abs(near[2] - w) < 0.1 * w and abs(near[0] - x) < 0.1 * w
    # A small face (about 34 pixels) is searched at full size, not shrunk below the cascade's window.
    small = cv2.resize(gray, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    [box] = HaarCascade(min_face=24).detect(small)
    assert len(detector.detect_near(small, box)) == 1
    # No face: still an integer (0, 4) array, like the boxes it would be joined with.
    for empty in (detector.detect_near(gray, (0, 0, 10, 10)), detector.detect_near(gray, (0, 450, w, h))):
        assert empty.shape == (0, 4) and np.issubdtype(empty.dtype, np.integer)


def test_four_neighbouring_windows_must_agree_fewer_false_faces_than_opencvs_default_three():
    from skimage import data
    # The coins photo has no face; Haar takes six coins for faces when it looks from 24 pixels (seven with
    # OpenCV's default of three neighbours), which BlazeFace's check then removes (tests/test_blazeface.py).
    assert len(HaarCascade(min_face=24).detect(data.coins())) == 6


def test_the_cascade_beside_the_scripts_is_used_and_opencvs_copy_when_it_is_missing(tmp_path, monkeypatch):
    import emotion.detect
    from emotion.detect import BUNDLED_CASCADE, default_cascade_path
    assert default_cascade_path() == BUNDLED_CASCADE
    monkeypatch.setattr(emotion.detect, "BUNDLED_CASCADE", tmp_path / "haarcascade_frontalface_default.xml")
    fallback = default_cascade_path()
    assert fallback == Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml" and fallback.is_file()
    assert len(HaarCascade().detect(to_gray(sample_face()))) == 1


@pytest.mark.parametrize("name", ["haar", "blazeface", "none"])
def test_every_detector_answers_the_same_questions_about_a_photo(name):
    from emotion.detect import make_detector
    detector = make_detector(name)
    photo = sample_face()
    [box] = detector.find(photo, to_gray(photo))
    x, y, w, h = box
    if name == "none":
        assert (x, y, w, h) == (0, 0, photo.shape[1], photo.shape[0])
    else:  # Grace Hopper's face, in the upper middle of the photo
        assert 100 < x + w / 2 < 400 and 100 < y + h / 2 < 350 and 150 < w < 300
    near = detector.find_near(photo, to_gray(photo), box)
    # Only Haar can search near a followed face at a fraction of the cost; the others say so with no box,
    # and the recognizer then searches the whole frame.
    assert len(near) == (1 if name == "haar" else 0)
    assert detector.checks == (name == "haar")
    framed, boxes, scale, pad = detector.find_in_still(photo)
    assert framed is photo and (scale, pad) == (1.0, 0) and len(boxes) == 1


def test_an_unknown_detector_is_a_value_error_naming_the_choices():
    from emotion.detect import make_detector
    with pytest.raises(ValueError, match="haar, blazeface, none, not 'dlib'"):
        make_detector("dlib")


def test_a_tight_face_crop_is_found_in_an_enlarged_framed_copy_and_mapped_back_into_the_crop():
    from emotion.boxes import unframed
    from emotion.detect import make_detector
    photo = sample_face()
    x, y, w, h = HaarCascade().detect(to_gray(photo))[0]
    # No margin around the face, and 64 pixels: Haar finds nothing in the crop itself.
    crop = cv2.resize(photo[y:y + h, x:x + w], (64, 64), interpolation=cv2.INTER_AREA)
    framed, boxes, scale, pad = make_detector("haar", verify=False).find_in_still(crop)
    assert scale == 2 and pad == 32 and framed.shape == (192, 192, 3) and len(boxes) == 1
    [(left, top, width, height)] = unframed(boxes, scale, pad, crop.shape)
    assert left >= 0 and top >= 0 and left + width <= 64 and top + height <= 64 and width > 45


def test_without_haar_boxes_that_blazeface_accepts_a_photo_takes_blazefaces_own_checked_faces(monkeypatch):
    from emotion.detect import make_detector
    detector = make_detector("haar")
    photo = sample_face()
    monkeypatch.setattr(detector.cascade, "detect", lambda gray: np.zeros((0, 4), int))
    framed, boxes = detector.find_in_still(photo)[:2]
    assert framed is photo and len(boxes) == 1 and detector.is_face(photo, boxes[0])
    # Without the check there is no second finder: nothing Haar does not find.
    unchecked = make_detector("haar", verify=False)
    monkeypatch.setattr(unchecked.cascade, "detect", lambda gray: np.zeros((0, 4), int))
    assert len(unchecked.find_in_still(photo)[1]) == 0
