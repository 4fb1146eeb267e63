"""The page of `test.py --serve` in a real browser: Debian's chromium, headless, its fake camera playing a clip of
a face. The page must send the frames, draw the answered face's box and label where the face is shown (mirrored),
save a snapshot as PNG and show the calibration's answer. Needs /usr/bin/chromium (.ci/run installs it)."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion.calibrate import HOLD_S
from emotion.detect import HaarCascade, to_gray

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e  # a browser and the server: the whole pipeline, left out of mutation runs
_spec = importlib.util.spec_from_file_location("serve_picture", ROOT / "docs" / "serve_picture.py")
serve_picture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serve_picture)

WAIT_MS = 60_000  # the first answer, on a loaded CPU
PHOTO_AT = (48, 90)  # left of the middle, so that a box drawn unmirrored misses the face shown mirrored
NEAR = 40  # per channel: the canvas is scaled by CSS, so the box's edge pixels are blended


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """(the fake camera's .y4m, the frame it plays, the face's box in it as OpenCV's Haar cascade finds it)."""
    frame, _ = serve_picture.face_frame(at=PHOTO_AT)
    faces = HaarCascade().detect(to_gray(frame))
    assert len(faces) == 1, "the test's frame must show one face that the cascade finds"
    y4m = serve_picture.write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", [frame] * 30)
    return y4m, frame, tuple(int(value) for value in faces[0])


@pytest.fixture(scope="module")
def page(served, camera):
    """The page in chromium, once its first labelled face is drawn."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
    playwright = sync_playwright().start()
    try:
        browser = serve_picture.launch_chromium(playwright, camera[0])
        try:
            page = browser.new_page(viewport={"width": 800, "height": 800}, accept_downloads=True)
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(served)
            try:
                page.wait_for_function(serve_picture.LABELLED, timeout=WAIT_MS)
            except PlaywrightTimeout:
                state = page.evaluate("() => window.emotionState")
                notice = page.text_content("#notice")
                raise AssertionError(f"no labelled face in {WAIT_MS / 1000:.0f} s: state {state}, notice "
                                     f"{notice!r}, page errors {errors}") from None
            page.errors = errors
            yield page
        finally:
            browser.close()
    finally:
        playwright.stop()


def state_of(page):
    return page.evaluate("() => window.emotionState")


def stage_picture(page, overlay=True):
    """BGR screenshot of #stage (the mirrored video with the canvas over it), with or without the canvas."""
    page.eval_on_selector("#overlay", "(canvas, shown) => { canvas.style.visibility = shown ? '' : 'hidden'; }",
                          overlay)
    try:
        shot = page.locator("#stage").screenshot()
    finally:
        page.eval_on_selector("#overlay", "canvas => { canvas.style.visibility = ''; }")
    return cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)


def bgr(hex_colour):
    return np.array([int(hex_colour[index:index + 2], 16) for index in (5, 3, 1)])


def near(picture, colour):
    """True where picture's pixels are within NEAR of colour (BGR) in every channel."""
    return (np.abs(picture.astype(int) - colour) <= NEAR).all(axis=-1)


def shown_box(box, video_width, scale):
    """A box of the frame the server read, in the pixels of a picture of the mirrored video scale times as wide."""
    x, y, w, h = box
    return (video_width - x - w) * scale, y * scale, w * scale, h * scale


def on_edges(mask, box, reach=3):
    """The share of points along box's four edges (every 2 pixels) with a True of mask within reach pixels."""
    x, y, w, h = box
    points = [(x + step, y) for step in np.arange(0, w, 2)] + [(x + step, y + h) for step in np.arange(0, w, 2)]
    points += [(x, y + step) for step in np.arange(0, h, 2)] + [(x + w, y + step) for step in np.arange(0, h, 2)]
    found = []
    for px, py in points:
        px, py = round(px), round(py)
        window = mask[max(py - reach, 0):py + reach + 1, max(px - reach, 0):px + reach + 1]
        found.append(bool(window.any()))
    return float(np.mean(found))


def iou(first, second):
    ax, ay, aw, ah = first
    bx, by, bw, bh = second
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / (aw * ah + bw * bh - inter)


