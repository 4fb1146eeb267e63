"""training.py and test.py driven as a user drives them: real processes, real files, exit codes."""
import argparse
import csv
import json
import re
from pathlib import Path

import cv2
import h5py
import pytest

from tests.conftest import (
    CLASSES,
    DETAILED_OPTIONS,
    OPTION_SECTIONS,
    ROOT,
    assert_one_line_error,
    doc_section,
    load_script,
    option_rows,
    pixels_of,
    readme_options,
    run_script,
    write_dataset,
    write_fer_csv,
    write_video,
)


def readme_groups(script):
    """[(group heading, {option: what-it-does cell})] of a script's README section, in order."""
    groups = []
    for block in re.split(r"^### ", doc_section(OPTION_SECTIONS[script][1], OPTION_SECTIONS[script][0]),
                          flags=re.MULTILINE)[1:]:
        rows = {options[0]: what for options, _, what in option_rows(block) if len(options) == 1}
        if rows:
            groups.append((block.splitlines()[0].strip(), rows))
    return groups


@pytest.mark.parametrize("script", ["training.py", "test.py"])
def test_help_and_the_readme_list_the_same_options(script):
    result = run_script(script, "--help")
    assert result.returncode == 0 and "(default:" in result.stdout
    options = readme_options(script)
    assert len(options) >= 10
    for option in options:
        # As a whole option: --model must not pass on the strength of --model-out.
        assert re.search(rf"{option}(?![a-z-])", result.stdout), option
    in_help = set(re.findall(r"^  (--[a-z0-9-]+)", result.stdout, re.MULTILINE)) - {"--help"}
    assert in_help == set(options), "an option missing from the README's table, or one the script lacks"
    if script in DETAILED_OPTIONS:
        detailed = readme_options(script, DETAILED_OPTIONS)
        assert sorted(detailed) == sorted(options), f"{DETAILED_OPTIONS[script][0]}'s table lists other options"


