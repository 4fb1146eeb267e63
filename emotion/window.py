"""test.py's window: annotated frames shown at the source's own pace, and the keys that control it.

    player = Player(source, output="annotated.mp4", bars=False)
    shown = player.show(frame, draw)    # draw(image, bars=...) draws the overlay onto image and returns it
    if player.stopped: ...
    player.close()

Only Player.show and Player.close touch the screen: the keys (handle_key), the pace (wait_s) and the
snapshots (Player.save) are plain Python, so tests need no display.
"""
import itertools
import sys
import time
from pathlib import Path

import cv2

from .calibrate import HOLD_S

QUIT, PAUSE, SAVE, BARS, CALIBRATE = "quit", "pause", "save", "bars", "calibrate"
ACTIONS = {ord("q"): QUIT, 27: QUIT, ord(" "): PAUSE, ord("s"): SAVE, ord("b"): BARS,  # 27: Esc
           ord("c"): CALIBRATE}
TITLE = "Emotion recognition - q/Esc quit, space pause, s save frame, b score bars, c calibrate neutral face"
# How often a paused frame or an image looks for keys, and for its window being closed.
POLL_MS = 50


class WindowError(RuntimeError):
    """No window can be opened here; the message says what to do instead."""


def handle_key(key):
    """The action (QUIT, PAUSE, SAVE, BARS, CALIBRATE) of a cv2.waitKey code; None for no key (-1) or another key."""
    # Some backends add modifier flags (Num Lock) above the low byte.
    return ACTIONS.get(key & 0xFF) if key >= 0 else None


def wait_s(fps, start, index, now, live):
    """Seconds until frame index is due when a file plays at fps from start (times from time.perf_counter);
    0 once it is due. A live source (camera, stream) is never waited for: its frames come in real time, and
    waiting would only show them late. Without an fps (images) there is no pace either."""
    if live or not fps:
        return 0.0
    return max(0.0, start + index / fps - now)


def snapshot_path(stem, index):
    """<stem>-frame<index>.png, or the first of -2.png, -3.png... that is free: a snapshot replaces no file."""
    for copy in itertools.count(1):
        path = Path(f"{stem}-frame{index}{'' if copy == 1 else f'-{copy}'}.png")
        if not path.exists():
            return path


def calibrate_largest_face(tracker, faces, fps):
    """Key c: the largest face shown is calibrated on its next HOLD_S seconds; returns what to tell the user."""
    if tracker is None:
        return "notice: key c calibrates a face of a video or camera; for images, use --calibrate"
    if not faces:
        return "notice: no face to calibrate: key c needs a face in the frame"
    try:
        tracker.calibrate(faces[0].face_id, frames=round(HOLD_S * fps))
    except ValueError as error:
        return f"notice: {error}"
    return f"calibrating face {faces[0].face_id}: hold a neutral face for {HOLD_S:.0f} seconds"


class Player:
    """Shows annotated frames: a video at its own frame rate, a camera or stream as it comes, each image until a
    key. q, Esc or closing the window stops, space pauses and resumes, s saves the frame shown as a PNG, b
    switches the score bars, c asks for a neutral calibration (calibrate_requested, for the caller to act on)."""

    def __init__(self, source, output=None, bars=False):
        """output: the run's --output, if any: snapshots go beside it, named after it (else into the working
        folder), and a run that writes it is not slowed down to the source's pace."""
        self.fps, self.live = (0.0 if output else source.fps), source.live
        self.still = source.kind in ("image", "folder")
        self.stem = Path(output).with_suffix("") if output else Path("emotion")
        self.bars = bars
        self.index, self.start, self.paused_at = -1, None, None
        self.image, self.stopped, self.calibrate_requested = None, False, False

    def show(self, frame, draw):
        """Shows draw(copy of frame, bars=...), holds it until the next frame is due, acting on the keys pressed
        meanwhile, and returns the image shown. The copy leaves frame clean for drawing again when b is pressed."""
        self.index += 1
        if self.start is None:  # the clock starts at the first frame shown, after the model has loaded
            self.start = time.perf_counter()
        self._display(draw(frame.copy(), bars=self.bars))
        while True:
            holding = self.still or self.paused_at is not None
            # At least 1 ms even when due: the window draws itself inside waitKey.
            key = cv2.waitKey(POLL_MS if holding else max(1, round(self.left_s() * 1000)))
            action = handle_key(key)
            if action == QUIT or cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE) < 1:
                self.stopped = True
                return self.image
            if action == SAVE:
                self.save()
            elif action == BARS:
                self.bars = not self.bars
                self._display(draw(frame.copy(), bars=self.bars))
            elif action == CALIBRATE:
                self.calibrate_requested = True
            elif self.still and key != -1:  # any other key, space too, shows the next image
                return self.image
            elif action == PAUSE:
                self.pause()
            elif not holding and self.left_s() == 0:
                return self.image

    def left_s(self):
        """Seconds until the next frame is due: frames are shown at their time, not before."""
        return wait_s(self.fps, self.start, self.index + 1, time.perf_counter(), self.live)

    def pause(self):
        """Pauses, or resumes with the clock moved on by the pause, so that playing goes on at its pace."""
        if self.paused_at is None:
            self.paused_at = time.perf_counter()
        else:
            self.start += time.perf_counter() - self.paused_at
            self.paused_at = None

    def save(self):
        """Writes the image shown as a PNG and prints its path."""
        path = snapshot_path(self.stem, self.index)
        if cv2.imwrite(str(path), self.image):
            print(f"saved {path}")
        else:
            print(f"warning: cannot write {path}", file=sys.stderr)

    def _display(self, image):
        try:
            cv2.imshow(TITLE, image)
        except cv2.error as error:
            raise WindowError("this OpenCV build cannot open windows (opencv-python-headless?): "
                              "add --no-display") from error
        self.image = image

    def close(self):
        cv2.destroyAllWindows()
