"""FER+'s ten votes per face as training targets (--votes for folders, --csv with --ferplus), and validation scored
against both FER+'s majority and the FER2013 labels."""
import contextlib
import csv
import io
import json

import numpy as np
import pytest

from emotion import batches as batches_module
from emotion.data import (
    FERPLUS_VOTE_COLUMNS,
    DatasetError,
    load_fer_csv,
    load_ferplus_csv,
    load_folder_by_votes,
    load_image_folder,
    load_votes_by_file,
    vote_key,
    vote_targets,
    votes_of_files,
)
from tests.conftest import (
    CLASSES,
    load_script,
    narrow_network,
    pixels_of,
    write_classes,
    write_fer_csv,
    write_votes,
)


def votes(**counts):
    """FER+'s ten vote counts, in its column order, from keyword counts (anger=7, NF=3, ...)."""
    assert set(counts) <= set(FERPLUS_VOTE_COLUMNS)
    return np.array([counts.get(column, 0) for column in FERPLUS_VOTE_COLUMNS])


def test_targets_are_each_class_s_share_of_the_votes_after_single_votes_are_dropped():
    targets, majority = vote_targets(np.stack([votes(neutral=6, sadness=3, anger=1),
                                               votes(happiness=8, surprise=2)]), list(CLASSES))
    assert targets.dtype == np.float32
    # angry, happy, neutral, sad, surprise: anger's single vote is one annotator's slip, not a share of the face.
    np.testing.assert_allclose(targets, [[0, 0, 6 / 9, 3 / 9, 0], [0, 0.8, 0, 0, 0.2]], atol=1e-6)
    assert majority.tolist() == [CLASSES.index("neutral"), CLASSES.index("happy")]


def test_faces_whose_most_votes_fall_outside_the_classes_are_not_trained_on_and_ties_have_no_majority():
    faces = np.stack([votes(fear=6, surprise=4), votes(NF=10), votes(unknown=3, contempt=5, neutral=2),
                      votes(unknown=5, happiness=5), votes(happiness=4, surprise=4, neutral=2),
                      votes(happiness=2, anger=2, fear=2, sadness=2, surprise=2)])
    targets, majority = vote_targets(faces, list(CLASSES))
    assert targets[:3].sum() == 0  # fear, not a face, contempt: no emotion of the five to learn
    # A tie with an outside category is still trained on; a tie at the top has no majority to score against.
    np.testing.assert_allclose(targets[3:], [[0, 1, 0, 0, 0], [0, 0.4, 0.2, 0, 0.4], [0.25, 0.25, 0, 0.25, 0.25]],
                               atol=1e-6)
    assert majority.tolist() == [-1] * 6
    # Asked for, fear is a class like the others: the first face becomes 60 % fear.
    with_fear, majority = vote_targets(faces[:1], ["surprise", "fear"])
    np.testing.assert_allclose(with_fear, [[0.4, 0.6]], atol=1e-6)
    assert majority.tolist() == [1]


def test_a_class_that_fer_plus_has_no_votes_for_is_refused():
    with pytest.raises(DatasetError, match="no votes for class.*bored"):
        vote_targets(votes(neutral=10)[None], ["neutral", "bored"])


@pytest.mark.happens("A votes file does not fit the images")
def test_a_votes_file_is_keyed_by_class_folder_and_file(tmp_path):
    # FER2013 itself files two different images under one name in two folders.
    path = write_votes(tmp_path / "train.csv", [("neutral", "Training_1.jpg", votes(neutral=10)),
                                                ("surprise", "Training_1.jpg", votes(surprise=7, happiness=3)),
                                                ("neutral", "Training_1.jpg", votes(neutral=10))])
    by_file = load_votes_by_file(path)
    assert sorted(by_file) == ["neutral/Training_1.jpg", "surprise/Training_1.jpg"]
    np.testing.assert_array_equal(by_file["surprise/Training_1.jpg"], votes(surprise=7, happiness=3))
    clash = write_votes(tmp_path / "clash.csv", [("neutral", "Training_1.jpg", votes(neutral=10)),
                                                 ("Neutral", "Training_1.jpg", votes(anger=10))])
    with pytest.raises(DatasetError, match=r"clash.csv line 3: neutral/Training_1.jpg has other votes"):
        load_votes_by_file(clash)


