"""Haar face detection and the crops the classifier sees.

    detector = FaceDetector()                     # the cascade beside the scripts, else OpenCV's copy
    boxes = detector.detect(gray)                 # int (n, 4) array of x, y, w, h in frame pixels
    near = detector.detect_near(gray, boxes[0])   # the same face in the next frame, found cheaply
    faces = crop_faces(gray, boxes)               # float32 (n, 48, 48, 1) raw 0-255 pixels
"""
from pathlib import Path

import cv2
import numpy as np

from .constants import CASCADE_NAME, IMAGE_SIZE, MIN_FACE, PROJECT_DIR

# The scripts ship their own copy; OpenCV's is the fallback when that file is missing.
BUNDLED_CASCADE = PROJECT_DIR / CASCADE_NAME


class CascadeError(ValueError):
    """A cascade file that is missing or that OpenCV cannot load."""


def default_cascade_path():
    return BUNDLED_CASCADE if BUNDLED_CASCADE.is_file() else Path(cv2.data.haarcascades) / CASCADE_NAME


def to_gray(image):
    """BGR, BGRA or grey uint8 image -> grey uint8."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # takes 3 or 4 channels alike


# The cascade's own window: the smallest face it can find in the image it is given.
HAAR_WINDOW = 24


class FaceDetector:
    """Frontal faces with a Haar cascade, no smaller than min_face pixels.

    Haar's cost is in its smallest scales, and a face much smaller than the classifier's input cannot be
    read anyway, so the whole frame is searched on a copy shrunk until a min_face face fills the
    cascade's window. min_neighbors is 4, not OpenCV's customary 5: on a shrunken frame 5 drops
    small faces that full-size detection finds (benchmarks/live_loop.py).
    """

    def __init__(self, cascade_path=None, min_face=MIN_FACE, scale_factor=1.1, min_neighbors=4):
        cascade_path = Path(cascade_path) if cascade_path else default_cascade_path()
        if not cascade_path.is_file():
            raise CascadeError(f"cascade file {cascade_path} not found")
        try:
            self.cascade = cv2.CascadeClassifier(str(cascade_path))
        # A damaged XML makes OpenCV raise from inside the constructor (as SystemError, not cv2.error).
        except (cv2.error, SystemError):
            self.cascade = None
        if self.cascade is None or self.cascade.empty():
            raise CascadeError(f"cascade file {cascade_path} is not a valid OpenCV cascade")
        self.min_face = max(min_face, 1)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, gray):
        """int (n, 4) boxes x, y, w, h in the coordinates of gray, largest first: the whole frame searched."""
        return self.search(gray, shrink=max(self.min_face / HAAR_WINDOW, 1.0))

    def detect_near(self, gray, box):
        """Faces in the region around a face's last box, of about its size: a few scales on a small crop.

        Between two frames a face moves and grows little, so the cascade only needs the region twice
        the box's size and the scales 0.7-1.4 of it; that costs a small share of a whole-frame search.
        """
        x, y, w, h = expand_box(box, 0.5, gray.shape)
        if w < HAAR_WINDOW or h < HAAR_WINDOW:
            return np.zeros((0, 4), int)
        # Shrunk until the face is about 60 pixels: at 40 the cascade's neighbouring windows agree too
        # rarely and the face is missed on one real frame in three (test.mp4), at 60 on one in a hundred.
        shrink = max(box[2] / 60, 1.0)
        boxes = self.search(gray[y:y + h, x:x + w], shrink, min_size=0.7 * box[2], max_size=1.4 * box[2])
        return boxes + np.array([x, y, 0, 0])

    def search(self, gray, shrink, min_size=None, max_size=None):
        if shrink > 1:
            size = (max(round(gray.shape[1] / shrink), 1), max(round(gray.shape[0] / shrink), 1))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        sizes = {}
        if min_size:
            sizes["minSize"] = (max(round(min_size / shrink), HAAR_WINDOW),) * 2
        if max_size:
            sizes["maxSize"] = (round(max_size / shrink),) * 2
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              **sizes)
        boxes = np.round(np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * shrink).astype(int)
        return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]


def expand_box(box, margin, frame_shape):
    """Box grown by margin (a share of its size) on each side, then clipped to the frame."""
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    height, width = frame_shape[:2]
    left, top = min(max(x - dx, 0), width), min(max(y - dy, 0), height)
    right, bottom = min(x + w + dx, width), min(y + h + dy, height)
    return left, top, max(right - left, 0), max(bottom - top, 0)


def crop_faces(gray, boxes, margin=0.0):
    """float32 (n, 48, 48, 1) raw-pixel crops of gray at boxes; a box off the frame gives a black crop."""
    crops = np.zeros((len(boxes), IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)
    for crop, box in zip(crops, boxes):
        x, y, w, h = expand_box(box, margin, gray.shape)
        if w and h:
            crop[..., 0] = cv2.resize(gray[y:y + h, x:x + w], (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return crops
