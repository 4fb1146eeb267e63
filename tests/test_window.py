"""test.py's window without a display: keys, pace and snapshots as plain Python, the window's own calls faked; the
score bars by their pixels; and test.py's --scores and image logs as a user runs them."""
import csv
import json
import time

import cv2
import numpy as np
import pytest

from emotion import window
from emotion.draw import BAR_GAP, BAR_LENGTH, draw_scores, label_colour
from emotion.sources import Source, sample_face
from emotion.track import Face, FaceTracker
from emotion.window import BARS, CALIBRATE, PAUSE, QUIT, SAVE, Player, calibrate_largest_face, handle_key, wait_s
from tests.conftest import FakeScreen, run_script

NAMES = ["sad", "happy", "angry"]  # not alphabetical: colours follow the model's own class order


@pytest.mark.parametrize(("key", "action"), [
    (ord("q"), QUIT), (27, QUIT), (ord(" "), PAUSE), (ord("s"), SAVE), (ord("b"), BARS), (ord("c"), CALIBRATE),
    (0x100000 | ord("q"), QUIT),  # q with Num Lock on, as GTK reports it
    (-1, None), (ord("x"), None)])
def test_each_key_has_its_action(key, action):
    assert handle_key(key) == action


def test_a_file_is_paced_by_its_frame_rate_a_live_source_never():
    assert wait_s(25.0, start=100.0, index=10, now=100.1, live=False) == pytest.approx(0.3)
    assert wait_s(25.0, start=100.0, index=10, now=100.5, live=False) == 0  # late: at once, no waiting
    assert wait_s(25.0, start=100.0, index=10, now=100.1, live=True) == 0
    assert wait_s(0.0, start=100.0, index=10, now=100.1, live=False) == 0  # images have no frame rate


def draw(image, bars):
    """A stand-in overlay: a white frame with the score bars, a grey one without."""
    image[:] = 255 if bars else 128
    return image


def video(kind="video", fps=25.0):
    return Source(kind, None, fps, (8, 8))


def play(player, frames):
    started = time.perf_counter()
    for _ in range(frames):
        player.show(np.zeros((8, 8, 3), np.uint8), draw)
    return time.perf_counter() - started


@pytest.mark.parametrize(("kind", "output", "paced"), [("video", None, True), ("demo", None, True),
                                                       ("camera", None, False), ("stream", None, False),
                                                       ("video", "annotated.mp4", False)])
def test_a_file_in_the_window_plays_at_its_own_frame_rate(monkeypatch, kind, output, paced):
    FakeScreen(monkeypatch)
    seconds = play(Player(video(kind), output), 6)  # 6 frames at 25 FPS: 0.24 s
    assert seconds >= 0.235 if paced else seconds < 0.1


def test_keys_pause_switch_the_bars_save_resume_and_quit(monkeypatch, tmp_path, capsys):
    screen = FakeScreen(monkeypatch, [" ", "b", "s", -1, -1, " "])
    monkeypatch.chdir(tmp_path)
    player = Player(video())
    assert play(player, 1) >= 2 * window.POLL_MS / 1000  # held while paused
    assert [image[0, 0, 0] for image in screen.shown] == [128, 255]  # b drew the paused frame again, with bars
    assert "saved emotion-frame0.png" in capsys.readouterr().out
    assert cv2.imread(str(tmp_path / "emotion-frame0.png"))[0, 0, 0] == 255  # what was shown when s was pressed
    assert player.bars and not player.stopped
    # The clock stood still while paused: the next frame is due 1/25 s after the resume, not at once.
    assert play(player, 1) >= 0.02
    screen.keys = [ord("q")]
    player.show(np.zeros((8, 8, 3), np.uint8), draw)
    assert player.stopped


def test_key_c_calibrates_the_largest_face_shown_for_two_seconds_of_frames(monkeypatch):
    FakeScreen(monkeypatch, ["c"])
    player = Player(video())
    player.show(np.zeros((8, 8, 3), np.uint8), draw)
    assert player.calibrate_requested and not player.stopped
    tracker = FaceTracker(["angry", "neutral", "sad"], confirm_hits=1)
    faces = tracker.update([(0, 0, 40, 50), (100, 0, 90, 110)], [[0.2, 0.3, 0.5]] * 2)
    message = calibrate_largest_face(tracker, faces, fps=25.0)
    assert message == f"calibrating face {faces[0].face_id}: hold a neutral face for 2 seconds"
    assert faces[0].box == (100, 0, 90, 110)
    assert tracker.tracks[faces[0].face_id].neutral_frames == 50 and tracker.tracks[faces[1].face_id].neutral_rows is None
    assert "no face" in calibrate_largest_face(tracker, [], fps=25.0)
    assert "--calibrate" in calibrate_largest_face(None, faces, fps=25.0)
    no_neutral = FaceTracker(["angry", "happy"], confirm_hits=1)
    faces = no_neutral.update([(0, 0, 40, 50)], [[0.5, 0.5]])
    assert "needs a 'neutral' class" in calibrate_largest_face(no_neutral, faces, fps=25.0)