def test_the_camera_face_is_boxed_and_labelled_over_the_mirrored_video_in_its_label_colour(page, camera):
    _, frame, expected = camera
    hidden = stage_picture(page, overlay=False)
    shown = stage_picture(page)
    state = state_of(page)
    assert state["error"] is None and page.errors == []
    assert state["sent"] >= state["answered"] >= state["labelledFrames"] >= 1
    assert len(state["faces"]) == 1
    face = state["faces"][0]
    assert face["label"] in state["classNames"] and set(face["scores"]) == set(state["classNames"])
    assert abs(sum(face["scores"].values()) - 1) < 1e-3
    assert iou(face["box"], expected) > 0.5, f"the answered box {face['box']} is not the face at {expected}"

    height, width = frame.shape[:2]
    assert shown.shape == hidden.shape and abs(shown.shape[0] / shown.shape[1] - height / width) < 0.01
    scale = shown.shape[1] / width
    box = shown_box(face["box"], width, scale)
    colour = bgr(state["colours"][face["label"]])
    with_box, without_box = on_edges(near(shown, colour), box), on_edges(near(hidden, colour), box)
    assert with_box > 0.9 and without_box < with_box - 0.5, (
        f"{face['label']}'s colour on {with_box:.0%} of the box's edges, {without_box:.0%} without the canvas")
    # The box lies over the face as shown: the mirrored video's pixels inside it are not the background.
    x, y, w, h = (round(value) for value in box)
    background = hidden[5, 5].astype(int)
    under_box = near(hidden[y + 5:y + h - 5, x + 5:x + w - 5], background).mean()
    unmirrored = near(hidden[y:y + h, round(width * scale) - x - w:round(width * scale) - x], background).mean()
    assert under_box < 0.1 and unmirrored > 0.9, (
        f"background under the box: {under_box:.0%}; where an unmirrored box would be: {unmirrored:.0%}")
    # "label NN%" above the box: a patch of the colour with dark text on it.
    patch = shown[max(y - round(20 * scale), 0):max(y - 2, 1), x + 2:x + round(50 * scale)]
    filled, text = near(patch, colour).mean(), (patch.max(axis=-1) < 80).mean()
    assert filled > 0.4 and text > 0.03, f"above the box: {filled:.0%} label colour, {text:.0%} dark text"
    assert f"{len(state['faces'])} face" in page.text_content("#status")


def test_snapshot_downloads_the_frame_as_shown_as_a_png(page, camera, tmp_path):
    _, frame, _ = camera
    with page.expect_download(timeout=WAIT_MS) as download_info:
        page.click("#snapshot")
    download = download_info.value
    assert download.failure() is None and download.suggested_filename.endswith(".png")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    snapshot, state = cv2.imread(str(path)), state_of(page)
    assert snapshot.shape == frame.shape
    face = state["faces"][0]
    x, y, w, h = (round(value) for value in shown_box(face["box"], frame.shape[1], 1.0))
    edges = on_edges(near(snapshot, bgr(state["colours"][face["label"]])), (x, y, w, h))
    assert edges > 0.9, f"{face['label']}'s colour on {edges:.0%} of the box's edges in the snapshot"
    # The video in it is mirrored, as on the page: the face is where the box is drawn.
    inside = snapshot[y + 5:y + h - 5, x + 5:x + w - 5].astype(int)
    difference = np.abs(inside - cv2.flip(frame, 1)[y + 5:y + h - 5, x + 5:x + w - 5]).mean()
    assert difference < 20, f"the snapshot's pixels in the box differ from the mirrored frame's by {difference:.0f}"


def test_calibrate_is_answered_in_the_notice(page):
    page.evaluate("() => { document.getElementById('notice').textContent = ''; }")
    page.click("#calibrate")
    page.wait_for_function("() => document.getElementById('notice').textContent !== ''", timeout=WAIT_MS)
    notice = page.text_content("#notice")
    face_id = state_of(page)["faces"][0]["face_id"]
    assert notice == f"calibrating face {face_id}: hold a neutral face for {HOLD_S:.0f} seconds"
