"""Distillation (--teacher): training targets that blend each label with trained models' answers."""
import keras
import numpy as np
import pytest

from emotion import batches as batches_module
from emotion.batches import make_dataset
from emotion.data import load_image_folder
from emotion.report import predict_scores
from emotion.train import teacher_targets
from tests.conftest import CLASSES, load_script, narrow_vgg, pattern_image, write_dataset


def lopsided_teacher(seed):
    """A softmax over random pixel weights: its answers differ between a face and its mirror image."""
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(5, activation="softmax")])
    kernel = np.random.default_rng(seed).normal(0, 0.1, (48 * 48, 5)).astype(np.float32)
    model.layers[-1].set_weights([kernel, np.zeros(5, np.float32)])
    return model


@pytest.fixture(scope="module")
def faces_and_mirrors():
    faces = np.stack([pattern_image(k % 5, k) for k in range(6)])[..., None]
    faces[:, :, :24] //= 2  # a darker left half, so that a mirror image is another input
    return np.concatenate([faces, faces[:, :, ::-1]]), np.tile(np.arange(6) % 5, 2)


def test_targets_blend_the_label_with_the_mean_of_the_teachers_mirror_averaged_answers(faces_and_mirrors):
    images, labels = faces_and_mirrors
    first, second = lopsided_teacher(1), lopsided_teacher(2)
    plain = predict_scores(first, images)
    assert not np.allclose(plain[:6], plain[6:], atol=1e-3)  # the teacher alone tells a face from its mirror

    both = teacher_targets([first, second], images, labels, 5, teacher_weight=0.5)
    assert both.dtype == np.float32 and both.shape == (12, 5)
    np.testing.assert_allclose(both.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(both[:6], both[6:], atol=1e-6)  # mirror-averaged: a face and its mirror agree
    alone = [teacher_targets([teacher], images, labels, 5, teacher_weight=0.5) for teacher in (first, second)]
    np.testing.assert_allclose(both, (alone[0] + alone[1]) / 2, atol=1e-6)

    one_hot = np.eye(5)[labels]
    answers = (alone[0] - 0.5 * one_hot) / 0.5
    np.testing.assert_allclose(answers, (plain + predict_scores(first, images[:, :, ::-1])) / 2, atol=1e-5)
    light = teacher_targets([first], images, labels, 5, teacher_weight=0.2)
    np.testing.assert_allclose(light, 0.8 * one_hot + 0.2 * answers, atol=1e-6)


def test_vote_shares_are_blended_with_the_teachers_answers_as_they_are(faces_and_mirrors):
    images, labels = faces_and_mirrors
    teacher = lopsided_teacher(1)
    votes = np.random.default_rng(0).dirichlet(np.ones(5), len(images)).astype(np.float32)
    answers = (teacher_targets([teacher], images, labels, 5, 0.5) - 0.5 * np.eye(5)[labels]) / 0.5
    np.testing.assert_allclose(teacher_targets([teacher], images, votes, 5, 0.3), 0.7 * votes + 0.3 * answers,
                               atol=1e-6)


def test_the_true_class_keeps_the_largest_target_even_against_a_sure_teacher(faces_and_mirrors):
    images, labels = faces_and_mirrors
    sure = lopsided_teacher(3)
    sure.layers[-1].set_weights([np.zeros((48 * 48, 5), np.float32), np.array([0, 0, 0, 0, 30], np.float32)])
    targets = teacher_targets([sure], images, labels, 5, teacher_weight=0.5)
    np.testing.assert_array_equal(targets.argmax(axis=1), labels)  # class weights follow this argmax
    assert targets[0, 4] == pytest.approx(0.5, abs=1e-6)  # what the teacher says is kept beside it


def test_soft_targets_go_through_the_dataset_as_they_are(faces_and_mirrors):
    images, labels = faces_and_mirrors
    targets = teacher_targets([lopsided_teacher(4)], images, labels, 5, teacher_weight=0.5)
    _, y = next(iter(make_dataset(images, targets, 5, batch_size=12)))
    np.testing.assert_allclose(y.numpy(), targets, atol=1e-7)
    _, shuffled = next(iter(make_dataset(images, targets, 5, batch_size=12, training=True, seed=1)))
    np.testing.assert_allclose(np.sort(shuffled.numpy(), axis=0), np.sort(targets, axis=0), atol=1e-7)


class TrainingData(Exception):
    """Raised where training.py builds its training pipeline, carrying what it was given."""


@pytest.mark.option("--teacher", "--teacher-weight")
def test_training_py_trains_on_the_teachers_targets(tmp_path, monkeypatch):
    from emotion.model import build_little_vgg, load_model, save_model
    write_dataset(tmp_path / "train", per_class=3)
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        save_model(build_little_vgg(5), tmp_path / f"teacher{seed}.h5", list(CLASSES))

    def capture(images, labels, *args, **kwargs):
        raise TrainingData(images, labels)
    monkeypatch.setattr(batches_module, "make_dataset", capture)
    with pytest.raises(TrainingData) as given:
        load_script("training").main(["--train-dir", str(tmp_path / "train"), "--val-dir", str(tmp_path / "train"),
                                      "--teacher", str(tmp_path / "teacher1.h5"), "--teacher",
                                      str(tmp_path / "teacher2.h5"), "--teacher-weight", "0.3",
                                      "--precision", "float32", "--model-out", str(tmp_path / "m.h5")])
    images, targets = given.value.args
    train = load_image_folder(tmp_path / "train", list(CLASSES))
    teachers = [load_model(tmp_path / f"teacher{seed}.h5")[0] for seed in (1, 2)]
    np.testing.assert_array_equal(images, train.images)
    np.testing.assert_allclose(targets, teacher_targets(teachers, train.images, train.labels, 5, 0.3), atol=1e-6)


def test_a_held_out_teacher_answers_only_for_its_fold_and_every_image_needs_a_teacher(faces_and_mirrors):
    images, labels = faces_and_mirrors  # 12 images: fold 1 of 2 is images 0, 2, 4, ..., fold 2 images 1, 3, 5, ...
    first, second, everywhere = lopsided_teacher(1), lopsided_teacher(2), lopsided_teacher(3)
    folds = [{"fold": 1, "folds": 2}, {"fold": 2, "folds": 2}]
    crossed = teacher_targets([first, second], images, labels, 5, 0.5, folds)
    alone = {name: teacher_targets([teacher], images, labels, 5, 0.5)
             for name, teacher in (("first", first), ("second", second), ("everywhere", everywhere))}
    np.testing.assert_allclose(crossed[0::2], alone["first"][0::2], atol=1e-6)
    np.testing.assert_allclose(crossed[1::2], alone["second"][1::2], atol=1e-6)
    # Beside a teacher trained on all images, a held-out one shares its fold's answers and leaves the rest.
    mixed = teacher_targets([everywhere, second], images, labels, 5, 0.5, [None, folds[1]])
    np.testing.assert_allclose(mixed[0::2], alone["everywhere"][0::2], atol=1e-6)
    np.testing.assert_allclose(mixed[1::2], (alone["everywhere"][1::2] + alone["second"][1::2]) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="^8 training images have no teacher"):  # fold 1 of 3: 4 of the 12
        teacher_targets([first], images, labels, 5, 0.5, [{"fold": 1, "folds": 3}])
    with pytest.raises(ValueError, match="shorter"):  # a fold (or None) for each teacher: none silently left out
        teacher_targets([first, second, everywhere], images, labels, 5, 0.5, folds)


@pytest.mark.option("--hold-out")
def test_hold_out_trains_without_its_fold_and_the_model_remembers_it(tmp_path, monkeypatch, capsys):
    from emotion.model import read_held_out
    write_dataset(tmp_path / "train", per_class=4)
    given = []
    real_make_dataset = batches_module.make_dataset

    def capture(images, labels, *args, **kwargs):
        given.append((images, labels))
        return real_make_dataset(images, labels, *args, **kwargs)
    monkeypatch.setattr(batches_module, "make_dataset", capture)
    monkeypatch.setattr("emotion.model.build_little_vgg", lambda classes, **_: narrow_vgg(classes))
    out = tmp_path / "teacher.h5"
    assert load_script("training").main(["--train-dir", str(tmp_path / "train"), "--val-dir", str(tmp_path / "train"),
                                         "--hold-out", "2/4", "--epochs", "1", "--precision", "float32",
                                         "--model-out", str(out)]) == 0
    assert "held out fold 2 of 4: training on 15 of 20 images" in capsys.readouterr().out
    train = load_image_folder(tmp_path / "train", list(CLASSES))
    np.testing.assert_array_equal(given[0][0], np.delete(train.images, [1, 5, 9, 13, 17], axis=0))
    np.testing.assert_array_equal(given[0][1], np.delete(train.labels, [1, 5, 9, 13, 17]))
    assert read_held_out(out) == {"fold": 2, "folds": 4, "images": 20}


@pytest.mark.option("--hold-out")
@pytest.mark.parametrize(("options", "error"), [
    (["--hold-out", "3/2"], "error: --hold-out 3/2: give K/N, fold K of N folds (1 <= K <= N, N >= 2), e.g. 1/2"),
    (["--hold-out", "1/1"], "error: --hold-out 1/1: give K/N, fold K of N folds (1 <= K <= N, N >= 2), e.g. 1/2"),
    (["--teacher", "{half}"], ("error: 10 training images have no teacher: give a teacher for each held-out "
                               "fold, or one trained on all images")),
    (["--teacher", "{half}", "--max-per-class", "3"], ("error: --teacher {half} held out a fold of 20 training "
                                                       "images, not of these 15: give the training images it was "
                                                       "made with")),
])
def test_hold_out_and_held_out_teachers_that_cannot_work_are_refused_in_one_line(tmp_path, capsys, options, error):
    from emotion.model import save_model
    write_dataset(tmp_path / "train", per_class=4)
    half = tmp_path / "half.h5"
    save_model(narrow_vgg(5), half, list(CLASSES),
               held_out={"fold": 1, "folds": 2, "images": 20})
    options = [option.format(half=half) for option in options]
    with pytest.raises(SystemExit) as stop:
        load_script("training").main(["--train-dir", str(tmp_path / "train"), "--val-dir", str(tmp_path / "train"),
                                      *options, "--model-out", str(tmp_path / "m.h5")])
    assert stop.value.code == error.format(half=half)


@pytest.mark.parametrize("record", ['{"fold": 3, "folds": 2, "images": 20}', '{"fold": 1, "folds": 2}', "1/2",
                                    '{"fold": "1", "folds": 2, "images": 20}'])
def test_a_teacher_with_a_damaged_held_out_record_is_refused_in_one_line(tmp_path, record):
    import h5py

    from emotion.model import read_held_out, save_model
    teacher = tmp_path / "teacher.h5"
    save_model(narrow_vgg(5), teacher, list(CLASSES))
    assert read_held_out(teacher) is None
    with h5py.File(teacher, "a") as file:
        file.attrs["held_out"] = record
    message = "its held_out attribute is not a JSON record of fold, folds and images"
    with pytest.raises(ValueError, match=f"^{message}$"):
        read_held_out(teacher)
    write_dataset(tmp_path / "train", per_class=1)
    with pytest.raises(SystemExit) as stop:
        load_script("training").main(["--train-dir", str(tmp_path / "train"), "--teacher", str(teacher),
                                      "--model-out", str(tmp_path / "m.h5")])
    assert stop.value.code == f"error: --teacher {teacher}: {message}"