def test_an_image_stays_until_a_key_and_b_redraws_it(monkeypatch):
    screen = FakeScreen(monkeypatch, [-1, -1, "b", -1, " "])
    player = Player(video("folder", fps=0.0), bars=True)
    shown = player.show(np.zeros((8, 8, 3), np.uint8), draw)
    assert not screen.keys and not player.stopped  # it waited for the space, which moves on to the next image
    assert [image[0, 0, 0] for image in screen.shown] == [255, 128] and shown[0, 0, 0] == 128


def test_a_snapshot_goes_beside_the_output_and_replaces_no_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "out-frame0.png").write_bytes(b"keep me")
    player = Player(video(), tmp_path / "out.mp4")
    player.index, player.image = 0, np.full((8, 8, 3), 200, np.uint8)
    player.save()
    assert (tmp_path / "out-frame0.png").read_bytes() == b"keep me"
    assert cv2.imread(str(tmp_path / "out-frame0-2.png"))[0, 0, 0] == 200
    assert str(tmp_path / "out-frame0-2.png") in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # no --output: the working folder
    player = Player(video())
    player.index, player.image = 3, np.zeros((8, 8, 3), np.uint8)
    player.save()
    assert (tmp_path / "emotion-frame3.png").is_file()


@pytest.mark.parametrize(("box", "side"), [((40, 50, 120, 60), "right"), ((40, 50, 60, 120), "right"),
                                           ((300, 20, 90, 50), "left")])
def test_score_bars_follow_the_scores_in_each_class_colour(box, side):
    frame = np.zeros((240, 400, 3), np.uint8)
    scores = {"sad": 0.6, "happy": 0.3, "angry": 0.1}
    draw_scores(frame, Face(box, "sad", scores), NAMES)
    x, y, w, _ = box
    rows, columns = np.nonzero(frame.any(axis=2))
    assert rows.min() == y, "level with the box's top"
    assert columns.min() == x + w + BAR_GAP if side == "right" else columns.max() < x
    bars = frame[:, columns.min():columns.min() + BAR_LENGTH]  # then come the names
    heights = []
    for name, score in scores.items():
        rows, columns = np.nonzero((bars == label_colour(name, NAMES)).all(axis=2))
        assert len(set(columns)) == pytest.approx(score * BAR_LENGTH, abs=1), name
        heights.append(rows.mean())
    assert heights == sorted(heights), "one row per class, in the model's order"


@pytest.mark.option("--scores")
def test_scores_option_draws_bars_into_the_output_video(tiny_model, face_video, tmp_path):
    frames = {}
    for option in ([], ["--scores"]):
        output = tmp_path / f"out{len(option)}.mp4"
        result = run_script("test.py", "--source", face_video, "--model", tiny_model, "--no-display",
                            "--max-frames", 5, "--output", output, *option)
        assert result.returncode == 0, result.stderr
        capture = cv2.VideoCapture(str(output))
        frames[bool(option)] = [capture.read()[1] for _ in range(5)]
    # Bars go with a shown face: from its first frames on (compared from the third, once it is surely shown).
    assert all(np.abs(a.astype(int) - b).max() > 100 for a, b in zip(frames[False][2:], frames[True][2:]))


@pytest.mark.option("--log")
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_folder_log_names_each_image_and_has_no_time(tiny_model, tmp_path, suffix):
    folder = tmp_path / "photos"
    folder.mkdir()
    names = ["party.jpg", "beach.png", "office.jpg"]
    for name in names:
        cv2.imwrite(str(folder / name), sample_face())
    log = tmp_path / f"faces{suffix}"
    result = run_script("test.py", "--source", folder, "--model", tiny_model, "--no-display", "--log", log)
    assert result.returncode == 0, result.stderr
    if suffix == ".jsonl":
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert [(record["frame"], record["file"]) for record in records] == list(enumerate(sorted(names)))
        assert all(list(record) == ["frame", "file", "faces"] and record["faces"] for record in records)
    else:
        with open(log) as file:
            rows = list(csv.DictReader(file))
        assert list(rows[0])[:3] == ["frame", "file", "face_id"]
        assert [(int(row["frame"]), row["file"]) for row in rows] == list(enumerate(sorted(names)))
