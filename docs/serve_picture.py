"""Draw docs/serve.png: the page of `python test.py --serve` in a real browser, a face boxed and labelled live.

    python docs/serve_picture.py [--output docs/serve.png]

The server runs in this process (emotion.serve.create_app over the shipped model, on a free loopback port) and
Debian's chromium (/usr/bin/chromium, driven by playwright, requirements-dev.txt) opens the page with a fake
camera: a .y4m clip of the Grace Hopper photo that matplotlib ships, pasted on a plain background. Once a face is
labelled, with the score bars ticked, the page's main element is saved as the PNG. tests/test_browser.py uses
write_y4m, face_frame and launch_chromium from here.
"""
import argparse
import socket
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# What the fake camera plays, in pixels: what the page asks getUserMedia for.
SIZE = (640, 480)
# A real browser with nothing of its own on the network, a fake camera, and no permission prompt.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
LABELLED = "() => window.emotionState && window.emotionState.labelledFrames > 0"


def face_frame(size=SIZE, face_height=300, background=(60, 50, 40), at=None):
    """(BGR frame of size, (x, y, w, h) of the photo in it): the Grace Hopper photo, face_height pixels high, on a
    plain background with its top-left at `at` (x, y), by default in the middle. At 300 pixels high OpenCV's Haar
    cascade finds its face."""
    from emotion.sources import sample_face
    width, height = size
    photo = sample_face()
    face_width = round(photo.shape[1] * face_height / photo.shape[0])
    photo = cv2.resize(photo, (face_width, face_height), interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), background, np.uint8)
    x, y = at or ((width - face_width) // 2, (height - face_height) // 2)
    if not (0 <= x <= width - face_width and 0 <= y <= height - face_height):
        raise ValueError(f"a photo of {face_width}x{face_height} at {x},{y} leaves a frame of {width}x{height}")
    frame[y:y + face_height, x:x + face_width] = photo
    return frame, (x, y, face_width, face_height)


def write_y4m(path, frames, fps=30):
    """Writes BGR frames (all of one even width and height) as a YUV4MPEG2 file, 4:2:0, which chromium's
    --use-file-for-fake-video-capture plays in a loop as the camera; returns path."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    if width % 2 or height % 2:
        raise ValueError(f"frames of {width}x{height}: 4:2:0 needs an even width and height")
    with open(path, "wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for frame in frames:
            if frame.shape[:2] != (height, width):
                raise ValueError(f"a frame of {frame.shape[1]}x{frame.shape[0]} among frames of {width}x{height}")
            file.write(b"FRAME\n")
            file.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())  # the Y, U and V planes in turn
    return path


def launch_chromium(playwright, y4m, executable=CHROMIUM):
    """Headless chromium (playwright's sync API) whose camera plays the file y4m; no browser is downloaded."""
    if not Path(executable).is_file():
        raise FileNotFoundError(f"{executable} is missing: install Debian's chromium "
                                "(apt-get install --no-install-recommends chromium)")
    return playwright.chromium.launch(executable_path=str(executable), headless=True,
                                      args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={y4m}"])


@contextmanager
def serving(app):
    """The base URL of app, served by uvicorn on a free loopback port from a thread of this process."""
    from emotion.serve import server
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = server(app, "127.0.0.1", port)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        running.should_exit = True
        thread.join(10)


def picture(url, output, y4m, timeout_s=120):
    """Opens url in chromium with y4m as the camera, ticks the score bars, waits for a labelled face and a few
    more answers, and saves the page's main element as output."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, y4m)
        try:
            page = browser.new_page(viewport={"width": 720, "height": 720})
            page.goto(url)
            page.check("#scores")
            page.wait_for_function(LABELLED, timeout=timeout_s * 1000)
            answered = page.evaluate("() => window.emotionState.answered")
            page.wait_for_function(f"() => window.emotionState.answered >= {answered + 3}", timeout=timeout_s * 1000)
            page.locator("main").screenshot(path=str(output))
            return page.evaluate("() => window.emotionState.faces")
        finally:
            browser.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Draw the README's picture of the page of `python test.py "
                                                 "--serve`: a fake camera showing a face, in headless chromium.")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "serve.png", help="PNG to write "
                        "(default: docs/serve.png)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for a labelled face "
                        "(default: 120)")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # emotion, when run as `python docs/serve_picture.py`
    from emotion.recognizer import EmotionRecognizer
    from emotion.serve import create_app
    with tempfile.TemporaryDirectory() as folder:
        frame, _ = face_frame()
        y4m = write_y4m(Path(folder) / "camera.y4m", [frame] * 30)
        with serving(create_app(EmotionRecognizer())) as url:
            faces = picture(url, args.output, y4m, args.timeout)
    print(f"wrote {args.output}: " + ", ".join(f"{face['label']} at {face['box']}" for face in faces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
