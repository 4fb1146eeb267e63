"""Box geometry: every box is x, y, w, h in pixels of the image it was found in.

    box_overlap(a, b)               # intersection over union
    nested(a, b)                    # either centre inside the other box: two boxes on one face
    expand_box(box, 0.5, shape)     # grown by half its size on each side, clipped to the image
    distinct(boxes)                 # without the boxes that overlap an earlier one
"""
import numpy as np


def box_overlap(a, b):
    """Intersection over union of two boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    intersection = width * height
    return intersection / (a[2] * a[3] + b[2] * b[3] - intersection)


def centre_inside(inner, outer):
    """True when inner's centre lies inside outer (edges included)."""
    x, y = inner[0] + inner[2] / 2, inner[1] + inner[3] / 2
    return outer[0] <= x <= outer[0] + outer[2] and outer[1] <= y <= outer[1] + outer[3]


def nested(a, b):
    """True when the centre of either box lies inside the other: two boxes on one face."""
    return centre_inside(a, b) or centre_inside(b, a)


def expand_box(box, margin, frame_shape):
    """Box grown by margin (a share of its size) on each side, then clipped to the frame."""
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    height, width = frame_shape[:2]
    left, top = min(max(x - dx, 0), width), min(max(y - dy, 0), height)
    right, bottom = min(x + w + dx, width), min(y + h + dy, height)
    return left, top, max(right - left, 0), max(bottom - top, 0)


def largest_first(boxes):
    """int (n, 4) boxes sorted by area, largest first (ties keep their order)."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]


def distinct(boxes, max_overlap=0.5):
    """int (n, 4) boxes without the ones that overlap an earlier one: two tracks can find the same face."""
    kept = []
    for box in boxes:
        if all(box_overlap(box, other) <= max_overlap for other in kept):
            kept.append(box)
    return np.array(kept, int).reshape(-1, 4)


def unframed(boxes, scale, pad, image_shape):
    """Boxes found in a copy of an image enlarged scale times with pad pixels added on each side, in the image's
    own pixels, clipped to it."""
    return [expand_box(np.round((box - [pad, pad, 0, 0]) / scale).astype(int), 0.0, image_shape) for box in boxes]
