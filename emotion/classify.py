"""Emotion scores for face crops: one fast, batched call per frame.

    classifier = EmotionClassifier(model, class_names, litert=litert_from_keras(model, "model.h5"))
    crops = crop_faces(gray, boxes)               # float32 (n, 48, 48, 1) raw 0-255 pixels
    scores = classifier.scores(crops)             # float32 (n, classes), rows sum to 1

TensorFlow is imported only to convert a model or to run it without LiteRT: a model converted before is served
from its cache (cached_litert) without it, seconds sooner.
"""
import contextlib
import hashlib
import io
import os
import secrets
import sys
from pathlib import Path

import cv2
import numpy as np
from platformdirs import user_cache_dir

from .boxes import expand_box
from .console import load_quietly, native_stderr_silenced
from .constants import IMAGE_SIZE

# Part of the cache key: a change to how the LiteRT file is made must not reuse old files.
LITERT_RECIPE = "dynamic-range-int8-v1"
# The user's cache folder is named after the distribution (pyproject.toml): ~/.cache/little-vgg-emotion on Linux.
CACHE_FOLDER = "little-vgg-emotion"
# A frame's stages run one after another, so classification may take two cores. Where a CPU has no AVX-512 (many
# laptops) a face costs milliseconds: 9.8 ms on one thread, 4.7 ms on two (benchmarks/live_loop.py, 2-core AVX2).
LITERT_THREADS = min(2, os.cpu_count() or 1)