@pytest.mark.happens("A votes file does not fit the images")
@pytest.mark.parametrize(("content", "message"), [
    ("file,class,neutral,happiness\nx.jpg,happy,1,9\n", "lacks the column.*surprise, sadness.*NF"),
    ("file,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n", "lacks the column.*class"),
    (("file,class,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
      "a.jpg,sad,1,1,1,1,1,1,1,1,1,1\nb.jpg,sad,1,1,x,1,1,1,1,1,1,1\n"), "line 3: vote counts that are not whole"),
    (("file,class,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
      "a.jpg,sad,1,1,-1,1,1,1,1,1,1,1\n"), "line 2: a negative vote count"),
])
def test_a_votes_file_of_the_wrong_kind_is_refused_saying_why(tmp_path, content, message):
    (tmp_path / "votes.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_votes_by_file(tmp_path / "votes.csv")


def test_images_without_votes_are_counted_and_named(tmp_path):
    write_classes(tmp_path, {"happy": 2, "sad": 1})
    split = load_image_folder(tmp_path, ["happy", "sad"])
    by_file = load_votes_by_file(write_votes(tmp_path / "v.csv", [("happy", "0.png", votes(happiness=10))]))
    with pytest.raises(DatasetError, match=r"2 of 3 images of here have no votes, e\.g\. happy/1.png, sad/0.png"):
        votes_of_files(split, by_file, "here")
    by_file["happy/1.png"] = by_file["sad/0.png"] = votes(sadness=10)
    np.testing.assert_array_equal(votes_of_files(split, by_file, "here")[:, FERPLUS_VOTE_COLUMNS.index("sadness")],
                                  [0, 10, 10])


def test_a_folder_scored_by_votes_takes_every_folder_s_faces_the_crowd_gives_a_class(tmp_path):
    write_classes(tmp_path, {"sad": 2, "fear": 1})
    path = write_votes(tmp_path / "v.csv", [("sad", "0.png", votes(neutral=6, sadness=4)),
                                           ("sad", "1.png", votes(fear=7, sadness=3)),
                                           ("fear", "0.png", votes(sadness=8, fear=2))])
    split = load_folder_by_votes(tmp_path, path, list(CLASSES))
    assert sorted(zip(map(vote_key, split.sources), split.labels.tolist())) == [
        ("fear/0.png", CLASSES.index("sad")), ("sad/0.png", CLASSES.index("neutral"))]


def write_fer_new_csv(path, rows):
    """FER+'s fer2013new.csv as published: Usage, Image name, the ten vote counts."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["Usage", "Image name", *FERPLUS_VOTE_COLUMNS])
        writer.writerows([usage, f"fer{index:07d}.png", *counts] for index, (usage, counts) in enumerate(rows))
    return path


def test_fer2013new_csv_gives_each_kaggle_row_its_votes_and_a_mismatch_is_refused(tmp_path):
    kaggle = write_fer_csv(tmp_path / "fer2013.csv", [(3, pixels_of(1, 0), "Training"), (6, pixels_of(2, 1), "Training"),
                                                       (0, pixels_of(0, 2), "PublicTest")])
    splits = load_fer_csv(kaggle, ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])
    assert splits["Training"].sources == [0, 1] and splits["PublicTest"].sources == [2]
    rows = [("Training", votes(happiness=10)), ("Training", votes(sadness=6, neutral=4)),
            ("PublicTest", votes(anger=10))]
    found = load_ferplus_csv(write_fer_new_csv(tmp_path / "new.csv", rows), splits)
    np.testing.assert_array_equal(found, np.stack([counts for _, counts in rows]))
    with pytest.raises(DatasetError, match="has 2 rows but the fer2013 CSV has more"):
        load_ferplus_csv(write_fer_new_csv(tmp_path / "short.csv", rows[:2]), splits)
    swapped = [rows[0], rows[2], rows[1]]
    with pytest.raises(DatasetError, match="row 2 is Training there but PublicTest here"):
        load_ferplus_csv(write_fer_new_csv(tmp_path / "swapped.csv", swapped), splits)


# --- training.py ---------------------------------------------------------------------------------------------------

class Batches(Exception):
    """Raised by make_dataset's stand-in once the validation data is asked for: (training, validation) calls."""


@pytest.fixture
def datasets(monkeypatch):
    """The (images, targets) that training.py hands make_dataset, training first then validation."""
    calls = []

    def capture(images, labels, *args, **kwargs):
        calls.append((images, labels))
        if len(calls) == 2:
            raise Batches(calls)
    monkeypatch.setattr(batches_module, "make_dataset", capture)
    return calls


def run_training(*args):
    """training.py's main() in this process: (outcome, stdout); outcome is a return code or a SystemExit's message."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        try:
            outcome = load_script("training").main([str(arg) for arg in (*args, "--precision", "float32")])
        except SystemExit as stop:
            outcome = stop.code
    return outcome, stdout.getvalue()


@pytest.fixture
def voted_folders(tmp_path):
    """Train and validation folders with a fear/ folder, and votes that disagree with some folders."""
    write_classes(tmp_path / "train", dict.fromkeys((*CLASSES, "fear"), 2))
    agreeing = {"angry": votes(anger=10), "happy": votes(happiness=10), "neutral": votes(neutral=10),
                "sad": votes(sadness=10), "surprise": votes(surprise=10)}
    train = {(name, f"{index}.png"): counts for name, counts in agreeing.items() for index in range(2)}
    train.update({("angry", "0.png"): votes(anger=8, sadness=2), ("angry", "1.png"): votes(neutral=10),
                  ("fear", "0.png"): votes(happiness=7, fear=3), ("fear", "1.png"): votes(fear=9, surprise=1),
                  ("happy", "0.png"): votes(NF=10)})
    write_classes(tmp_path / "val", dict.fromkeys((*CLASSES, "fear"), 2), seed=1)
    val = {(name, f"{index}.png"): counts for name, counts in agreeing.items() for index in range(2)}
    val.update({("sad", "0.png"): votes(neutral=6, sadness=4), ("fear", "0.png"): votes(surprise=6, fear=4),
                ("fear", "1.png"): votes(fear=10), ("happy", "0.png"): votes(happiness=5, surprise=5)})
    for name, table in (("train", train), ("val", val)):
        write_votes(tmp_path / f"{name}.csv", [(folder, file, counts) for (folder, file), counts in table.items()])
    return tmp_path


@pytest.mark.option("--votes", "--val-votes")
def test_votes_train_every_folder_s_faces_on_their_vote_shares_and_validate_on_the_majority(voted_folders, datasets):
    root = voted_folders
    with pytest.raises(Batches):
        run_training("--train-dir", root / "train", "--val-dir", root / "val", "--votes", root / "train.csv",
                     "--val-votes", root / "val.csv", "--model-out", root / "m.h5")
    (train_images, targets), (val_images, val_labels) = datasets
    # 12 faces read, fear/1 (mostly fear) and happy/0 (not a face) left out; folders are read in sorted order.
    expected = [[0.8, 0, 0, 0.2, 0], [0, 0, 1, 0, 0],  # angry/0, angry/1: FER+ says the second is neutral
                [0, 1, 0, 0, 0],  # fear/0: happy to FER+
                [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0],
                [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]]
    np.testing.assert_allclose(targets, expected, atol=1e-6)
    assert len(train_images) == 10
    read = load_image_folder(root / "train", ["angry", "fear", "happy", "neutral", "sad", "surprise"])
    np.testing.assert_array_equal(train_images[2], read.images[2])  # fear/0, among the trained faces
    # Validation: FER+'s majority, fear/0 as surprise, sad/0 as neutral; fear/1 (fear) and happy/0 (a tie) left out.
    assert val_labels.tolist() == [CLASSES.index(name) for name in (
        "angry", "angry", "surprise", "happy", "neutral", "neutral", "neutral", "sad", "surprise", "surprise")]
    assert len(val_images) == 10


@pytest.mark.option("--votes", "--val-votes")
def test_a_run_on_votes_reports_fer_plus_majority_and_fer2013_labels_side_by_side(voted_folders):
    root = voted_folders
    with pytest.MonkeyPatch.context() as patch, narrow_network(patch):
        outcome, stdout = run_training(
            "--train-dir", root / "train", "--val-dir", root / "val", "--votes", root / "train.csv", "--val-votes",
            root / "val.csv", "--epochs", 1, "--batch-size", 4, "--model-out", root / "m.h5")
    assert outcome == 0, stdout
    assert "FER+ votes: training on 10 of 12 images; the other 2 have most votes outside" in stdout
    assert "training: 10 images (angry 1, happy 2, neutral 3, sad 2, surprise 2)" in stdout
    assert "validation: 10 images (angry 2, happy 1, neutral 3, sad 1, surprise 3)" in stdout
    metrics = json.loads((root / "m.metrics.json").read_text())
    assert metrics["labels"] == "FER+ majority" and metrics["images"] == 10
    assert [scores["support"] for scores in metrics["per_class"].values()] == [2, 1, 3, 1, 3]
    fer2013 = metrics["fer2013_labels"]
    assert fer2013["images"] == 10 and [scores["support"] for scores in fer2013["per_class"].values()] == [2] * 5
    assert "FER+ majority labels: validation accuracy" in stdout and "FER2013 labels: validation accuracy" in stdout


@pytest.mark.option("--ferplus")
@pytest.mark.happens("A votes file does not fit the images")
def test_votes_from_the_kaggle_csv_and_fer2013new_csv(tmp_path, datasets):
    kaggle_ids = {"angry": 0, "happy": 3, "neutral": 6, "sad": 4, "surprise": 5}
    vote_names = {"angry": "anger", "happy": "happiness", "neutral": "neutral", "sad": "sadness",
                  "surprise": "surprise"}
    rows, new_rows = [], []
    for label, name in enumerate(CLASSES):
        for seed, usage in enumerate(["Training"] * 2 + ["PublicTest"]):
            rows.append((kaggle_ids[name], pixels_of(label, seed), usage))
            new_rows.append((usage, votes(**{vote_names[name]: 10})))
    rows.append((2, pixels_of(0, 9), "Training"))  # filed as fear, neutral to FER+'s crowd
    new_rows.append(("Training", votes(neutral=7, fear=3)))
    kaggle = write_fer_csv(tmp_path / "fer2013.csv", rows)
    new = write_fer_new_csv(tmp_path / "fer2013new.csv", new_rows)
    with pytest.raises(Batches):
        run_training("--csv", kaggle, "--ferplus", new, "--model-out", tmp_path / "m.h5")
    (_, targets), (_, val_labels) = datasets
    assert len(targets) == 11 and targets[-1].tolist() == [0, 0, 1, 0, 0]
    assert targets[:10].argmax(axis=1).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert val_labels.tolist() == [0, 1, 2, 3, 4]
    outcome, _ = run_training("--csv", kaggle, "--ferplus", write_fer_new_csv(tmp_path / "short.csv", new_rows[:-1]),
                              "--model-out", tmp_path / "m.h5")
    assert outcome.startswith("error: ") and "has 15 rows but the fer2013 CSV has more" in outcome


@pytest.mark.option("--ferplus")
@pytest.mark.parametrize(("options", "message"), [
    (("--ferplus", "new.csv"), "--ferplus goes with --csv"),
    (("--csv", "fer2013.csv", "--votes", "votes.csv"), "--votes and --val-votes label image folders"),
    (("--csv", "fer2013.csv", "--val-votes", "votes.csv"), "--votes and --val-votes label image folders"),
])
def test_votes_options_that_cannot_work_are_refused_in_one_line(tmp_path, options, message):
    outcome, _ = run_training(*options, "--model-out", tmp_path / "m.h5")
    assert outcome.startswith("error: ") and message in outcome


@pytest.mark.option("--votes")
@pytest.mark.happens("A votes file does not fit the images")
def test_training_images_without_votes_stop_the_run_in_one_line(voted_folders):
    root = voted_folders
    with open(root / "train.csv") as file:  # the votes of the 0.png images only
        write_votes(root / "some.csv", [(row["class"], row["file"], [row[name] for name in FERPLUS_VOTE_COLUMNS])
                                        for row in csv.DictReader(file) if row["file"] == "0.png"])
    outcome, _ = run_training("--train-dir", root / "train", "--val-dir", root / "val", "--votes", root / "some.csv",
                              "--model-out", root / "m.h5")
    assert outcome.startswith("error: 6 of 12 images of ") and "have no votes, e.g. angry/1.png" in outcome
