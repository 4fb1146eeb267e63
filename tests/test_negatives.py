"""benchmarks/negatives.py's overlays pasted beside the faces, and its counts of false faces and faces lost (the
functions are benchmarks.common's, the benchmarks' helper module)."""
import itertools
import random

import cv2
import numpy as np

from benchmarks import common


def test_a_false_face_is_a_box_new_to_the_overlaid_frame_and_a_lost_face_one_gone_from_it():
    face, letter = [100, 50, 80, 80], [400, 60, 90, 90]
    clean = [[face], [face], [face], []]
    overlaid = [[face], [face, letter], [], [letter]]
    faces = [[face], [face], [face], []]
    assert common.compare(clean, overlaid, faces) == (2, 1)
    # A clean box that is no face (a bokeh light the overlay hid) is not a face lost.
    assert common.compare([[letter]], [[]], [[face]]) == (0, 0)
    assert common.compare([[face]], [[[104, 52, 80, 80]]], [[face]]) == (0, 0), "the same face, moved a little"


def test_each_overlay_stays_for_a_caption_s_frames_beside_the_faces():
    clean = [np.full((336, 596, 3), 90, np.uint8) for _ in range(2 * common.FRAMES_PER_OVERLAY)]
    face = (250, 100, 100, 100)
    pictures = iter([common.glyph_picture("Q", "DejaVuSans-Bold.ttf", (255, 255, 255), None, 120),
                     common.glyph_picture("8", "DejaVuSerif.ttf", (0, 0, 0), (255, 255, 255), 120)])
    frames = common.overlaid_frames(clean, [[face]] * len(clean), pictures, seed=0)
    changed = [np.any(frame != clean[0], axis=2) for frame in frames]
    first, second = changed[0], changed[common.FRAMES_PER_OVERLAY]
    assert first.any() and second.any() and not np.array_equal(first, second)
    assert all(np.array_equal(mask, first) for mask in changed[:common.FRAMES_PER_OVERLAY])
    x, y, w, h = face
    for mask in (first, second):  # nothing pasted on the face grown by a quarter of its size
        assert not mask[y - h // 4:y + h + h // 4, x - w // 4:x + w + w // 4].any()


def test_no_overlay_is_pasted_where_none_fits_beside_the_faces():
    frame = np.zeros((120, 160, 3), np.uint8)
    picture = common.glyph_picture("W", "DejaVuSans.ttf", (255, 255, 255), None, 100)
    assert common.place(picture, frame.shape, [(0, 0, 160, 120)], random.Random(0)) is None
    assert common.place(picture, frame.shape, [], random.Random(0)) is not None


def test_overlays_are_glyphs_logos_and_coins_about_the_chosen_heights():
    pictures = list(itertools.islice(common.overlays(seed=0), 200))
    assert all(picture.ndim == 3 and picture.shape[2] == 4 for picture in pictures)
    heights = [picture.shape[0] for picture in pictures]
    assert min(heights) >= 0.5 * min(common.HEIGHTS) and max(heights) <= 1.5 * max(common.HEIGHTS)
    # Pictures from pictures() are fully opaque; glyphs are transparent around their strokes.
    opaque = sum((picture[..., 3] == 255).all() for picture in pictures)
    assert 0 < opaque < len(pictures) / 3


def test_walls_have_no_face_and_the_clips_size(tiny_model):
    from emotion import EmotionRecognizer
    recognizer = EmotionRecognizer(model=tiny_model)
    for wall in common.walls(seed=0):
        assert wall.shape == (common.WALL_SIZE[1], common.WALL_SIZE[0], 3)
        assert recognizer.detect(wall) == []


def test_each_photo_is_a_wall_with_one_overlay(tmp_path):
    pictures = iter([common.glyph_picture(text, "DejaVuSans-Bold.ttf", (255, 220, 0), None, 100) for text in "AB8"])
    folder = common.write_photos(tmp_path / "photos", 3, pictures, seed=0)
    photos = sorted(folder.iterdir())
    assert [photo.name for photo in photos] == ["photo00000.png", "photo00001.png", "photo00002.png"]
    backgrounds = common.walls(seed=0)
    for photo in photos:
        image = cv2.imread(str(photo))
        nearest = min(backgrounds, key=lambda wall: np.count_nonzero(np.any(wall != image, axis=2)))
        changed = np.any(nearest != image, axis=2)
        assert 0 < changed.mean() < 0.2, "one glyph pasted on one wall"
