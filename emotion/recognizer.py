"""The toolkit as a Python API: faces and emotions from images, frames and videos.

    from emotion import EmotionRecognizer
    recognizer = EmotionRecognizer()
    for face in recognizer.detect("photo.jpg"):
        print(face.box, face.label, face.scores)
    records = recognizer.analyze_video("clip.mp4")   # [{"frame", "time_s", "faces": [...]}]
    recognizer.calibrate("neutral.jpg")   # one person's neutral face: their later scores corrected by it
"""
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .boxes import distinct, unframed
from .calibrate import ALPHA, NEUTRAL_TARGET, Calibration
from .classify import EmotionClassifier, cached_litert, converted_litert, crop_faces
from .constants import DEFAULT_MODEL_PATH, MAX_CHANGE, MIN_FACE, SCAN_EVERY
from .detect import WholeImageDetector, make_detector, to_gray
from .model import class_names_for_outputs, load_model, read_model_class_names
from .records import frame_record
from .sources import SourceError, open_source
from .track import FaceTracker, make_faces


class EmotionRecognizer:
    """Faces (Haar, checked by BlazeFace) + little-VGG emotions. Loads its models once; reuse one instance."""

    def __init__(self, model=DEFAULT_MODEL_PATH, cascade=None, min_face=MIN_FACE, detector="haar", verify=True,
                 scan_every=SCAN_EVERY, margin=0.0, flip_average=True, runtime="litert", max_change=MAX_CHANGE):
        """min_face: smallest face searched for, in pixels; smaller ones are too blurred for the 48x48
        classifier to read, and skipping them makes Haar several times cheaper. detector: "haar",
        "blazeface" (a small DNN that also finds tilted and half-turned faces, close to the camera), or
        "none" (each image or frame is one face as it is: folders of face crops).
        verify: keep a Haar box only when BlazeFace also sees a face there (on video, once per new face).
        scan_every: on video, search the whole frame every n-th frame, and in between only around the
        faces being followed (a face lost there triggers a whole-frame search at once).
        margin: share of the box added on each side before cropping; 0 scored best, since Haar's box
        already frames a face much as FER2013 does (benchmarks/labelled_video.py).
        flip_average: score each face and its mirror image, and average (more accurate, twice the
        classification cost). runtime: "litert" (8-bit weights, fastest; falls back to "keras" where
        LiteRT is not installed) or "keras" (the .h5's float32 weights exactly).
        max_change: on video, a followed face whose crop differs from the one last classified by less than this
        (mean absolute difference, grey levels 0-255) is neither searched for nor classified again: it keeps its
        box and scores; 0 searches and classifies every face in every frame."""
        if scan_every < 1 or min_face < 1:
            raise ValueError(f"scan_every and min_face must be 1 or more, not {scan_every} and {min_face}")
        self.detector = make_detector(detector, cascade, min_face, verify)
        # A model converted before runs from its LiteRT cache without Keras and TensorFlow: seconds sooner.
        litert = cached_litert(model) if runtime == "litert" else None
        if litert is not None:
            keras_model = None
            self.class_names = class_names_for_outputs(model, read_model_class_names(model), litert.outputs)
        else:
            keras_model, self.class_names = load_model(model)
            litert = converted_litert(keras_model, model) if runtime == "litert" else None
        self.runtime = "litert" if litert is not None else "keras"
        self.classifier = EmotionClassifier(keras_model, self.class_names, flip_average=flip_average, litert=litert)
        self.scan_every, self.margin, self.max_change = scan_every, margin, max_change
        self.calibration = None  # a Calibration applied to every later score (see calibrate); None: raw scores

    def find_faces(self, frame, gray, tracker):
        """int (n, 4) boxes of one video frame: searched near the tracker's faces where that suffices, and not at all
        for a face whose crop has not changed (see FaceTracker.known_scores)."""
        followed = tracker.search_boxes()
        if not followed or not tracker.frames % self.scan_every:
            return self.detector.find(frame, gray)
        known = self.known_scores(tracker, followed, crop_faces(gray, followed, self.margin))
        boxes = []
        for box, scores in zip(followed, known):
            found = [box] if scores is not None else self.detector.find_near(frame, gray, box)
            if not len(found):
                return self.detector.find(frame, gray)  # a face lost near its box may have moved far
            boxes.append(found[0])
        return distinct(boxes)

    def known_scores(self, tracker, boxes, crops):
        """tracker.known_scores of the crops, or a None for each where every frame is classified."""
        return tracker.known_scores(boxes, crops, self.max_change) if self.max_change else [None] * len(boxes)

    def process(self, frame, tracker=None):
        """[Face] for one frame (any image array that as_image takes): process_frame with a FaceTracker, whose
        faces are confirmed and smoothed across calls; detect_image without one."""
        return self.detect_image(frame) if tracker is None else self.process_frame(frame, tracker)

    def detect_image(self, image):
        """[Face] for one still image array (see as_image and faces_in_image)."""
        return self.faces_in_image(as_image(image))

    def process_frame(self, frame, tracker):
        """[Face] for one video frame (any image array that as_image takes), followed by tracker (see tracker):
        faces are confirmed and smoothed across calls."""
        frame = as_image(frame)
        gray = to_gray(frame)
        boxes = self.find_faces(frame, gray, tracker)
        crops = crop_faces(gray, boxes, self.margin)
        known = self.known_scores(tracker, boxes, crops)
        fresh = iter(self.scores(crops[[index for index, row in enumerate(known) if row is None]]))
        scores = [row if row is not None else next(fresh) for row in known]
        # A new face is checked once before it is shown, where the detector has a check (Haar's BlazeFace).
        is_face = (lambda box: self.detector.is_face(frame, box)) if self.detector.checks else None
        return tracker.update(boxes, scores, is_face, [crop if row is None else None for row, crop in zip(known, crops)])

    def faces_in_image(self, image):
        """[Face] for a still image: the detector's faces of a photo (see find_in_still), boxes clipped to the image."""
        framed, boxes, scale, pad = self.detector.find_in_still(image)
        scores = self.scores(crop_faces(to_gray(framed), boxes, self.margin), shifted=True)
        return make_faces(unframed(boxes, scale, pad, image.shape), scores, self.class_names)

    def scores(self, crops, shifted=False):
        """The classifier's scores of face crops (see EmotionClassifier.scores for shifted), corrected by the
        calibration where one is set."""
        scores = self.classifier.scores(crops, shifted)
        return scores if self.calibration is None else self.calibration.apply(scores)

    def calibrate(self, images, alpha=ALPHA, neutral_target=NEUTRAL_TARGET):
        """Calibration from photos of one person's neutral face (paths or arrays; each one's largest face),
        stored and applied to every later score, of every face; `recognizer.calibration = None` removes it.
        Raises SourceError for an image without a face."""
        if isinstance(images, (str, Path, np.ndarray)):
            images = [images]
        rows = []
        for number, image in enumerate(images, 1):
            faces = self.detect(image)
            if not faces:
                name = image if isinstance(image, (str, Path)) else f"number {number}"
                raise SourceError(f"no face found in calibration image {name}: it needs the person's neutral face")
            rows.append(list(faces[0].scores.values()))  # largest first
        return self.calibrate_scores(rows, alpha, neutral_target)

    def calibrate_scores(self, neutral_scores, alpha=ALPHA, neutral_target=NEUTRAL_TARGET):
        """Calibration from score rows of the person's neutral face as this recognizer gave them (a tracked
        face's smoothed scores, say), stored like calibrate's."""
        if self.calibration is not None:  # those rows were corrected already: start again from the model's
            neutral_scores = self.calibration.remove(np.reshape(neutral_scores, (-1, len(self.class_names))))
        self.calibration = Calibration.from_scores(neutral_scores, self.class_names, alpha, neutral_target)
        return self.calibration

    def detect(self, image):
        """[Face] for one image, given as a file path or a numpy array (see as_image); never smoothed.
        Raises SourceError for anything that is not an image."""
        if isinstance(image, (str, Path)):
            path, image = image, cv2.imread(str(image))
            if image is None:
                raise SourceError(f"image {path} cannot be read")
        return self.process(image)

    def tracker(self, smooth=True):
        """A FaceTracker for one video or camera; smooth=False shows each frame's raw scores, but still
        confirms new faces and follows them (so detection stays cheap)."""
        # A whole frame taken as the face needs no confirmation: nothing was detected that could be false.
        confirm_hits = 1 if isinstance(self.detector, WholeImageDetector) else 3
        if smooth:
            return FaceTracker(self.class_names, confirm_hits=confirm_hits)
        return FaceTracker(self.class_names, smoothing=1.0, hysteresis=0.0, confirm_hits=confirm_hits)

    def frames(self, source, tracker=None, max_frames=None):
        """The frame path every caller shares: a Frame for each frame of source (emotion.sources.Source), at most
        max_frames; with a tracker (see tracker), as video (process_frame), without one as still images."""
        started = time.perf_counter()
        for index, (name, image) in enumerate(source.frames()):
            if max_frames is not None and index >= max_frames:
                break
            faces = self.process(image, tracker)
            yield Frame(index, source.time_s(index, started), name, image, faces)

    def analyze_video(self, path, smooth=True, max_frames=None):
        """Per-frame records {"frame", "time_s", "faces": [Face.to_json() + "face_id"]} of a video file."""
        return [frame_record(frame.index, frame.time_s, frame.faces)
                for frame in self.frames(open_source(path), self.tracker(smooth), max_frames)]


