"""benchmarks/release_compare.py: two releases' live paths on the same video, scored frame by frame (its scoring
is benchmarks.common's, the benchmarks' helper module; the script itself runs as a user runs it)."""
import json
import subprocess

import pytest

from benchmarks import common
from tests.conftest import ROOT, run_script

CLASSES = ["angry", "happy", "neutral", "sad", "surprise"]


def record(time_s, *faces):
    """A --log frame record: faces as (box, label)."""
    return {"frame": 0, "time_s": time_s, "faces": [{"box": list(box), "label": label} for box, label in faces]}


def test_score_truth_counts_each_face_on_screen_and_a_face_not_shown_as_wrong():
    truth = [[(0, (10, 10, 50, 50)), (1, (200, 10, 50, 50))]] * 2
    labels = [1, 3]  # face 0 happy, face 1 sad
    records = [record(0.0, ((11, 10, 50, 50), "happy"), ((201, 10, 50, 50), "angry")),
               record(0.033, ((12, 10, 50, 50), "happy"))]  # face 1 not shown
    per_class, per_frame = common.score_truth(records, truth, labels, CLASSES)
    assert per_class["happy"] == [2, 2, 2]
    assert per_class["sad"] == [0, 1, 2]
    assert per_frame == [[True, False], [True, False]]


def test_score_segments_reads_the_largest_face_and_counts_frames_with_no_face_wrong():
    segments = [(0.0, 1.0, "sad"), (1.0, 2.0, "happy")]
    records = [record(0.5, ((0, 0, 20, 20), "happy"), ((50, 0, 80, 80), "sad")),  # largest: sad, right
               record(1.0, ((0, 0, 60, 60), "angry")),  # the end of a segment is the next one's start
               record(1.5),  # no face shown
               record(2.5, ((0, 0, 60, 60), "happy"))]  # outside every segment: not scored
    per_class, per_frame = common.score_segments(records, segments, CLASSES)
    assert per_class["sad"] == [1, 1, 1]
    assert per_class["happy"] == [0, 1, 2]
    assert per_frame == [[True], [False], [False], []]


def test_frame_changes_counts_faces_lost_and_gained_between_releases():
    base = [[True, True], [False], []]
    new = [[True, False], [True], []]
    assert common.frame_changes(base, new) == (1, 1)
    assert common.frame_changes(base, base) == (0, 0)


def test_unlabelled_summary_counts_faces_and_label_differences():
    base = [record(0, ((0, 0, 9, 9), "sad")), record(0.1, ((0, 0, 9, 9), "sad")), record(0.2)]
    new = [record(0, ((0, 0, 9, 9), "sad")), record(0.1, ((0, 0, 9, 9), "angry"), ((20, 0, 5, 5), "happy")),
           record(0.2, ((0, 0, 9, 9), "happy"))]
    summary = common.unlabelled_summary(base, new)
    assert summary["frames with a face"] == [2, 3]
    assert summary["faces shown"] == [2, 4]
    assert summary[common.DIFFERS] == 1  # frame 3: only the new release shows a face
    assert summary["labels"] == [{"sad": 2}, {"sad": 1, "angry": 1, "happy": 1}]


@pytest.mark.parametrize(("text", "message"), [
    ("start_s,end_s\n0,1\n", "columns start_s,end_s,label"),
    ("start_s,end_s,label\n0,x,sad\n", "columns start_s,end_s,label"),
    ("start_s,end_s,label\n0,1,bored\n", "labels bored, which the model does not know"),
])
def test_a_bad_segments_file_is_one_error_line(tmp_path, text, message):
    path = tmp_path / "clip.csv"
    path.write_text(text)
    with pytest.raises(SystemExit, match=message):
        common.read_segments(path, CLASSES)


@pytest.mark.e2e
def test_the_last_commit_against_itself_reads_every_frame_alike(tmp_path, face_video):
    """Two trees of the same commit, each running its own test.py: every per-frame figure the same."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    segments = tmp_path / "clip.csv"
    segments.write_text("start_s,end_s,label\n0,0.4,happy\n0.4,1,neutral\n")
    out = tmp_path / "figures.json"
    run = run_script("benchmarks/release_compare.py", "--base", head, "--new", "HEAD", "--data-dir", tmp_path / "none",
                     "--real-videos", face_video.parent, "--video", face_video, "--segments", segments, "--json", out)
    assert run.returncode == 0, run.stderr
    figures = json.loads(out.read_text())
    clip = figures["labelled"][face_video.name]
    assert clip["per_class"][0] == clip["per_class"][1]
    assert (clip["lost"], clip["gained"]) == (0, 0)
    assert sum(counts[2] for counts in clip["per_class"][0].values()) == 24  # every frame of the clip labelled
    assert clip["per_class"][0]["happy"][2] == 12  # 0-0.4 s at 30 fps
    unlabelled = figures["unlabelled"][face_video.name]
    assert unlabelled["frames"] == 24
    assert unlabelled["frames with a face"][0] == unlabelled["frames with a face"][1] > 0
    assert unlabelled[common.DIFFERS] == 0


def test_an_unknown_release_is_one_error_line(tmp_path):
    with pytest.raises(SystemExit, match="git cannot read release 'no-such-release'"):
        common.release_tree("no-such-release", tmp_path)
