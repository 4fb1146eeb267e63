"""Haar face detection and the crops the classifier sees.

    detector = FaceDetector()                     # the cascade beside the scripts, else OpenCV's copy
    boxes = detector.detect(gray)                 # int (n, 4) array of x, y, w, h in frame pixels
    faces = crop_faces(gray, boxes)               # float32 (n, 48, 48, 1) raw 0-255 pixels
"""
from pathlib import Path

import cv2
import numpy as np

from .constants import CASCADE_NAME, IMAGE_SIZE, PROJECT_DIR

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
    return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


class FaceDetector:
    """Frontal faces with a Haar cascade, run on a copy of the frame at most detect_width pixels wide.

    min_neighbors is 4, not OpenCV's customary 5: on a shrunken frame 5 drops small faces that full-size
    detection finds, and 4 added no false boxes on the generated videos (benchmarks/live_loop.py).
    """

    def __init__(self, cascade_path=None, detect_width=None, scale_factor=1.1, min_neighbors=4):
        cascade_path = Path(cascade_path) if cascade_path else default_cascade_path()
        if not cascade_path.is_file():
            raise CascadeError(f"cascade file {cascade_path} not found")
        self.cascade = cv2.CascadeClassifier(str(cascade_path))
        if self.cascade.empty():
            raise CascadeError(f"cascade file {cascade_path} is not a valid OpenCV cascade")
        self.detect_width = detect_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, gray):
        """int (n, 4) boxes x, y, w, h in the coordinates of gray, largest first."""
        scale = 1.0
        if self.detect_width and gray.shape[1] > self.detect_width:
            # Haar's cost grows with pixel count; at 480 of 640 pixels, faces from 32 pixels still fill
            # the cascade's 24-pixel window.
            scale = gray.shape[1] / self.detect_width
            gray = cv2.resize(gray, (self.detect_width, round(gray.shape[0] / scale)), interpolation=cv2.INTER_AREA)
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors)
        boxes = np.round(np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale).astype(int)
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
