import cv2
import numpy as np
import pytest
import tensorflow as tf

from emotion.data import (
    DatasetError,
    class_weights,
    load_fer_csv,
    load_image_folder,
    make_dataset,
    random_exposure_and_noise,
    random_jpeg,
    read_face_image,
)
from tests.conftest import CLASSES, pattern_image, write_dataset


def test_any_readable_image_becomes_48x48_grey(tmp_path):
    colour = np.zeros((300, 200, 3), np.uint8)
    colour[..., 2] = 255
    cv2.imwrite(str(tmp_path / "big.jpg"), colour)
    sixteen_bit = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), sixteen_bit)
    rgba = np.dstack([colour[:50, :50], np.full((50, 50), 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    for name in ("big.jpg", "deep.png", "alpha.png"):
        image = read_face_image(tmp_path / name)
        assert image.shape == (48, 48) and image.dtype == np.uint8
    assert 70 < read_face_image(tmp_path / "big.jpg").mean() < 80  # pure red is grey 76


def test_cmyk_jpeg_and_huge_image_are_read(tmp_path):
    from PIL import Image
    Image.new("CMYK", (120, 90), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red, in print colours
    huge = np.zeros((6000, 8000), np.uint8)
    huge[:, 4000:] = 255
    cv2.imwrite(str(tmp_path / "huge.png"), huge)
    cmyk, big = read_face_image(tmp_path / "cmyk.jpg"), read_face_image(tmp_path / "huge.png")
    assert cmyk.shape == big.shape == (48, 48)
    assert 60 < cmyk.mean() < 95  # red, not black or white: the inks were understood
    assert big[:, :23].max() == 0 and big[:, 25:].min() == 255


def test_unreadable_files_are_skipped_and_counted_hidden_files_ignored(tmp_path):
    write_dataset(tmp_path, per_class=2)
    (tmp_path / "happy" / "notes.txt").write_text("not an image")
    (tmp_path / "happy" / "empty.jpg").write_bytes(b"")
    (tmp_path / "sad" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "sad" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    folder = load_image_folder(tmp_path, CLASSES)
    assert len(folder.labels) == 10
    assert sorted(path.name for path in folder.skipped) == ["empty.jpg", "notes.txt"]


def test_nested_folders_and_class_case_are_merged(tmp_path):
    write_dataset(tmp_path, per_class=2)
    nested = tmp_path / "Happy" / "more" / "deeper"
    nested.mkdir(parents=True)
    cv2.imwrite(str(nested / "x.png"), pattern_image(1, 9))
    (tmp_path / "disgust").mkdir()
    cv2.imwrite(str(tmp_path / "disgust" / "y.png"), pattern_image(2, 9))
    folder = load_image_folder(tmp_path, CLASSES)
    assert folder.counts() == {"angry": 2, "happy": 3, "neutral": 2, "sad": 2, "surprise": 2}


def test_missing_or_empty_class_stops_before_training(tmp_path):
    write_dataset(tmp_path, per_class=1, classes=CLASSES[:4])
    with pytest.raises(DatasetError, match="no folder for class.*surprise"):
        load_image_folder(tmp_path, CLASSES)
    (tmp_path / "surprise").mkdir()
    (tmp_path / "surprise" / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    with pytest.raises(DatasetError, match="no readable image for class.*surprise"):
        load_image_folder(tmp_path, CLASSES)
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(tmp_path / "absent", CLASSES)


def test_class_weights_range_from_none_to_fully_balanced_and_average_one_per_image():
    labels = np.array([0] * 10 + [1] * 30 + [2] * 60)
    counts = np.bincount(labels)
    balanced, partial, none = (class_weights(labels, 3, power) for power in (1, 0.5, 0))
    totals = [balanced[k] * counts[k] for k in range(3)]
    np.testing.assert_allclose(totals, totals[0])
    assert list(none.values()) == [1.0, 1.0, 1.0]
    assert balanced[0] > partial[0] > 1 > partial[2] > balanced[2]
    for weights in (balanced, partial, none):
        assert sum(weights[k] * counts[k] for k in range(3)) == pytest.approx(len(labels))


def test_dataset_yields_float_pixels_and_one_hot_labels_and_augments_only_in_training():
    images = np.stack([pattern_image(k % 5, k) for k in range(10)])[..., None]
    labels = np.arange(10) % 5
    plain = make_dataset(images, labels, 5, batch_size=4)
    x, y = next(iter(plain))
    assert x.dtype == tf.float32 and x.shape == (4, 48, 48, 1) and y.shape == (4, 5)
    np.testing.assert_array_equal(x.numpy(), images[:4].astype(np.float32))
    np.testing.assert_array_equal(y.numpy().argmax(axis=1), labels[:4])
    augmented = next(iter(make_dataset(images, labels, 5, batch_size=10, training=True, seed=1)))[0].numpy()
    assert augmented.shape == (10, 48, 48, 1)
    assert not np.allclose(np.sort(augmented.ravel()), np.sort(images.ravel().astype(np.float32)))


def test_exposure_and_noise_vary_per_image_and_stay_in_pixel_range():
    tf.random.set_seed(0)
    grey = np.full((64, 48, 48, 1), 128, np.float32)
    changed = random_exposure_and_noise(tf.constant(grey)).numpy()
    assert changed.shape == grey.shape and changed.min() >= 0 and changed.max() <= 255
    # One gamma per image: some come out darker, some lighter.
    means = changed.mean(axis=(1, 2, 3))
    assert means.min() < 115 and means.max() > 141
    # Sensor noise of a strength drawn per image: some images are grainy, some nearly clean.
    spread = changed.std(axis=(1, 2, 3))
    assert spread.max() > 3 and spread.min() < 1
    bright = random_exposure_and_noise(tf.constant(np.full((4, 48, 48, 1), 250, np.float32))).numpy()
    assert bright.max() <= 255


def test_jpeg_recompression_keeps_the_shape_and_leaves_blocky_traces_on_some_images():
    tf.random.set_seed(0)
    from emotion.sources import sample_face
    face = tf.constant(cv2.resize(cv2.cvtColor(sample_face(), cv2.COLOR_BGR2GRAY)[100:340, 150:390], (48, 48))[..., None])
    results = [random_jpeg(face).numpy() for _ in range(40)]
    assert all(result.shape == (48, 48, 1) and result.dtype == np.uint8 for result in results)
    changed = sum(not np.array_equal(result, face.numpy()) for result in results)
    assert 8 <= changed <= 32, "about half the images are recompressed"


def write_fer_csv(path, rows):
    with open(path, "w", newline="") as file:
        file.write("emotion,pixels,Usage\n")
        file.writelines(f"{emotion},{pixels},{usage}\n" for emotion, pixels, usage in rows)
    return path


def pixels_of(label, seed):
    return " ".join(map(str, pattern_image(label, seed).ravel()))


def test_kaggle_csv_splits_by_usage_maps_labels_and_skips_malformed_rows(tmp_path):
    good = [(3, pixels_of(1, 0), "Training"), (6, pixels_of(2, 1), "Training"), (0, pixels_of(0, 2), "PublicTest"),
            (5, pixels_of(4, 3), "PrivateTest"), (1, pixels_of(1, 4), "Training")]  # 1 = disgust: not asked for
    bad = [(3, "1 2 3", "Training"), (4, " ".join(["x"] * 2304), "Training"), (9, pixels_of(0, 5), "Training"),
           ("", pixels_of(0, 6), "PublicTest"), (4, " ".join(["300"] * 2304), "Training"),
           (4, pixels_of(3, 7), "Elsewhere")]
    splits = load_fer_csv(write_fer_csv(tmp_path / "fer.csv", good + bad), CLASSES)
    training = splits["Training"]
    assert training.labels.tolist() == [CLASSES.index("happy"), CLASSES.index("neutral")]
    np.testing.assert_array_equal(training.images[0, :, :, 0], pattern_image(1, 0))
    assert splits["PublicTest"].labels.tolist() == [0] and splits["PrivateTest"].labels.tolist() == [4]
    reasons = training.skipped + splits["PublicTest"].skipped
    assert len(reasons) == 6
    assert any("3 pixels" in reason for reason in reasons) and any("Usage" in reason for reason in reasons)


def test_a_file_that_is_not_the_kaggle_csv_is_refused(tmp_path):
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="not a fer2013 CSV"):
        load_fer_csv(tmp_path / "other.csv", CLASSES)