def script_parser(script, monkeypatch):
    """The ArgumentParser that a script's parse_args builds, caught as it is about to parse."""
    class Built(Exception):
        pass

    def catch(parser, *args, **kwargs):
        raise Built(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(Built) as built:
        load_script(script.removesuffix(".py")).parse_args([])
    return built.value.args[0]


def plain(markdown):
    """A table cell as --help shows it: no backticks, one space between words."""
    return " ".join(markdown.replace("`", "").split())


@pytest.mark.parametrize("script", ["training.py", "test.py"])
def test_help_groups_and_lines_are_the_readme_s(script, monkeypatch):
    """--help reads like the README: the same groups, in the same order, each option's help its table's words."""
    parser = script_parser(script, monkeypatch)
    formatter = parser._get_formatter()
    groups = []
    for group in parser._action_groups:
        actions = [action for action in group._group_actions  # --help shows neither -h nor an old name kept
                   if action.option_strings != ["-h", "--help"] and action.help != argparse.SUPPRESS]
        if actions:
            groups.append((group.title, {action.option_strings[0]: formatter._expand_help(action)
                                         for action in actions}))
    readme = readme_groups(script)
    assert [title.lower() for title, _ in groups] == [title.lower() for title, _ in readme]
    for (title, helps), (_, rows) in zip(groups, readme, strict=True):
        assert list(helps) == list(rows), f"{title}: the options or their order differ from the README's"
        for option, help_line in helps.items():
            help_line = " ".join(help_line.split()).rsplit(" (default: ", 1)[0]  # what ArgumentDefaults adds
            assert help_line == plain(rows[option]), option


def test_training_writes_a_model_with_its_class_names_and_a_report(tiny_model):
    with h5py.File(tiny_model, "r") as file:
        assert json.loads(file.attrs["class_names"]) == list(CLASSES)
    stem = tiny_model.with_suffix("")
    metrics = json.loads(stem.with_suffix(".metrics.json").read_text())
    assert set(metrics["per_class"]) == set(CLASSES) and 0 <= metrics["accuracy"] <= 1
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["images"] == 15
    for picture in (".curves.png", ".confusion.png"):
        assert cv2.imread(str(stem.with_suffix(picture))) is not None
    with open(stem.with_suffix(".log.csv")) as file:
        row = next(csv.DictReader(file))
    assert float(row["images_per_s"]) > 0 and 0 <= float(row["input_share"])
    assert not stem.with_suffix(".backup").exists(), "a finished run leaves no backup behind"


@pytest.mark.happens("Training data has hidden files")
def test_training_stops_with_one_line_when_a_class_is_missing(tmp_path):
    write_dataset(tmp_path / "train", per_class=1, classes=CLASSES[:3])
    result = run_script("training.py", "--train-dir", tmp_path / "train", "--val-dir", tmp_path / "train",
                        "--model-out", tmp_path / "m.h5")
    assert_one_line_error(result, "no folder for class", "sad")


@pytest.mark.happens("The output folder of `training.py` does not exist or is read-only")
def test_training_refuses_an_output_folder_that_does_not_exist(tmp_path):
    result = run_script("training.py", "--model-out", tmp_path / "absent" / "m.h5")
    assert_one_line_error(result, "does not exist")


@pytest.mark.happens("The output folder of `training.py` does not exist or is read-only")
@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a folder nobody may write, even root")
def test_training_refuses_an_output_folder_it_cannot_write():
    assert_one_line_error(run_script("training.py", "--model-out", "/proc/m.h5"), "cannot write")


@pytest.mark.option("--output")
def test_live_loop_on_a_video_logs_every_frame_and_writes_the_annotated_video(tiny_model, face_video, tmp_path):
    log, output = tmp_path / "faces.jsonl", tmp_path / "annotated.mp4"
    result = run_script("test.py", "--source", face_video, "--model", tiny_model, "--no-display",
                        "--log", log, "--output", output)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [record["frame"] for record in records] == list(range(24))
    with_faces = [record for record in records if record["faces"]]
    assert len(with_faces) >= 20
    face = with_faces[0]["faces"][0]
    assert len(face["box"]) == 4 and face["label"] in CLASSES
    assert set(face["scores"]) == set(CLASSES) and abs(sum(face["scores"].values()) - 1) < 0.01
    video = cv2.VideoCapture(str(output))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
    assert cv2.imread(str(log.with_suffix(".png"))) is not None
    assert "face observations" in result.stdout


@pytest.mark.option("--log", "--max-frames")
def test_live_loop_writes_csv_with_one_row_per_face(tiny_model, face_video, tmp_path):
    log = tmp_path / "faces.csv"
    result = run_script("test.py", "--source", face_video, "--model", tiny_model, "--no-display", "--log", log,
                        "--max-frames", 5)
    assert result.returncode == 0, result.stderr
    with open(log) as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["frame", "time_s", "face_id", "x", "y", "w", "h", "label", *CLASSES]
    # BlazeFace confirms the face in its first frame: one row a frame from the start.
    assert [int(row["frame"]) for row in rows] == [0, 1, 2, 3, 4]


def test_live_loop_on_a_photo_writes_an_annotated_image(tiny_model, tmp_path):
    output = tmp_path / "out.png"
    photo = tmp_path / "face.jpg"
    from emotion.sources import sample_face
    cv2.imwrite(str(photo), sample_face())
    result = run_script("test.py", "--source", photo, "--model", tiny_model, "--no-display", "--output", output)
    assert result.returncode == 0, result.stderr
    annotated, original = cv2.imread(str(output)), cv2.imread(str(photo))
    assert annotated.shape == original.shape and (annotated != original).any()


@pytest.mark.happens("There is no camera at that index", case="no camera")
@pytest.mark.happens("There is no display", case="no display")
@pytest.mark.happens("The model file is missing, truncated or not HDF5", case="missing model")
@pytest.mark.happens("The cascade file is damaged", case="damaged cascade")
@pytest.mark.happens("`--output` is the source, or an existing file", case="output is source")
@pytest.mark.happens("`--output` is the source, or an existing file", case="existing output")
@pytest.mark.parametrize("case", ["no camera", "missing source", "missing model", "broken model",
                                  "existing output", "output is source", "no display", "missing cascade",
                                  "scan every 0 frames", "min face 0", "max frames 0", "damaged cascade"])
def test_user_mistakes_give_one_line_and_a_nonzero_exit(case, tiny_model, face_video, tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"garbage")
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    args, env, expected = {
        "no camera": (["--source", "7", "--no-display"], None, "no camera at index 7"),
        "missing source": (["--source", tmp_path / "nope.mp4", "--no-display"], None, "not found"),
        "missing model": (["--source", face_video, "--model", tmp_path / "none.h5", "--no-display"], None,
                          "python training.py"),
        "broken model": (["--source", face_video, "--model", broken, "--no-display"], None, "not a readable HDF5"),
        "existing output": (["--source", face_video, "--output", existing, "--no-display"], None, "--overwrite"),
        "output is source": (["--source", face_video, "--output", face_video, "--no-display", "--overwrite"], None,
                             "source itself"),
        "no display": (["--source", face_video], {"DISPLAY": None, "WAYLAND_DISPLAY": None}, "--no-display"),
        "missing cascade": (["--source", face_video, "--cascade", tmp_path / "x.xml", "--no-display"], None,
                            "cascade file"),
        "scan every 0 frames": (["--source", face_video, "--scan-every", "0", "--no-display"], None,
                                "--scan-every"),
        "min face 0": (["--source", face_video, "--min-face", "0", "--no-display"], None, "--min-face"),
        "max frames 0": (["--source", face_video, "--max-frames", "0", "--no-display"], None, "--max-frames"),
        "damaged cascade": (["--source", face_video, "--cascade", broken, "--no-display"], None,
                            "not a valid OpenCV cascade"),
    }[case]
    if "--model" not in args:
        args += ["--model", tiny_model]
    assert_one_line_error(run_script("test.py", *args, env=env), expected, code=2)
    assert existing.read_bytes() == b"keep me"


def test_committed_model_loads_with_its_class_names():
    from emotion.model import load_model
    model, names = load_model(ROOT / "Emotion_little_vgg.h5")
    assert names == list(CLASSES) and model.output_shape == (None, 5)


@pytest.mark.option("--csv")
def test_training_from_the_kaggle_csv(trainer, tmp_path, capsys):
    kaggle_ids = {"angry": 0, "happy": 3, "neutral": 6, "sad": 4, "surprise": 5}
    rows = [(kaggle_ids[name], pixels_of(label, seed), usage) for label, name in enumerate(CLASSES)
            for seed, usage in enumerate(["Training"] * 4 + ["PublicTest"] * 2)]
    csv_path = write_fer_csv(tmp_path / "fer2013.csv", [*rows, (3, "12 34", "Training")])
    assert trainer.main([str(arg) for arg in ("--csv", csv_path, "--epochs", 1, "--batch-size", 8,
                                              "--precision", "float32", "--model-out", tmp_path / "m.h5")]) == 0
    stdout = capsys.readouterr().out
    assert "training: 20 images" in stdout and "validation: 10 images" in stdout
    assert "skipped 1" in stdout
    with h5py.File(tmp_path / "m.h5", "r") as file:
        assert json.loads(file.attrs["class_names"]) == list(CLASSES)


@pytest.mark.option("--source", "--jobs")
def test_a_folder_of_videos_and_images_gives_each_file_its_output_and_log_whatever_the_jobs(
        tiny_model, face_video, tmp_path):
    import matplotlib
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("first.mp4", "second.avi"):  # same frames, other container: each still a video of its own
        capture, frames = cv2.VideoCapture(str(face_video)), []
        while len(frames) < 8 and (frame := capture.read()[1]) is not None:
            frames.append(frame)
        write_video(folder / name, frames, fps=25.0)
    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    cv2.imwrite(str(folder / "hopper.png"), hopper)
    logs = {}
    for jobs in (1, 2):
        result = run_script("test.py", "--source", folder, "--model", tiny_model, "--no-display", "--jobs", jobs,
                            "--output", tmp_path / f"annotated{jobs}", "--log", tmp_path / f"logs{jobs}.csv")
        assert result.returncode == 0, result.stderr
        assert f"{folder}: 3 of 3 run(s) done" in result.stdout
        assert "first.mp4: 8 frames" in result.stdout and "second.avi: 8 frames" in result.stdout
        assert f"images in {folder}: 1 image(s), 1 face(s), 0 image(s) without a face" in result.stdout
        assert sorted(path.name for path in (tmp_path / f"annotated{jobs}").iterdir()) == [
            "first.mp4", "hopper.png", "second.mp4"]
        assert sorted(path.name for path in (tmp_path / f"logs{jobs}").iterdir()) == [
            "first.csv", "first.png", "images.csv", "images.png", "second.csv", "second.png"]
        logs[jobs] = {path.name: path.read_text() for path in (tmp_path / f"logs{jobs}").glob("*.csv")}
        assert cv2.VideoCapture(str(tmp_path / f"annotated{jobs}" / "second.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 8
    assert logs[1] == logs[2], "--jobs changes only how many files run at once, never the results"
    assert logs[1]["images.csv"].splitlines()[1].split(",")[1] == "hopper.png"


def test_a_folder_run_goes_on_past_a_broken_video_and_names_it(tiny_model, face_video, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "good.mp4").write_bytes(face_video.read_bytes())
    (folder / "broken.mp4").write_bytes(face_video.read_bytes()[:300])
    result = run_script("test.py", "--source", folder, "--model", tiny_model, "--no-display", "--max-frames", 3)
    assert result.returncode == 2
    assert "good.mp4: 3 frames" in result.stdout
    assert f"{folder}: 1 of 2 run(s) done; failed: broken.mp4" in result.stdout
    assert "Traceback" not in result.stderr  # the rest of stderr is the good video's progress bar
    assert [line for line in result.stderr.splitlines() if "error" in line] == [
        f"error: {folder / 'broken.mp4'} is neither an image nor a video that OpenCV can read"]


@pytest.mark.option("--no-display", "--jobs")
def test_jobs_need_no_display_and_a_count_of_one_or_more(tmp_path):
    assert_one_line_error(run_script("test.py", "--source", tmp_path, "--jobs", 2, env={"DISPLAY": ":0"}),
                          "add --no-display", code=2)
    assert_one_line_error(run_script("test.py", "--source", tmp_path, "--jobs", 0, "--no-display"), "--jobs", code=2)


@pytest.mark.option("--weight-averaging", "--init-from")
def test_init_from_starts_at_a_trained_model_and_weight_averaging_keeps_near_it(trainer, tiny_model, tmp_path):
    import numpy as np

    from emotion.model import load_model
    write_dataset(tmp_path / "train", per_class=8, seed=3)

    def trained_weights(*options):
        out = tmp_path / f"model{len(options)}.h5"
        code = trainer.main([str(arg) for arg in (
            "--train-dir", tmp_path / "train", "--val-dir", tmp_path / "train", "--epochs", 1, "--batch-size", 8,
            "--precision", "float32", "--learning-rate", 0.05, "--init-from", tiny_model, "--seed", 7,
            "--model-out", out, *options)])
        assert code == 0
        return [np.asarray(w) for w in load_model(out)[0].trainable_weights]

    start = [np.asarray(w) for w in load_model(tiny_model)[0].trainable_weights]
    moved = sum(np.abs(a - b).sum() for a, b in zip(trained_weights(), start))
    averaged = sum(np.abs(a - b).sum() for a, b in zip(trained_weights("--weight-averaging"), start))
    # 5 steps at a high rate move the weights far; their average (over ~1000 steps, started after the first
    # step) stays near the start. Started from seed 7's random weights instead, both would be far from it.
    assert averaged < moved / 5


@pytest.mark.option("--teacher-weight")
def test_a_teacher_weight_outside_0_to_half_is_refused():
    # A whole distilling run: tests/test_backends.py (on JAX).
    for weight in (0, 0.6):
        assert_one_line_error(run_script("training.py", "--teacher-weight", weight), "--teacher-weight")


@pytest.mark.option("--classes", "--init-from", "--teacher", "--reestimate-batchnorm")
@pytest.mark.parametrize("option", ["--init-from", "--teacher", "--reestimate-batchnorm"])
def test_init_from_teacher_or_reestimate_batchnorm_refuses_a_model_of_other_classes(tiny_model, tmp_path, option):
    write_dataset(tmp_path / "train", per_class=2, classes=("happy", "sad"))
    result = run_script("training.py", "--train-dir", tmp_path / "train", "--val-dir", tmp_path / "train",
                        "--classes", "happy,sad", option, tiny_model, "--model-out", tmp_path / "m.h5")
    assert_one_line_error(result, f"{option} {tiny_model} was trained on angry,happy,neutral,sad,surprise, "
                          "not happy,sad")


def first_batch_norm_fits(model_path, faces_dir):
    """Whether the model's first BatchNorm statistics are those of the faces in faces_dir and their mirror images."""
    import keras
    import numpy as np

    from emotion.data import load_image_folder
    from emotion.model import load_model
    model, names = load_model(model_path)
    faces = load_image_folder(faces_dir, names).images.astype(np.float32)
    activations = keras.Model(model.input, model.get_layer("block1_elu1").output).predict(
        np.concatenate([faces, faces[:, :, ::-1]]), verbose=0)
    norm = model.get_layer("block1_bn1")
    return (np.allclose(norm.moving_mean, activations.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
            and np.allclose(norm.moving_variance, activations.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5))


@pytest.mark.option("--reestimate-batchnorm")
def test_a_run_and_reestimate_batchnorm_keep_the_batch_norm_statistics_of_the_training_faces(trainer, tiny_model, tmp_path):
    import numpy as np

    from emotion.model import load_model
    assert first_batch_norm_fits(tiny_model, tiny_model.parent / "train")
    darker = write_dataset(tmp_path / "train", per_class=4, seed=5)
    for path in darker.rglob("*.png"):
        cv2.imwrite(str(path), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) // 2)
    out = tmp_path / "reestimated.h5"
    assert trainer.main([str(arg) for arg in ("--reestimate-batchnorm", tiny_model, "--train-dir", darker, "--val-dir",
                                              darker, "--model-out", out)]) == 0
    assert first_batch_norm_fits(out, darker) and not first_batch_norm_fits(tiny_model, darker)
    trained, reestimated = load_model(tiny_model)[0], load_model(out)[0]
    for before, after in zip(trained.trainable_weights, reestimated.trainable_weights, strict=True):
        np.testing.assert_array_equal(before, after)  # only the statistics change
    assert json.loads(out.with_suffix(".metrics.json").read_text())["images"] == 20


def test_recalibrate_its_old_name_is_still_accepted_but_not_shown(trainer, capsys):
    assert trainer.parse_args(["--recalibrate", "m.h5"]).reestimate_batchnorm == "m.h5"
    with pytest.raises(SystemExit):
        trainer.parse_args(["--help"])
    shown = capsys.readouterr().out
    assert "--reestimate-batchnorm" in shown and "--recalibrate" not in shown


@pytest.mark.option("--reestimate-batchnorm")
def test_reestimate_batchnorm_trains_nothing_so_training_options_and_held_out_teachers_are_refused(tiny_model, tmp_path):
    from emotion.model import load_model, save_model
    assert_one_line_error(run_script("training.py", "--reestimate-batchnorm", tiny_model, "--resume"), "trains nothing")
    # Re-estimated on all images and saved without its fold, a teacher would answer for images it trained on.
    teacher = tmp_path / "teacher.h5"
    save_model(load_model(tiny_model)[0], teacher, CLASSES, held_out={"fold": 1, "folds": 2, "images": 40})
    result = run_script("training.py", "--reestimate-batchnorm", teacher, "--train-dir", tiny_model.parent / "train",
                        "--val-dir", tiny_model.parent / "val", "--model-out", tmp_path / "m.h5")
    assert_one_line_error(result, "trained without a fold")
    assert not (tmp_path / "m.h5").exists()
