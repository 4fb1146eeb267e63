import numpy as np
import pytest

from emotion.boxes import box_overlap, nested, unframed
from emotion.track import FaceTracker, make_faces

NAMES = ["angry", "happy", "neutral", "sad", "surprise"]


def test_box_overlap():
    assert box_overlap((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert box_overlap((0, 0, 10, 10), (20, 20, 5, 5)) == 0
    assert box_overlap((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    # Not square: the height counts on its own (a 10x20 box inside a 10x40 one).
    assert box_overlap((0, 0, 10, 40), (0, 10, 10, 20)) == pytest.approx(200 / 400)
    # Every side of its own: a 10x25 corner of two boxes of 1500 and 250 pixels, either way round.
    assert box_overlap((10, 20, 30, 50), (25, 40, 10, 25)) == box_overlap((25, 40, 10, 25), (10, 20, 30, 50)) \
        == pytest.approx(250 / 1500)
    assert box_overlap((0, 0, 10, 10), (20, 0, 10, 10)) == 0, "side by side: rows shared, no columns"
    assert box_overlap((0, 0, 10, 10), (9, 0, 10, 10)) == box_overlap((0, 0, 10, 10), (0, 9, 10, 10)) \
        == pytest.approx(10 / 190), "one pixel wide or high is still an overlap"


def test_a_default_tracker_weighs_each_frame_at_a_quarter_holds_3_frames_and_forgets_after_10():
    tracker, box = FaceTracker(NAMES, confirm_hits=1), (0, 0, 40, 60)
    first_id = tracker.update([box], [one_hot(0)])[0].face_id
    assert tracker.update([box], [one_hot(1)])[0].scores["happy"] == pytest.approx(0.25 * 0.6 + 0.75 * 0.1)
    shown = [len(tracker.update([], np.zeros((0, 5)))) for _ in range(10)]
    assert shown == [1, 1, 1] + [0] * 7
    assert tracker.update([box], [one_hot(1)])[0].face_id == first_id, "missed 10 frames: still followed"
    for _ in range(11):
        tracker.update([], np.zeros((0, 5)))
    assert tracker.update([box], [one_hot(1)])[0].face_id != first_id, "missed 11: forgotten, a new face"


def test_nested_when_either_box_s_centre_lies_in_the_other():
    wide, tall = (0, 0, 100, 20), (40, 5, 20, 40)  # the wide box's centre (50, 10) is in the tall one, not back
    assert nested(wide, tall) and nested(tall, wide)
    assert not nested((0, 0, 100, 20), (40, 25, 20, 40)), "below it: neither centre is in the other"
    tall, wide = (55, 0, 20, 90), (0, 40, 100, 20)  # the tall box's centre (65, 45) is in the wide one, not back
    assert nested(tall, wide) and nested(wide, tall)
    assert not nested((0, 0, 50, 50), (100, 0, 50, 50))


def test_faces_carry_top_label_and_all_scores():
    faces = make_faces([(1, 2, 3, 4)], np.array([[0.1, 0.6, 0.1, 0.1, 0.1]]), NAMES)
    assert faces[0].label == "happy" and faces[0].box == (1, 2, 3, 4)
    assert faces[0].to_json() == {"box": [1, 2, 3, 4], "label": "happy",
                                  "scores": {"angry": 0.1, "happy": 0.6, "neutral": 0.1, "sad": 0.1, "surprise": 0.1}}


def one_hot(index, strength=0.6):
    row = np.full(5, (1 - strength) / 4)
    row[index] = strength
    return row


def test_tracker_keeps_ids_of_moving_faces_and_gives_new_faces_new_ids():
    tracker = FaceTracker(NAMES, confirm_hits=1)
    first = tracker.update([(0, 0, 100, 100), (300, 0, 100, 100)], [one_hot(0), one_hot(1)])
    moved = tracker.update([(310, 5, 100, 100), (10, 5, 100, 100), (600, 300, 80, 80)],
                           [one_hot(1), one_hot(0), one_hot(2)])
    by_box = {face.box: face for face in moved}
    assert by_box[(310, 5, 100, 100)].face_id == first[1].face_id
    assert by_box[(10, 5, 100, 100)].face_id == first[0].face_id
    new = by_box[(600, 300, 80, 80)]
    assert new.face_id not in {face.face_id for face in first}
    np.testing.assert_allclose(list(new.scores.values()), one_hot(2))  # a new face starts fresh
    assert [face.box[2] for face in moved] == [100, 100, 80], "largest first"


def test_smoothing_stops_flicker_but_follows_a_real_change():
    tracker = FaceTracker(NAMES, smoothing=0.25, confirm_hits=1)
    box = (50, 50, 100, 100)
    # Raw labels flip between two close classes every frame: smoothed label should not.
    flicker = [np.array([0.05, 0.44, 0.41, 0.05, 0.05]), np.array([0.05, 0.41, 0.44, 0.05, 0.05])]
    labels = [tracker.update([box], [flicker[i % 2]])[0].label for i in range(30)]
    assert labels.count("happy") == 30
    # A real change of expression shows within a few frames.
    changed = [tracker.update([box], [one_hot(4, 0.9)])[0].label for _ in range(9)]
    assert changed[-1] == "surprise" and changed.index("surprise") <= 4


def test_smoothed_scores_are_the_moving_average_of_raw_scores():
    tracker = FaceTracker(NAMES, smoothing=0.25, confirm_hits=1)
    box = (0, 0, 60, 80)
    tracker.update([box], [one_hot(0, 0.8)])
    second = tracker.update([box], [one_hot(1, 0.8)])[0]
    np.testing.assert_allclose(list(second.scores.values()), 0.25 * one_hot(1, 0.8) + 0.75 * one_hot(0, 0.8),
                               rtol=1e-6)


def test_forgotten_face_starts_fresh():
    tracker = FaceTracker(NAMES, max_missing=2, confirm_hits=1, hold=0)
    face_id = tracker.update([(0, 0, 50, 50)], [one_hot(0)])[0].face_id
    for _ in range(3):
        assert tracker.update([], np.zeros((0, 5))) == []
    back = tracker.update([(0, 0, 50, 50)], [one_hot(3)])[0]
    assert back.face_id != face_id and back.label == "sad"


def test_a_new_face_is_shown_only_after_three_detections():
    tracker = FaceTracker(NAMES)
    box = (100, 100, 90, 120)
    shown = [len(tracker.update([box], [one_hot(1)])) for _ in range(4)]
    assert shown == [0, 0, 1, 1]


def test_a_box_that_flickers_is_never_shown():
    # A caption letter: found on one frame, missed on the next two, again and again.
    tracker = FaceTracker(NAMES)
    letter = (20, 400, 30, 30)
    shown = [tracker.update([letter] if frame % 3 == 0 else [], [one_hot(0)] if frame % 3 == 0 else [])
             for frame in range(60)]
    assert not any(shown)


def test_a_confirmed_face_is_held_through_a_short_miss_then_dropped():
    tracker = FaceTracker(NAMES, hold=3)
    box = (100, 100, 90, 120)
    for _ in range(3):
        tracker.update([box], [one_hot(1)])
    held = [tracker.update([], np.zeros((0, 5))) for _ in range(4)]
    assert [len(faces) for faces in held] == [1, 1, 1, 0]
    assert held[0][0].box == box and held[0][0].label == "happy"


def test_the_face_check_decides_confirmation_and_is_retried():
    box = (100, 100, 90, 120)
    checks = []
    tracker = FaceTracker(NAMES)
    shown = [tracker.update([box], [one_hot(1)], is_face=lambda b: checks.append(b) or len(checks) > 2)
             for _ in range(7)]
    # Checked at the 1st hit (refused), the 3rd (refused), then the 6th (accepted): shown from then on.
    assert [len(faces) for faces in shown] == [0, 0, 0, 0, 0, 1, 1]
    assert checks == [box, box, box]
    at_once = FaceTracker(NAMES)
    assert len(at_once.update([box], [one_hot(1)], is_face=lambda b: True)) == 1, "a checked face is shown at once"
    unchecked = FaceTracker(NAMES)
    assert [len(unchecked.update([box], [one_hot(1)])) for _ in range(3)] == [0, 0, 1], "else after 3 hits"
    rejected = FaceTracker(NAMES)
    assert not any(rejected.update([box], [one_hot(1)], is_face=lambda b: False) for _ in range(12))


def test_search_boxes_are_the_tracks_seen_in_the_latest_frame_and_the_shown_faces_just_missed():
    tracker = FaceTracker(NAMES, confirm_hits=1, hold=2)
    tracker.update([(0, 0, 50, 60), (200, 0, 50, 60)], [one_hot(0), one_hot(1)])
    assert tracker.search_boxes() == [(0, 0, 50, 60), (200, 0, 50, 60)]
    for _ in range(2):
        tracker.update([(204, 2, 50, 60)], [one_hot(1)])
        assert tracker.search_boxes() == [(0, 0, 50, 60), (204, 2, 50, 60)], "a shown face just missed is sought"
    tracker.update([(204, 2, 50, 60)], [one_hot(1)])
    assert tracker.search_boxes() == [(204, 2, 50, 60)], "until its hold (2 missed frames) is over"
    unconfirmed = FaceTracker(NAMES)
    unconfirmed.update([(0, 0, 50, 60)], [one_hot(0)])
    unconfirmed.update([], np.zeros((0, 5)))
    assert unconfirmed.search_boxes() == [], "a candidate missed once is left to the next whole-frame search"


def test_key_c_calibration_gathers_one_face_then_corrects_that_face_alone():
    reads_sad = np.array([0.05, 0.05, 0.3, 0.55, 0.05])
    tracker = FaceTracker(NAMES, smoothing=1.0, hysteresis=0.0, confirm_hits=1)
    boxes = [(0, 0, 40, 60), (200, 0, 40, 60)]
    tracker.update(boxes, [reads_sad, reads_sad])
    calibrated, other = (face.face_id for face in tracker.update(boxes, [reads_sad, reads_sad]))
    tracker.calibrate(calibrated, frames=4)
    statuses, labels = [], []
    for _ in range(4):
        faces = tracker.update(boxes, [reads_sad, reads_sad])
        statuses.append(tracker.calibration_status())
        labels.append([face.label for face in faces])
    assert labels[:3] == [["sad", "sad"]] * 3, "scores are not changed while they are gathered"
    assert statuses[:3] == [f"calibrating: hold a neutral face ({share})" for share in ("25%", "50%", "75%")]
    assert statuses[3].startswith("calibrated")
    faces = {face.face_id: face for face in tracker.update(boxes, [reads_sad, reads_sad])}
    assert faces[calibrated].label == "neutral" and faces[calibrated].scores["sad"] < 0.4
    assert faces[other].label == "sad" and faces[other].scores["sad"] == pytest.approx(0.55)
    for _ in range(2):
        tracker.update(boxes, [reads_sad, reads_sad])
    assert tracker.calibration_status().startswith("calibrated")
    tracker.update(boxes, [reads_sad, reads_sad])
    assert tracker.calibration_status() is None, "the notice goes after as long as the calibration took (4 frames)"


def test_a_calibration_of_under_one_frame_takes_one():
    tracker = FaceTracker(NAMES, confirm_hits=1)
    face_id = tracker.update([(0, 0, 40, 60)], [one_hot(2)])[0].face_id
    tracker.calibrate(face_id, frames=0)  # a --calibrate time shorter than a frame
    tracker.update([(0, 0, 40, 60)], [one_hot(2)])
    assert tracker.calibration_status().startswith("calibrated")


def test_calibration_needs_a_neutral_class():
    tracker = FaceTracker(["angry", "happy"], confirm_hits=1)
    face_id = tracker.update([(0, 0, 40, 60)], [[0.5, 0.5]])[0].face_id
    with pytest.raises(ValueError, match="^calibration needs a 'neutral' class; the model has angry, happy$"):
        tracker.calibrate(face_id, frames=10)


def test_a_second_box_on_a_followed_face_is_no_new_face():
    tracker = FaceTracker(NAMES, confirm_hits=1)
    face = (100, 100, 120, 150)
    tracker.update([face], [one_hot(1)])
    # Haar's wider box around the same face, and a box on its chin: each centre lies in the face's box.
    for second in [(80, 90, 170, 190), (140, 180, 110, 130)]:
        faces = tracker.update([face, second], [one_hot(1), one_hot(0)])
        assert [f.box for f in faces] == [face]
    beside = (230, 100, 120, 150)  # a neighbour whose box only touches this one's
    chin = (140, 180, 110, 130)
    faces = tracker.update([face, chin, beside], [one_hot(1), one_hot(0), one_hot(0)])
    assert {f.box for f in faces} == {face, beside}, "a box after the second box is looked at too"
    alone = FaceTracker(NAMES, confirm_hits=1)
    assert [f.box for f in alone.update([(80, 90, 170, 190)], [one_hot(1)])] == [(80, 90, 170, 190)]


def test_confirmation_needs_its_hits_in_a_row():
    tracker, box = FaceTracker(NAMES), (0, 0, 40, 60)  # 3 hits, no face check
    shown = [len(tracker.update(boxes, [one_hot(1)] * len(boxes))) for boxes in [[box], [box], [], [box], [box], [box]]]
    assert shown == [0, 0, 0, 0, 0, 1], "a miss starts the count again"


def test_a_face_is_shown_in_the_frame_where_an_older_track_is_forgotten():
    tracker = FaceTracker(NAMES, confirm_hits=1, max_missing=1, hold=0)
    tracker.update([(0, 0, 40, 60)], [one_hot(0)])
    tracker.update([], np.zeros((0, 5)))
    assert [face.box for face in tracker.update([(300, 0, 40, 60)], [one_hot(1)])] == [(300, 0, 40, 60)]
    assert len(tracker.tracks) == 1


def test_faces_come_largest_first():
    wide, square, tall = (0, 0, 100, 20), (200, 0, 40, 40), (400, 0, 20, 90)  # 2000, 1600 and 1800 pixels
    faces = FaceTracker(NAMES, confirm_hits=1).update([square, tall, wide], [one_hot(0)] * 3)
    assert [face.box for face in faces] == [wide, tall, square]


def test_distinct_keeps_the_first_of_boxes_on_one_face_and_every_box_elsewhere():
    from emotion.boxes import distinct
    kept = distinct([(0, 0, 100, 100), (5, 5, 100, 100), (300, 0, 50, 50), (0, 0, 40, 40)])
    np.testing.assert_array_equal(kept, [(0, 0, 100, 100), (300, 0, 50, 50), (0, 0, 40, 40)])
    assert distinct([]).shape == (0, 4)


def test_largest_first_orders_by_area_and_keeps_ties_in_order():
    from emotion.boxes import largest_first
    ordered = largest_first(np.array([(0, 0, 10, 10), (1, 1, 20, 5), (2, 2, 30, 30), (3, 3, 5, 20)]))
    np.testing.assert_array_equal(ordered[:, 0], [2, 0, 1, 3])


def test_known_scores_are_a_confirmed_faces_last_computed_scores_while_its_crop_hardly_changes():
    tracker = FaceTracker(NAMES, confirm_hits=1)
    crop = np.full((48, 48, 1), 100, np.float32)
    raw = np.array([[0.1, 0.6, 0.1, 0.1, 0.1]], np.float32)
    box = (10, 10, 50, 50)
    assert tracker.known_scores([box], [crop], 0.9) == [None], "nothing followed yet"
    tracker.update([box], raw, crops=[crop])
    [known] = tracker.known_scores([box], [crop + 0.5], 0.9)
    np.testing.assert_array_equal(known, raw[0])
    assert tracker.known_scores([box], [crop + 1.0], 0.9) == [None], "changed by a grey level: classified again"
    assert tracker.known_scores([(300, 300, 50, 50)], [crop], 0.9) == [None], "another place: another face"
    # A row given without its crop (a known one) keeps the crop it was computed on, so slow changes add up.
    tracker.update([box], [known], crops=[None])
    assert tracker.known_scores([box], [crop + 1.0], 0.9) == [None]


def test_an_unconfirmed_face_has_no_known_scores():
    tracker = FaceTracker(NAMES, confirm_hits=3)
    crop = np.zeros((48, 48, 1), np.float32)
    tracker.update([(10, 10, 50, 50)], np.full((1, 5), 0.2, np.float32), crops=[crop])
    assert tracker.known_scores([(10, 10, 50, 50)], [crop], 0.9) == [None]


def test_a_box_of_an_enlarged_padded_copy_maps_back_to_the_image_s_own_whole_pixels_clipped_to_it():
    # Found in a copy twice the size with 10 pixels of border on each side.
    back = unframed(np.array([[30, 50, 42, 60], [190, 0, 60, 60]]), 2, 10, (100, 110, 3))
    assert [tuple(map(int, box)) for box in back] == [(10, 20, 21, 30), (90, 0, 20, 25)]  # the second clipped
    assert all(np.asarray(box).dtype.kind == "i" for box in back)
