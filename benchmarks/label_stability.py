"""How often the shown label changes on faces that do not change: raw scores vs the live loop's smoothing.

    python benchmarks/label_stability.py                    # 100 FER2013 test faces, 30 frames each
    python benchmarks/label_stability.py --faces 300 --noise 12

Each face is held still in a 640x480 frame for --frames frames, with webcam-like sensor noise and
flickering light, so any label change is flicker, not a real change of expression.
"""
import sys
from itertools import pairwise
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()

import cv2
import numpy as np

from benchmarks.common import benchmark_parser
from emotion.classify import crop_faces
from emotion.data import DatasetError, load_image_folder
from emotion.model import ModelFileError
from emotion.recognizer import EmotionRecognizer
from emotion.sources import Source

FPS = 30.0
FRAME_SIZE = (640, 480)


def still_frames(face, count, noise, light, random):
    """A 48x48 face upscaled to 200 px, held still, under sensor noise and light flicker."""
    bordered = cv2.copyMakeBorder(face, 12, 12, 12, 12, cv2.BORDER_REPLICATE)  # Haar needs some context
    frame = np.full(FRAME_SIZE[::-1], 90, np.float32)
    frame[140:340, 220:420] = cv2.resize(bordered, (200, 200), interpolation=cv2.INTER_CUBIC)
    for _ in range(count):
        lit = frame * (1 + random.uniform(-light, light)) + random.normal(0, noise, frame.shape)
        yield np.clip(lit, 0, 255).astype(np.uint8)


def changes(labels):
    return sum(a != b for a, b in pairwise(labels))


def main(argv=None):
    parser = benchmark_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=repo_root / "../shared/fer2013/test",
                        help="test images as <class>/*.jpg")
    parser.add_argument("--faces", type=int, default=100, help="faces drawn at random (fixed seed)")
    parser.add_argument("--frames", type=int, default=30, help="frames each face is held still")
    parser.add_argument("--noise", type=float, default=8.0, help="sensor noise, grey levels (standard deviation)")
    parser.add_argument("--light", type=float, default=0.1, help="light flicker, share of brightness")
    args = parser.parse_args(argv)
    try:
        recognizer = EmotionRecognizer(model=args.model)
        data = load_image_folder(args.data_dir, recognizer.class_names)
    except (ModelFileError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    random = np.random.default_rng(0)
    raw_changes = shown_changes = frames = 0
    for index in random.choice(len(data.labels), args.faces, replace=False):
        tracker, raw, shown = recognizer.tracker(), [], []
        stills = still_frames(data.images[index, :, :, 0], args.frames, args.noise, args.light, random)
        source = Source("video", lambda _, stills=stills: ((None, still) for still in stills), FPS, FRAME_SIZE)
        # As the live loop runs: a face is shown only after a few detections in a row (and once BlazeFace
        # agrees), so both labels are compared on the frames where it is shown.
        for frame in recognizer.frames(source, tracker):
            faces = frame.faces
            if faces:
                # The frame's own scores at the shown box: those the tracker smoothed, unless the face was
                # missed in this frame and is held at its last box.
                scores = recognizer.classifier.scores(crop_faces(frame.image, [faces[0].box], recognizer.margin))
                raw.append(int(scores[0].argmax()))
                shown.append(faces[0].label)
        raw_changes, shown_changes, frames = raw_changes + changes(raw), shown_changes + changes(shown), frames + len(raw)
    seconds = frames / FPS
    print(f"command: python benchmarks/label_stability.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"{args.faces} still faces x {args.frames} frames (noise {args.noise}, light +-{args.light:.0%}); "
          f"{frames} frames with the face shown (after {recognizer.tracker().confirm_hits} detections in a row)")
    print(f"label changes per second at {FPS:.0f} FPS: raw scores {raw_changes / seconds:.2f}, "
          f"smoothed (default) {shown_changes / seconds:.2f}"
          + (f" = {raw_changes / shown_changes:.1f}x fewer" if shown_changes else " (every flicker removed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
