"""The toolkit as a Python API: faces and emotions from images, frames and videos.

    from emotion import EmotionRecognizer
    recognizer = EmotionRecognizer()
    for face in recognizer.detect("photo.jpg"):
        print(face.box, face.label, face.scores)
    records = recognizer.analyze_video("clip.mp4")   # [{"frame", "time_s", "faces": [...]}]
"""
from pathlib import Path

import cv2

from .classify import EmotionClassifier, FaceTracker, litert_from_keras, make_faces
from .constants import DEFAULT_MODEL_PATH
from .detect import FaceDetector, crop_faces, to_gray
from .model import load_model
from .records import frame_record
from .sources import SourceError, open_source


class EmotionRecognizer:
    """Haar faces + little-VGG emotions. Loads the model and cascade once; reuse one instance."""

    def __init__(self, model=DEFAULT_MODEL_PATH, cascade=None, detect_width=480, margin=0.0, flip_average=True,
                 runtime="litert", detect_every=1):
        """margin: share of the Haar box added on each side before cropping; 0 scored best, since Haar's
        box already frames a face much as FER2013 does (benchmarks/labelled_video.py).
        flip_average: score each face and its mirror image, and average (more accurate, twice the
        classification cost). runtime: "litert" (8-bit weights, fastest; falls back to "keras" where
        LiteRT is not installed) or "keras" (the .h5's float32 weights exactly). detect_every: with a
        tracker, run Haar on every n-th frame only and classify the faces at their last boxes in between."""
        if detect_every < 1:
            raise ValueError(f"detect_every must be 1 or more, not {detect_every}")
        self.model, self.class_names = load_model(model)
        self.detector = FaceDetector(cascade, detect_width=detect_width)
        litert = litert_from_keras(self.model, model) if runtime == "litert" else None
        self.runtime = "litert" if litert is not None else "keras"
        self.classifier = EmotionClassifier(self.model, self.class_names, flip_average=flip_average, litert=litert)
        self.margin = margin
        self.detect_every = detect_every

    def process(self, frame, tracker=None):
        """[Face] for one BGR or grey frame; with a FaceTracker, scores are smoothed across calls."""
        gray = to_gray(frame)
        if tracker is not None and tracker.frames % self.detect_every:
            # Between detections a face moves a few pixels; the held box still frames it, and Haar,
            # most of a frame's cost, is skipped.
            boxes = tracker.last_boxes
        else:
            boxes = self.detector.detect(gray)
        scores = self.classifier.scores(crop_faces(gray, boxes, self.margin))
        if tracker is not None:
            return tracker.update(boxes, scores)
        return make_faces(boxes, scores, self.class_names)

    def detect(self, image):
        """[Face] for one image, given as a BGR/grey numpy array or a file path; never smoothed."""
        if isinstance(image, (str, Path)):
            path, image = image, cv2.imread(str(image))
            if image is None:
                raise SourceError(f"image {path} cannot be read")
        return self.process(image)

    def tracker(self, smoothing=0.25):
        return FaceTracker(self.class_names, smoothing=smoothing)

    def analyze_video(self, path, smooth=True, max_frames=None):
        """Per-frame records {"frame", "time_s", "faces": [Face.to_json() + "face_id"]} of a video file."""
        source = open_source(path)
        tracker = self.tracker() if smooth else None
        records = []
        for index, (_, frame) in enumerate(source.frames()):
            if max_frames is not None and index >= max_frames:
                break
            records.append(frame_record(index, index / (source.fps or 30.0), self.process(frame, tracker)))
        return records
