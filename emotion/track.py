"""Faces followed from frame to frame: confirmed before they are shown, held through a missed frame, smoothed.

    tracker = FaceTracker(class_names)
    faces = tracker.update(boxes, scores, is_face=verifier)   # [Face], confirmed faces only
"""
from dataclasses import dataclass
from itertools import count

import numpy as np

from .boxes import box_overlap, nested
from .calibrate import Calibration


@dataclass
class Face:
    """One face in one frame: box x, y, w, h in pixels, top label, {class: score}, track id."""
    box: tuple
    label: str
    scores: dict
    face_id: int = 0

    def to_json(self):
        return {"box": [int(v) for v in self.box], "label": self.label,
                "scores": {name: round(float(score), 4) for name, score in self.scores.items()}}


def make_faces(boxes, scores, class_names, face_ids=None, labels=None):
    """Face records from boxes and score rows, labelled with each row's top class unless labels are given."""
    face_ids = face_ids if face_ids is not None else range(len(boxes))
    labels = labels if labels is not None else [class_names[int(np.argmax(row))] for row in scores]
    return [Face(tuple(int(v) for v in box), label, dict(zip(class_names, row.tolist())), face_id)
            for box, row, face_id, label in zip(boxes, scores, face_ids, labels)]


@dataclass
class Track:
    box: tuple
    scores: np.ndarray  # smoothed
    label: int
    hits: int = 1  # frames in which a detection matched this track (in a row, until confirmed)
    missing: int = 0  # frames since the last match
    confirmed: bool = False
    calibration: Calibration = None  # this face's own neutral correction, applied before smoothing
    neutral_rows: list = None  # scores gathered for a calibration under way
    neutral_frames: int = 0  # how many rows that calibration gathers
    calibrated_at: int = None  # frame number at which the calibration was set
    crop: np.ndarray = None  # the face crop last classified, and its raw scores (see known_scores)
    raw: np.ndarray = None


