import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib.figure import Figure

from emotion.draw import label_colour
from emotion.records import (
    FrameLog,
    frame_record,
    largest_face,
    matplotlib_colour,
    plot_shares,
    plot_timeline,
    summarise,
    summarise_images,
)
from emotion.sources import SourceError
from emotion.track import Face

NAMES = ["sad", "happy", "angry"]  # not alphabetical: colours follow the model's own class order


def test_the_timeline_draws_each_emotion_in_the_overlays_colour(tmp_path):
    records = [{"frame": i, "time_s": i / 30, "faces": [{"face_id": 0, "scores": {"sad": 0.1, "happy": 0.8, "angry": 0.1}}]}
               for i in range(30)]
    plot_timeline(records, NAMES, tmp_path / "timeline.png")
    picture = cv2.imread(str(tmp_path / "timeline.png")).reshape(-1, 3).astype(int)

    def pixels_of(name):
        return int((np.abs(picture - label_colour(name, NAMES)).sum(axis=1) < 40).sum())

    assert pixels_of("happy") > 200 and pixels_of("sad") > 50 and pixels_of("angry") > 50
    assert label_colour("sad", NAMES) != label_colour("sad", sorted(NAMES))




def face(box, label, face_id=0, sad=0.1, happy=0.7, angry=0.2):
    return Face(box, label, {"sad": sad, "happy": happy, "angry": angry}, face_id)


FACES = [face((10, 20, 30, 60), "happy", face_id=3, happy=0.71234),
         face((100, 5, 80, 40), "sad", face_id=7, sad=0.6, happy=0.3, angry=0.1)]


def test_a_frame_record_has_a_time_for_video_and_a_file_name_for_images():
    record = frame_record(4, 1.23456, FACES)
    assert record == {"frame": 4, "time_s": 1.235, "faces": [
        {"box": [10, 20, 30, 60], "label": "happy", "scores": {"sad": 0.1, "happy": 0.7123, "angry": 0.2}, "face_id": 3},
        {"box": [100, 5, 80, 40], "label": "sad", "scores": {"sad": 0.6, "happy": 0.3, "angry": 0.1}, "face_id": 7}]}
    assert frame_record(0, None, FACES[:1], file="party.jpg") == {
        "frame": 0, "file": "party.jpg", "faces": record["faces"][:1]}


def test_a_jsonl_log_has_each_frame_on_disk_as_soon_as_it_is_written(tmp_path):
    path = tmp_path / "faces.jsonl"
    with FrameLog(path, NAMES) as log:
        log.write(0, 0.0, FACES, file="ignored.jpg")
        assert json.loads(path.read_text()) == frame_record(0, 0.0, FACES)  # before the log is closed
        log.write(1, 0.0333, [])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        frame_record(0, 0.0, FACES), {"frame": 1, "time_s": 0.033, "faces": []}]
    with FrameLog(tmp_path / "photos.json", NAMES, images=True) as log:
        log.write(0, None, FACES[:1], file="a.png")
    assert json.loads((tmp_path / "photos.json").read_text()) == frame_record(0, None, FACES[:1], file="a.png")


def test_a_csv_log_has_one_row_per_face_with_scores_in_the_models_class_order(tmp_path):
    path = tmp_path / "faces.CSV"  # the suffix in any case
    with FrameLog(path, NAMES) as log:
        log.write(5, 2.5, FACES)
        log.write(6, 2.5333, [])
    assert list(csv.reader(path.read_text().splitlines())) == [
        ["frame", "time_s", "face_id", "x", "y", "w", "h", "label", "sad", "happy", "angry"],
        ["5", "2.500", "3", "10", "20", "30", "60", "happy", "0.1000", "0.7123", "0.2000"],
        ["5", "2.500", "7", "100", "5", "80", "40", "sad", "0.6000", "0.3000", "0.1000"]]
    with FrameLog(tmp_path / "photos.csv", NAMES, images=True) as log:
        log.write(0, None, FACES[1:], file="b, c.png")
    assert list(csv.reader((tmp_path / "photos.csv").read_text().splitlines())) == [
        ["frame", "file", "face_id", "x", "y", "w", "h", "label", "sad", "happy", "angry"],
        ["0", "b, c.png", "7", "100", "5", "80", "40", "sad", "0.6000", "0.3000", "0.1000"]]


class ShortWrites:
    """A file whose writes take at most `step` bytes, and fail with a full disk after `room` bytes."""

    def __init__(self, file, step, room=None):
        self.file, self.step, self.room = file, step, room

    def write(self, data):
        if self.room is not None and self.room <= 0:
            raise OSError(28, "No space left on device")
        count = min(len(data), self.step, self.room if self.room is not None else len(data))
        if self.room is not None:
            self.room -= count
        return self.file.write(bytes(data[:count]))

    def __getattr__(self, name):
        return getattr(self.file, name)