def crop_faces(gray, boxes, margin=0.0):
    """float32 (n, 48, 48, 1) raw-pixel crops of gray at boxes; a box off the frame gives a black crop."""
    crops = np.zeros((len(boxes), IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)
    for crop, box in zip(crops, boxes):
        x, y, w, h = expand_box(box, margin, gray.shape)
        if w and h:
            crop[..., 0] = cv2.resize(gray[y:y + h, x:x + w], (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return crops


class LiteRTModel:
    """A classifier compiled for LiteRT's CPU kernels (XNNPACK): numpy faces in, numpy scores out."""

    def __init__(self, flatbuffer):
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_content=flatbuffer, num_threads=LITERT_THREADS)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.outputs = int(self.interpreter.get_output_details()[0]["shape"][-1])  # classes
        # The first allocation applies the XNNPACK delegate, which announces itself on the native stderr.
        with native_stderr_silenced():
            self.interpreter.allocate_tensors()
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
    load_quietly()
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # The converter narrates its SavedModel export on stdout and stderr; none of it helps a user.
    with contextlib.redirect_stdout(io.StringIO()), native_stderr_silenced():
        return converter.convert()


def litert_installed():
    """True where the LiteRT runtime (ai-edge-litert) can be imported."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def litert_cache(model_path):
    """Where the LiteRT file derived from the .h5 at model_path is kept: beside it, named after a hash of its bytes
    (and of how it is converted), so a retrained model is converted again, never served stale."""
    model_path = Path(model_path)
    digest = hashlib.sha256(model_path.read_bytes() + LITERT_RECIPE.encode()).hexdigest()[:16]
    return model_path.with_name(f".{model_path.name}.{digest}.tflite")


def litert_caches(model_path):
    """Where the LiteRT file of the .h5 at model_path may be, in the order tried: beside it (litert_cache), then,
    for a folder that cannot be written (an installed package in a read-only site-packages), the user's cache
    folder, under the same name but not hidden."""
    beside = litert_cache(model_path)
    return beside, Path(user_cache_dir(CACHE_FOLDER, appauthor=False)) / beside.name.removeprefix(".")


def cached_litert(model_path):
    """LiteRTModel from the cache of the .h5 at model_path (litert_caches), or None: no cache yet, no such file, or
    LiteRT not installed. A damaged cache is None too, with a notice: it is converted again and replaced.

    A cache was written only after its .h5, these very bytes, loaded and passed load_model's checks."""
    if not litert_installed() or not Path(model_path).is_file():
        return None
    for cache in litert_caches(model_path):
        try:
            return LiteRTModel(cache.read_bytes())
        except FileNotFoundError:
            continue
        # Cut short by a full disk or a copy, or unreadable: treated as missing, not as the user's problem.
        except (OSError, ValueError):
            print(f"notice: LiteRT cache {cache} is damaged or unreadable; converting the model again",
                  file=sys.stderr)
            return None
    return None


def converted_litert(model, model_path=None):
    """LiteRTModel converted from the Keras model, and cached for model_path when given: beside it, else in the
    user's cache folder (litert_caches); None where LiteRT is not installed."""
    if not litert_installed():
        return None
    flatbuffer = convert_to_litert(model)
    if model_path is not None and Path(model_path).is_file():
        for cache in litert_caches(model_path):
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(cache, flatbuffer)
                break
            except OSError:  # read-only or full; where neither place takes it, the next run converts again
                continue
    return LiteRTModel(flatbuffer)


def litert_from_keras(model, model_path=None):
    """LiteRTModel of the Keras model loaded from model_path: its cache where there is one (cached_litert), else
    converted and cached (converted_litert); None where LiteRT is not installed. The .h5 stays the source of
    truth."""
    return (cached_litert(model_path) if model_path is not None else None) or converted_litert(model, model_path)


def write_atomically(path, data):
    """data into path, so that readers (other processes starting at the same time) see all of it or none."""
    partial = path.with_name(f"{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)  # atomic within one folder
    finally:
        with contextlib.suppress(OSError):  # only still there when writing or renaming failed
            partial.unlink()


class EmotionClassifier:
    """All faces of a frame in one call: LiteRT when given one, else the Keras model traced once.

    model.predict costs tens of milliseconds a call, whatever the batch; LiteRT with 8-bit weights under
    one per face with its mirror image where the CPU has AVX-512, about five on two AVX2 cores
    (benchmarks/live_loop.py prints both).
    """

    def __init__(self, model, class_names, flip_average=False, litert=None):
        self.class_names = list(class_names)
        self.flip_average = flip_average
        if litert is not None:
            self._call = litert
        else:
            import tensorflow as tf  # already loaded, with the Keras model
            spec = tf.TensorSpec((None, IMAGE_SIZE, IMAGE_SIZE, 1), tf.float32)
            # One signature with a free batch size, so a new face count never re-traces the graph.
            traced = tf.function(lambda faces: model(faces, training=False), input_signature=[spec])
            self._call = lambda faces: traced(faces).numpy()

    def scores(self, faces, shifted=False):
        """float32 (n, classes) softmax scores for float32 (n, 48, 48, 1) raw-pixel faces. shifted: also average
        the faces moved by SHIFT pixels each way (9 positions; 18 views with the mirror images), for still
        images, where a few milliseconds a face buy accuracy (benchmarks/test_time_views.py)."""
        if len(faces) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        faces = np.ascontiguousarray(faces, np.float32)
        views = [shift(faces, dx, dy) for dx, dy in SHIFTS] if shifted else [faces]
        if self.flip_average:
            views += [view[:, :, ::-1] for view in views]
        scores = self._call(np.ascontiguousarray(np.concatenate(views)))
        return scores.reshape(len(views), len(faces), -1).mean(axis=0)


# Still images are scored at these offsets too: the training augmentation moves faces by up to 10 %.
SHIFT = 2
SHIFTS = [(dx, dy) for dx in (-SHIFT, 0, SHIFT) for dy in (-SHIFT, 0, SHIFT)]


def shift(faces, dx, dy):
    """(n, 48, 48, 1) faces moved by dx, dy pixels, the edge pixels repeated into the gap."""
    if dx == dy == 0:
        return faces
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return np.stack([cv2.warpAffine(face, matrix, (IMAGE_SIZE, IMAGE_SIZE), borderMode=cv2.BORDER_REPLICATE)
                     for face in faces[..., 0]])[..., None]