@dataclass
class Frame:
    """One frame as the recognizer read it: its number, seconds into the source (None for images), file name
    (images; else None), the BGR image, and its [Face]."""
    index: int
    time_s: float | None
    name: str | None
    image: np.ndarray
    faces: list


# Smaller than this on a side, an image holds no face that can be found (a face thumbnail of 12 pixels
# still gives its face, one of 8 does not): such an array is taken for a mistake rather than a photo.
MIN_IMAGE_SIDE = 8


def as_image(image):
    """uint8 BGR (h, w, 3) or grey (h, w) for any image array, else SourceError saying what is wrong.

    Takes grey (h, w) or (h, w, 1), BGR and BGRA arrays of uint8, uint16 (its whole range maps onto 0-255),
    bool, other integers in 0-255, or floats in 0-255, or in 0-1 when no value is above 1.
    """
    if not isinstance(image, np.ndarray):
        hint = ": cv2.imread gives None for a file it cannot read" if image is None else ""
        raise SourceError(f"image must be a numpy array or a file path, not {type(image).__name__}{hint}")
    if image.size == 0:
        raise SourceError(f"image is empty (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] not in (3, 4):
        raise SourceError(f"image has shape {image.shape}: expected (h, w) grey, (h, w, 3) BGR or (h, w, 4) BGRA")
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise SourceError(f"image is {image.shape[1]}x{image.shape[0]} pixels: too small to hold a face "
                          f"(at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE})")
    image = as_uint8(image)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.ndim == 3 and image.shape[2] == 4 else image


def as_uint8(image):
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image / 257).round().astype(np.uint8)
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if image.dtype.kind not in "iuf":
        raise SourceError(f"image has dtype {image.dtype}: expected numbers")
    low, high = image.min(), image.max()
    if not 0 <= low <= high <= 255:  # NaN fails this too
        raise SourceError(f"image values run from {low} to {high}: expected 0-255, or 0-1 for floats")
    if image.dtype.kind == "f" and high <= 1:
        image = image * 255
    return image.round().astype(np.uint8)