def test_partial_writes_are_completed_and_a_full_disk_cuts_the_log_back_to_whole_frames(tmp_path):
    path = tmp_path / "faces.jsonl"
    log = FrameLog(path, NAMES)
    log.file = ShortWrites(log.file, step=7)
    log.write(0, 0.0, FACES)
    log.write(1, 0.1, FACES[:1])
    whole = path.read_bytes()
    assert [json.loads(line)["frame"] for line in whole.decode().splitlines()] == [0, 1]
    log.file = ShortWrites(log.file.file, step=7, room=20)
    with pytest.raises(SourceError, match=f"^cannot write {path}: No space left on device$"):
        log.write(2, 0.2, FACES)
    assert path.read_bytes() == whole, "the half-written frame is cut off"
    log.file = log.file.file
    log.write(3, 0.3, [])
    log.close()
    assert [json.loads(line)["frame"] for line in path.read_text().splitlines()] == [0, 1, 3]


def test_the_summary_counts_frames_faces_and_each_emotions_share_in_class_order():
    records = [frame_record(0, 0.0, FACES), frame_record(1, 0.1, FACES[:1]), frame_record(2, 0.2, []),
               frame_record(3, 0.3, [face((0, 0, 9, 9), "angry", face_id=3)])]
    assert summarise(records, NAMES) == ("4 frames, 4 face observations, 2 distinct face(s)\n"
                                         "        sad:  25.0%\n"
                                         "      happy:  50.0%\n"
                                         "      angry:  25.0%")
    assert summarise([frame_record(0, 0.0, [])], NAMES) == "1 frames, 0 face observations, 0 distinct face(s)"


def test_the_largest_face_is_the_largest_area_whatever_the_shape():
    tall, wide = face((0, 0, 10, 100), "sad"), face((0, 0, 40, 30), "happy")  # areas 1000 and 1200
    assert largest_face({"faces": [tall.to_json(), wide.to_json()]})["label"] == "happy"
    short, narrow = face((0, 0, 50, 10), "sad"), face((0, 0, 20, 30), "angry")  # areas 500 and 600
    assert largest_face({"faces": [short.to_json(), narrow.to_json()]})["label"] == "angry"


IMAGE_RECORDS = [
    frame_record(0, None, [face((0, 0, 10, 100), "sad"), face((0, 0, 40, 30), "happy")], file="a.jpg"),
    frame_record(1, None, [face((0, 0, 50, 10), "sad"), face((0, 0, 20, 30), "happy")], file="b.jpg"),
    frame_record(2, None, [], file="c.jpg"),
    frame_record(3, None, [face((5, 5, 20, 20), "sad")], file="d.jpg")]


