"""The overlay: a box, label and confidence per face, and the frame rate, drawn onto BGR frames in place."""
import cv2

FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR colours, one per class in the model's order, used by the overlay and the pictures alike: they read
# well on skin, on dark or light video, and on a white chart.
PALETTE = ((0, 0, 230), (0, 180, 0), (150, 150, 150), (220, 120, 0), (0, 170, 255), (200, 0, 200), (0, 140, 255))


def label_colour(label, class_names):
    return PALETTE[class_names.index(label) % len(PALETTE)] if label in class_names else PALETTE[2]


def draw_text(frame, text, origin, colour, scale=0.6):
    """Text on a filled box, so it stays readable on any background; origin is the box's bottom-left."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 1)
    x, y = max(origin[0], 0), max(origin[1], height + baseline)
    cv2.rectangle(frame, (x, y - height - baseline), (x + width, y), colour, cv2.FILLED)
    cv2.putText(frame, text, (x, y - baseline), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def draw_faces(frame, faces, class_names):
    """Box and 'label 87%' above each face."""
    for face in faces:
        x, y, w, h = face.box
        colour = label_colour(face.label, class_names)
        cv2.rectangle(frame, (x, y), (x + w, y + h), colour, 2)
        draw_text(frame, f"{face.label} {face.scores[face.label]:.0%}", (x, y - 2), colour)
    return frame


def draw_fps(frame, fps):
    draw_text(frame, f"{fps:.0f} FPS", (8, 28), (255, 255, 255))
    return frame
