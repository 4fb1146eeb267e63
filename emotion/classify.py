"""Emotion scores for face crops: one fast, batched call per frame, then per-face smoothing over time.

    classifier = EmotionClassifier(model, class_names, litert=litert_from_keras(model, "model.h5"))
    scores = classifier.scores(crops)             # float32 (n, classes), rows sum to 1
    tracker = FaceTracker(class_names)
    faces = tracker.update(boxes, scores)         # [Face(box, label, scores, face_id)], smoothed
"""
import contextlib
import hashlib
import io
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import numpy as np
import tensorflow as tf

from .console import native_stderr_silenced
from .constants import IMAGE_SIZE

# Part of the cache key: a change to how the LiteRT file is made must not reuse old files.
LITERT_RECIPE = "dynamic-range-int8-v1"


class LiteRTModel:
    """A classifier compiled for LiteRT's CPU kernels (XNNPACK): numpy faces in, numpy scores out."""

    def __init__(self, flatbuffer):
        from ai_edge_litert.interpreter import Interpreter
        # One thread: a face costs well under a millisecond, and the other cores decode and detect.
        self.interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = None

    def __call__(self, faces):
        if len(faces) != self.batch:
            self.interpreter.resize_tensor_input(self.input, faces.shape)
            self.interpreter.allocate_tensors()
            self.batch = len(faces)
        self.interpreter.set_tensor(self.input, faces)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


def convert_to_litert(model):
    """LiteRT flatbuffer of a Keras model with 8-bit weights (dynamic-range quantisation)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # The converter narrates its SavedModel export on stdout and stderr; none of it helps a user.
    with contextlib.redirect_stdout(io.StringIO()), native_stderr_silenced():
        return converter.convert()


def litert_from_keras(model, model_path=None):
    """LiteRTModel derived from the Keras model, cached beside model_path; None where LiteRT is not installed.

    The .h5 stays the source of truth: the cache file is named after a hash of its bytes, so a
    retrained model is converted again, never served stale.
    """
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return None
    cache = None
    if model_path is not None and Path(model_path).is_file():
        model_path = Path(model_path)
        digest = hashlib.sha256(model_path.read_bytes() + LITERT_RECIPE.encode()).hexdigest()[:16]
        cache = model_path.with_name(f".{model_path.name}.{digest}.tflite")
        if cache.is_file():
            return LiteRTModel(cache.read_bytes())
    flatbuffer = convert_to_litert(model)
    if cache is not None:
        with contextlib.suppress(OSError):  # a read-only folder only costs the conversion next time
            cache.write_bytes(flatbuffer)
    return LiteRTModel(flatbuffer)


class EmotionClassifier:
    """All faces of a frame in one call: LiteRT when given one, else the Keras model traced once.

    model.predict costs 65-90 ms a call here; the traced graph 3-4 ms; LiteRT with 8-bit weights
    well under one (benchmarks/live_loop.py).
    """

    def __init__(self, model, class_names, flip_average=False, litert=None):
        self.class_names = list(class_names)
        self.flip_average = flip_average
        if litert is not None:
            self._call = litert
        else:
            spec = tf.TensorSpec((None, IMAGE_SIZE, IMAGE_SIZE, 1), tf.float32)
            # One signature with a free batch size, so a new face count never re-traces the graph.
            traced = tf.function(lambda faces: model(faces, training=False), input_signature=[spec])
            self._call = lambda faces: traced(faces).numpy()

    def scores(self, faces):
        """float32 (n, classes) softmax scores for float32 (n, 48, 48, 1) raw-pixel faces."""
        if len(faces) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        faces = np.ascontiguousarray(faces, np.float32)
        if not self.flip_average:
            return self._call(faces)
        both = self._call(np.ascontiguousarray(np.concatenate([faces, faces[:, :, ::-1]])))
        return (both[:len(faces)] + both[len(faces):]) / 2


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


class FaceTracker:
    """Follows faces across frames by box overlap and smooths each one's scores (exponential moving average).

    A face that matches no track starts a new one with its raw scores; a track unseen for
    max_missing frames is forgotten, so a face that comes back starts fresh. A face keeps its label
    until another class leads it by `hysteresis`: averaging alone still flips between two classes
    whose scores hover at the same level.
    """

    def __init__(self, class_names, smoothing=0.25, hysteresis=0.05, min_overlap=0.3, max_missing=10):
        self.class_names = list(class_names)
        self.smoothing = smoothing  # weight of the newest frame's scores
        self.hysteresis = hysteresis
        self.min_overlap = min_overlap
        self.max_missing = max_missing
        self.tracks = {}  # face id -> {"box", "scores", "missing"}
        self.ids = count()
        self.frames = 0  # update calls so far
        self.last_boxes = []  # boxes of the latest update, in its order

    def update(self, boxes, scores):
        """[Face] for this frame's boxes and raw scores, with smoothed scores and stable face ids."""
        pairs = sorted(((box_overlap(box, track["box"]), index, face_id)
                        for index, box in enumerate(boxes) for face_id, track in self.tracks.items()),
                       reverse=True)
        matched, used = {}, set()
        for overlap, index, face_id in pairs:
            if overlap < self.min_overlap:
                break
            if index not in matched and face_id not in used:
                matched[index] = face_id
                used.add(face_id)
        smoothed = np.array(scores, np.float32).reshape(len(boxes), len(self.class_names))
        face_ids, labels = [], []
        for index, box in enumerate(boxes):
            face_id = matched.get(index)
            label = int(np.argmax(smoothed[index]))
            if face_id is None:
                face_id = next(self.ids)
            else:
                track = self.tracks[face_id]
                smoothed[index] = self.smoothing * smoothed[index] + (1 - self.smoothing) * track["scores"]
                label = int(np.argmax(smoothed[index]))
                if smoothed[index][label] - smoothed[index][track["label"]] < self.hysteresis:
                    label = track["label"]
            self.tracks[face_id] = {"box": tuple(box), "scores": smoothed[index], "label": label, "missing": -1}
            face_ids.append(face_id)
            labels.append(self.class_names[label])
        for face_id in list(self.tracks):
            self.tracks[face_id]["missing"] += 1
            if self.tracks[face_id]["missing"] > self.max_missing:
                del self.tracks[face_id]
        self.frames += 1
        self.last_boxes = [tuple(box) for box in boxes]
        return make_faces(boxes, smoothed, self.class_names, face_ids, labels)
