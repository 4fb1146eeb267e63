"""Faces followed from frame to frame: confirmed before they are shown, held through a missed frame, smoothed.

    tracker = FaceTracker(class_names)
    faces = tracker.update(boxes, scores, is_face=verifier)   # [Face], confirmed faces only
"""
from dataclasses import dataclass
from itertools import count

import numpy as np


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


def box_overlap(a, b):
    """Intersection over union of two x, y, w, h boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    intersection = width * height
    return intersection / (a[2] * a[3] + b[2] * b[3] - intersection)


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


class FaceTracker:
    """Follows faces across frames by box overlap and smooths each one's scores (exponential moving average).

    Haar also boxes caption letters, logos and textures, but those flicker: a new track is shown only
    once it has matched detections in `confirm_hits` frames in a row and, where an `is_face` check is given, passed it
    (a second, independent detector). A confirmed face missed by the detector keeps its last box and
    scores for up to `hold` frames, so one missed frame does not blink the overlay. A track unmatched
    for longer than max_missing frames is forgotten, so a face that comes back starts fresh. A face
    keeps its label until another class leads it by `hysteresis`: averaging alone still flips between
    two classes whose scores hover at the same level.
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

    def update(self, boxes, scores, is_face=None):
        """[Face] of the confirmed tracks, with smoothed scores and stable ids; is_face(box) -> bool."""
        matched = self.match(boxes)
        raw = np.array(scores, np.float32).reshape(len(boxes), len(self.class_names))
        seen = set()
        for index, box in enumerate(boxes):
            face_id = matched.get(index)
            if face_id is None:
                face_id = next(self.ids)
                self.tracks[face_id] = Track(tuple(box), raw[index], int(np.argmax(raw[index])))
            else:
                self.follow(self.tracks[face_id], tuple(box), raw[index])
            track = self.tracks[face_id]
            # Checked once enough hits are in, and again every confirm_hits hits if it failed: a real
            # face turned away for one check gets another chance, a logo costs one check now and then.
            if not track.confirmed and track.hits % self.confirm_hits == 0:
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