class FaceTracker:
    """Follows faces across frames by box overlap and smooths each one's scores (exponential moving average).

    Haar also boxes caption letters, logos and textures: where an `is_face` check is given (a second,
    independent detector), a new track is shown once it passes it; without one, once it has matched
    detections in `confirm_hits` frames in a row, since those false boxes flicker and a face stays.
    A confirmed face missed by the detector keeps its last box and scores for up to `hold` frames, so
    one missed frame does not blink the overlay. A track unmatched for longer than max_missing frames
    is forgotten, so a face that comes back starts fresh. A face keeps its label until another class
    leads it by `hysteresis`: averaging alone still flips between two classes whose scores hover at the
    same level.
    """

    def __init__(self, class_names, smoothing=0.25, hysteresis=0.05, min_overlap=0.3, max_missing=10,
                 confirm_hits=3, hold=3):
        self.class_names = list(class_names)
        self.smoothing = smoothing  # weight of the newest frame's scores
        self.hysteresis = hysteresis
        self.min_overlap = min_overlap
        self.max_missing = max_missing
        self.confirm_hits = confirm_hits
        self.hold = hold
        self.tracks = {}  # face id -> Track
        self.ids = count()
        self.frames = 0  # update calls so far

    def match(self, boxes):
        """{box index: face id}, greedily by overlap, each track and box used once."""
        pairs = sorted(((box_overlap(box, track.box), index, face_id)
                        for index, box in enumerate(boxes) for face_id, track in self.tracks.items()),
                       reverse=True)
        matched, used = {}, set()
        for overlap, index, face_id in pairs:
            if overlap < self.min_overlap:
                break
            if index not in matched and face_id not in used:
                matched[index] = face_id
                used.add(face_id)
        return matched

    def known_scores(self, boxes, crops, max_change):
        """For each box, the raw scores of the confirmed face it follows where the face's crop has hardly changed
        since they were computed (mean absolute difference under max_change grey levels), else None: a face that
        did not change needs neither searching nor classifying again. The comparison is with the crop last
        classified, not the previous frame's, so that slow changes add up."""
        known = [None] * len(boxes)
        for index, face_id in self.match(boxes).items():
            track = self.tracks[face_id]
            if track.confirmed and track.crop is not None and np.abs(crops[index] - track.crop).mean() < max_change:
                known[index] = track.raw
        return known

    def update(self, boxes, scores, is_face=None, crops=None):
        """[Face] of the confirmed tracks, with smoothed scores and stable ids; is_face(box) -> bool. crops: the face
        crops whose scores were just computed (None for a row from known_scores), kept for known_scores."""
        matched = self.match(boxes)
        raw = np.array(scores, np.float32).reshape(len(boxes), len(self.class_names))
        seen = set()
        followed = [boxes[index] for index in matched]
        for index, box in enumerate(boxes):
            face_id = matched.get(index)
            if face_id is None:
                if any(nested(box, other) for other in followed):
                    continue  # Haar's second box on a face followed already (a chin, a wider frame): no new face
                face_id = next(self.ids)
                self.tracks[face_id] = Track(tuple(box), raw[index], int(np.argmax(raw[index])))
            else:
                self.follow(self.tracks[face_id], tuple(box), self.corrected(self.tracks[face_id], raw[index]))
            track = self.tracks[face_id]
            if crops is not None and crops[index] is not None:
                track.crop, track.raw = crops[index], raw[index]
            if not track.confirmed and self.check_due(track, is_face):
                track.confirmed = is_face is None or bool(is_face(track.box))
            seen.add(face_id)
        faces = []
        for face_id, track in list(self.tracks.items()):
            if face_id not in seen:
                track.missing += 1
                track.hits = track.hits if track.confirmed else 0  # confirmation needs hits in a row
                if track.missing > self.max_missing:
                    del self.tracks[face_id]
                    continue
            if track.confirmed and track.missing <= self.hold:
                faces.append((face_id, track))
        self.frames += 1
        faces.sort(key=lambda item: -item[1].box[2] * item[1].box[3])  # largest first, as detectors give them
        return make_faces([track.box for _, track in faces], [track.scores for _, track in faces],
                          self.class_names, [face_id for face_id, _ in faces],
                          [self.class_names[track.label] for _, track in faces])

    def check_due(self, track, is_face):
        """Whether an unconfirmed track is checked in this frame. With an independent face check, at once
        (a face is shown from its first frame, as on a still image) and then every confirm_hits hits; a
        real face turned away for one check gets another chance, a logo costs one check now and then.
        Without one, only confirm_hits hits in a row confirm it."""
        return track.hits % self.confirm_hits == 0 or (is_face is not None and track.hits == 1)

    def calibrate(self, face_id, frames):
        """Gathers face_id's scores over its next `frames` frames and then corrects that face alone by them
        (see calibrate.Calibration): the person holds a neutral face meanwhile. Replaces an earlier one."""
        if "neutral" not in self.class_names:
            raise ValueError(f"calibration needs a 'neutral' class; the model has {', '.join(self.class_names)}")
        track = self.tracks[face_id]
        track.neutral_rows, track.neutral_frames = [], max(1, frames)

    def calibration_status(self):
        """A line for the overlay while a calibration gathers scores and for as long again once it is set;
        None otherwise."""
        for track in self.tracks.values():
            if track.neutral_rows is not None:
                return f"calibrating: hold a neutral face ({len(track.neutral_rows) / track.neutral_frames:.0%})"
            if track.calibrated_at is not None and self.frames - track.calibrated_at <= track.neutral_frames:
                return "calibrated: this face's scores are now corrected for its neutral look"
        return None

    def corrected(self, track, raw):
        """raw scores corrected by the track's own calibration, gathering them first while one is under way."""
        if track.neutral_rows is not None:
            track.neutral_rows.append(raw)
            if len(track.neutral_rows) >= track.neutral_frames:
                track.calibration = Calibration.from_scores(track.neutral_rows, self.class_names)
                track.neutral_rows, track.calibrated_at = None, self.frames
        return raw if track.calibration is None else track.calibration.apply(raw)

    def follow(self, track, box, raw):
        smoothed = self.smoothing * raw + (1 - self.smoothing) * track.scores
        label = int(np.argmax(smoothed))
        if smoothed[label] - smoothed[track.label] < self.hysteresis:
            label = track.label
        track.box, track.scores, track.label = box, smoothed, label
        track.hits += 1
        track.missing = 0

    def search_boxes(self):
        """Where to look for the followed faces in the next frame: the boxes of the tracks matched in the
        latest frame, and of the faces still shown though missed (so that they are searched for until found)."""
        return [track.box for track in self.tracks.values()
                if track.missing == 0 or (track.confirmed and track.missing <= self.hold)]
