"""The overlay: a box, label and confidence per face, optionally every class's score as bars, and the frame rate,
drawn onto BGR frames in place."""
import cv2

FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR colours, one per class in the model's order, used by the overlay and the pictures alike: they read
# well on skin, on dark or light video, and on a white chart.
PALETTE = ((0, 0, 230), (0, 180, 0), (150, 150, 150), (220, 120, 0), (0, 170, 255), (200, 0, 200), (0, 140, 255))
# Score bars, in pixels: the length of a score of 1, one class's row, and the gaps box-bars and bar-name.
BAR_LENGTH, BAR_ROW, BAR_GAP = 60, 12, 4
BAR_FONT_SCALE = 0.35


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


def draw_scores(frame, face, class_names):
    """Each class's score as a bar in its colour, with its name, one row per class in the model's order, beside
    the face's box (right of it, or left where the frame ends there): what else the face might be, at a glance."""
    x, y, w, _ = face.box
    name_width = max(cv2.getTextSize(name, FONT, BAR_FONT_SCALE, 1)[0][0] for name in class_names)
    width, height = BAR_LENGTH + BAR_GAP + name_width, BAR_ROW * len(class_names)
    left = x + w + BAR_GAP if x + w + BAR_GAP + width <= frame.shape[1] else max(x - BAR_GAP - width, 0)
    top = max(min(y, frame.shape[0] - height), 0)
    cv2.rectangle(frame, (left, top), (left + width, top + height), (40, 40, 40), cv2.FILLED)
    for row, name in enumerate(class_names):
        bar_top, bar_bottom = top + row * BAR_ROW + 2, top + (row + 1) * BAR_ROW - 2
        # A lighter track shows where a score of 1 would end.
        cv2.rectangle(frame, (left, bar_top), (left + BAR_LENGTH - 1, bar_bottom), (80, 80, 80), cv2.FILLED)
        length = round(face.scores[name] * BAR_LENGTH)
        if length:
            cv2.rectangle(frame, (left, bar_top), (left + length - 1, bar_bottom), label_colour(name, class_names),
                          cv2.FILLED)
        cv2.putText(frame, name, (left + BAR_LENGTH + BAR_GAP, bar_bottom), FONT, BAR_FONT_SCALE, (255, 255, 255),
                    1, cv2.LINE_AA)
    return frame


def draw_overlay(frame, faces, class_names, bars=False, fps=None, notice=None):
    """What test.py shows: draw_faces, each face's score bars if bars, the frame rate unless it is None, and
    a notice line at the bottom (a calibration under way) unless it is None."""
    draw_faces(frame, faces, class_names)
    if bars:
        for face in faces:
            draw_scores(frame, face, class_names)
    if fps is not None:
        draw_fps(frame, fps)
    if notice is not None:
        draw_text(frame, notice, (8, frame.shape[0] - 10), (255, 255, 255))
    return frame


def draw_fps(frame, fps):
    draw_text(frame, f"{fps:.0f} FPS", (8, 28), (255, 255, 255))
    return frame