def test_an_image_run_counts_images_by_their_largest_face_and_all_faces():
    assert summarise_images(IMAGE_RECORDS, NAMES) == ("4 image(s), 5 face(s), 1 image(s) without a face\n"
                                                      "      label  images  faces\n"
                                                      "        sad       1      3\n"
                                                      "      happy       2      2\n"
                                                      "      angry       0      0")


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures that are saved, to read what they show."""
    saved = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def test_the_image_chart_has_one_bar_per_emotion_top_down_in_class_order(tmp_path, figures):
    plot_shares(IMAGE_RECORDS, NAMES, tmp_path / "shares.png")
    [axes] = figures[0].axes
    bars = sorted(axes.patches, key=lambda bar: -bar.get_y())  # top bar first
    assert [round(bar.get_width(), 4) for bar in bars] == [0.3333, 0.6667, 0.0]
    assert [bar.get_facecolor()[:3] for bar in bars] == [
        pytest.approx(matplotlib_colour(label_colour(name, NAMES))) for name in NAMES]
    assert [label.get_text() for label in axes.get_yticklabels()] == NAMES
    assert [text.get_text() for text in axes.texts] == ["33% (1)", "67% (2)", "0% (0)"]
    # Each label just right of its bar and centred on it; the chart has room for a full bar and its label.
    assert all(bar.get_width() < text.get_position()[0] < bar.get_width() + 0.1 for text, bar in zip(axes.texts, bars))
    assert all(text.get_verticalalignment() == "center" for text in axes.texts)
    assert axes.get_title() == "4 image(s), 3 with a face" and axes.get_xlabel() == "share of images"
    assert axes.get_xlim()[0] == 0 and 1.05 < axes.get_xlim()[1] < 1.3
    picture = cv2.imread(str(tmp_path / "shares.png"))
    assert picture.shape[:2] == (round(110 * (0.5 * 3 + 1.2)), 110 * 7)
    plot_shares([frame_record(0, None, [], file="x.jpg")], NAMES, tmp_path / "none.png")
    assert [bar.get_width() for bar in figures[1].axes[0].patches] == [0, 0, 0]
    plot_shares(IMAGE_RECORDS[3:], NAMES, tmp_path / "one.png")  # one image, one face: a full bar
    assert sorted(bar.get_width() for bar in figures[2].axes[0].patches) == [0, 0, 1]


def video_records(seen):
    """Frames 0.1 s apart in which face f is seen in the first seen[f] frames, scoring 0.5 happy, 0.3 sad."""
    return [{"frame": i, "time_s": i / 10, "faces": [
        {"face_id": face_id, "scores": {"sad": 0.3, "happy": 0.5, "angry": 0.2}} for face_id, count in seen.items()
        if i < count]} for i in range(max(seen.values()))]


def test_the_timeline_has_a_panel_per_face_longest_seen_first_and_at_most_four(tmp_path, figures):
    plot_timeline(video_records({1: 3, 2: 6, 3: 2, 4: 5, 5: 1}), NAMES, tmp_path / "timeline.png")
    panels = figures[0].axes
    assert [axes.get_title() for axes in panels] == ["face 2", "face 4", "face 1", "face 3"]
    first = panels[0]
    assert [line.get_label() for line in first.lines] == NAMES
    assert [list(line.get_ydata()) for line in first.lines] == [[0.3] * 6, [0.5] * 6, [0.2] * 6]
    assert list(first.lines[0].get_xdata()) == [0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert [line.get_color() for line in first.lines] == [matplotlib_colour(label_colour(n, NAMES)) for n in NAMES]
    assert all(axes.get_ylim() == (0, 1) and axes.get_ylabel() == "score" for axes in panels)
    assert len({axes.get_xlim() for axes in panels}) == 1, "one time axis for all panels"
    assert {line.get_linewidth() for line in first.lines} == {1.5}
    assert all(line.get_alpha() == 0.3 for axes in panels for line in axes.xaxis.get_gridlines())
    assert panels[-1].get_xlabel() == "time (s)"
    legend = first.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == NAMES
    # The legend: one row, small print, in the top right corner of the first panel.
    assert len({round(text.get_window_extent().y0) for text in legend.get_texts()}) == 1
    assert {text.get_fontsize() for text in legend.get_texts()} == {8}
    box, panel = legend.get_window_extent(), first.get_window_extent()
    assert panel.x1 - 30 < box.x1 <= panel.x1 and panel.y1 - 30 < box.y1 <= panel.y1
    picture = cv2.imread(str(tmp_path / "timeline.png"))
    assert picture.shape[:2] == (round(110 * 2.6 * 4), 110 * 9)


def test_a_timeline_without_faces_says_so_and_faces_without_an_id_are_face_0(tmp_path, figures):
    plot_timeline([{"frame": 0, "time_s": 0.0, "faces": []}], NAMES, tmp_path / "none.png")
    assert [axes.get_title() for axes in figures[0].axes] == ["no faces found"]
    records = [{"frame": 0, "time_s": 0.0, "faces": [{"scores": {"sad": 1.0, "happy": 0.0, "angry": 0.0}}]}]
    plot_timeline(records, NAMES, tmp_path / "one.png")
    assert [axes.get_title() for axes in figures[1].axes] == ["face 0"]
    assert cv2.imread(str(tmp_path / "one.png")).shape[:2] == (round(110 * 2.6), 110 * 9)


def test_a_full_disk_while_saving_a_picture_leaves_no_half_written_file(tmp_path, monkeypatch):
    def full(self, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")
    def refused(self, path, **kwargs):  # fails before writing a byte
        raise PermissionError(13, "Permission denied")
    for savefig, reason in ((full, "No space left on device"), (refused, "Permission denied")):
        monkeypatch.setattr(Figure, "savefig", savefig)
        for plot in (plot_timeline, plot_shares):
            target = tmp_path / f"{plot.__name__}.png"
            with pytest.raises(SourceError, match=f"^cannot write {target}: {reason}$"):
                plot(IMAGE_RECORDS if plot is plot_shares else video_records({0: 2}), NAMES, target)
            assert not target.exists()


def test_matplotlib_gets_the_overlays_bgr_colours_as_rgb():
    assert matplotlib_colour((255, 51, 0)) == (0.0, 0.2, 1.0)
