import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from emotion.batches import FaceBatches, build_mixup, make_dataset, random_exposure_and_noise, random_jpeg
from emotion.data import DatasetError, class_weights, load_fer_csv, load_image_folder, read_face_image
from tests.conftest import CLASSES, ROOT, pattern_image, pixels_of, write_dataset, write_fer_csv


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


@pytest.mark.happens("Training data has hidden files")
def test_unreadable_files_are_skipped_and_counted_hidden_files_ignored(tmp_path):
    write_dataset(tmp_path, per_class=2)
    (tmp_path / "happy" / "notes.txt").write_text("not an image")
    (tmp_path / "happy" / "empty.jpg").write_bytes(b"")
    (tmp_path / "sad" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "sad" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    folder = load_image_folder(tmp_path, CLASSES)
    assert len(folder.labels) == 10
    assert sorted(path.name for path in folder.skipped) == ["empty.jpg", "notes.txt"]


@pytest.mark.happens("Training data has hidden files")
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
    black = random_exposure_and_noise(tf.constant(np.zeros((4, 48, 48, 1), np.float32))).numpy()
    assert black.min() == 0 and black.max() > 0, "black stays black where the noise would go below it"


def test_jpeg_recompression_keeps_the_shape_and_leaves_blocky_traces_on_some_images():
    tf.random.set_seed(0)
    from emotion.sources import sample_face
    face = tf.constant(cv2.resize(cv2.cvtColor(sample_face(), cv2.COLOR_BGR2GRAY)[100:340, 150:390], (48, 48))[..., None])
    results = [random_jpeg(face).numpy() for _ in range(40)]
    assert all(result.shape == (48, 48, 1) and result.dtype == np.uint8 for result in results)
    changed = sum(not np.array_equal(result, face.numpy()) for result in results)
    assert 8 <= changed <= 32, "about half the images are recompressed"


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


def test_counts_list_every_class_in_order_even_one_without_images():
    from emotion.data import ImageFolder
    split = ImageFolder(np.zeros((3, 48, 48, 1), np.uint8), np.array([2, 0, 2]), ["sad", "happy", "angry"])
    assert split.counts() == {"sad": 1, "happy": 0, "angry": 2}
    assert list(split.counts()) == ["sad", "happy", "angry"]


def test_each_48x48_pixel_is_the_mean_of_the_pixels_it_covers(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (144, 144), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "noise.png"), noise)
    cv2.imwrite(str(tmp_path / "dot.png"), np.full((1, 1), 200, np.uint8))
    means = noise.reshape(48, 3, 48, 3).mean(axis=(1, 3))
    assert np.abs(read_face_image(tmp_path / "noise.png") - means).max() <= 1
    np.testing.assert_array_equal(read_face_image(tmp_path / "dot.png"), np.full((48, 48), 200, np.uint8))


def test_labels_follow_the_given_class_order_and_max_per_class_counts_merged_folders(tmp_path):
    order = ["surprise", "angry", "sad", "happy", "neutral"]  # not alphabetical
    write_dataset(tmp_path, per_class=3)
    more = tmp_path / "Angry"
    more.mkdir()
    cv2.imwrite(str(more / "z.png"), pattern_image(0, 99))
    folder = load_image_folder(tmp_path, [name.upper() for name in order], max_per_class=2)
    assert folder.class_names == order
    assert folder.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # Each image keeps its label: the first two of each class, Angry/ before angry/.
    firsts = ["surprise/0", "surprise/1", "Angry/z", "angry/0", "sad/0", "sad/1", "happy/0", "happy/1", "neutral/0", "neutral/1"]
    for image, name in zip(folder.images[..., 0], firsts):
        np.testing.assert_array_equal(image, read_face_image(tmp_path / f"{name}.png"))
    assert folder.images.dtype == np.uint8 and folder.images.shape == (10, 48, 48, 1)
    assert load_image_folder(tmp_path, CLASSES, max_per_class=None).counts()["angry"] == 4


def test_one_image_per_class_is_enough_and_a_dataset_under_a_hidden_folder_is_read(tmp_path):
    root = tmp_path / ".cache" / "faces"  # hidden folders above the dataset do not count, only inside it
    write_dataset(root, per_class=1)
    (root / "happy" / ".thumbnails").mkdir()
    cv2.imwrite(str(root / "happy" / ".thumbnails" / "t.png"), pattern_image(1, 5))
    (root / "happy" / "DESKTOP.INI").write_text("[.ShellClassInfo]")
    folder = load_image_folder(root, CLASSES)
    assert folder.counts() == dict.fromkeys(CLASSES, 1) and folder.skipped == []


def test_a_progress_bar_names_what_it_reads_and_is_cleared_when_done(tmp_path, capsys):
    write_dataset(tmp_path, per_class=1)
    load_image_folder(tmp_path, CLASSES, desc="reading training images")
    load_image_folder(tmp_path, CLASSES)
    err = capsys.readouterr().err
    assert "reading training images" in err and f"reading {tmp_path}" in err and "img" in err
    assert err.split("\r")[-1].strip() == ""


def test_no_classes_give_an_empty_split_of_the_right_shape(tmp_path):
    folder = load_image_folder(tmp_path, [])
    assert folder.images.shape == (0, 48, 48, 1) and folder.images.dtype == np.uint8 and folder.labels.shape == (0,)


def test_what_is_missing_from_a_dataset_is_named(tmp_path):
    write_dataset(tmp_path, per_class=1, classes=CLASSES[:3])
    with pytest.raises(DatasetError, match=f"^{tmp_path} has no folder for class\\(es\\) sad, surprise$"):
        load_image_folder(tmp_path, CLASSES)
    for name in CLASSES[3:]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "bad.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match=f"^{tmp_path} has no readable image for class\\(es\\) sad, surprise$"):
        load_image_folder(tmp_path, CLASSES)
    with pytest.raises(DatasetError, match=f"^dataset folder {tmp_path / 'x'} does not exist$"):
        load_image_folder(tmp_path / "x", CLASSES)


def test_each_bad_csv_row_is_skipped_with_its_line_and_reason(tmp_path):
    rows = [(0, pixels_of(0, 0), "Training"),                       # line 2: angry, id 0
            (-1, pixels_of(0, 1), "Training"),                      # line 3: -1 is no emotion, not the last one
            (7, pixels_of(0, 2), "Training"),                       # line 4: one past the last id
            ("x", pixels_of(0, 3), "Training"),                     # line 5
            (6, " ".join(["255"] * 2304), "Training"),              # line 6: white is fine
            (6, " ".join(["256"] * 2304), "Training"),              # line 7
            (6, " ".join(["-1"] * 2304), "Training"),               # line 8
            (6, " ".join(["1.5"] * 2304), "Training"),              # line 9
            (6, " ".join(["9" * 30] * 2304), "Training"),           # line 10: too long for 64 bits
            (6, " ".join(["0"] * 2303), "Training"),                # line 11
            (6, "", "PublicTest"),                                  # line 12
            (6, pixels_of(0, 4), "training")]                       # line 13: Usage is case-sensitive
    splits = load_fer_csv(write_fer_csv(tmp_path / "fer.csv", rows), CLASSES)
    assert splits["Training"].skipped == [
        "line 3: unknown emotion '-1'", "line 4: unknown emotion '7'", "line 5: unknown emotion 'x'",
        "line 7: pixels outside 0-255", "line 8: pixels outside 0-255", "line 9: pixels that are not whole numbers",
        "line 10: pixels that are not whole numbers", "line 11: 2303 pixels instead of 2304",
        "line 13: unknown Usage 'training'"]
    assert splits["PublicTest"].skipped == ["line 12: 0 pixels instead of 2304"]
    assert splits["Training"].labels.tolist() == [CLASSES.index("angry"), CLASSES.index("neutral")]
    np.testing.assert_array_equal(splits["Training"].images[1], np.full((48, 48, 1), 255, np.uint8))
    assert splits["Training"].labels.dtype == np.int32 and splits["PrivateTest"].images.shape == (0, 48, 48, 1)
    assert splits["PrivateTest"].images.dtype == np.uint8, "an empty split has the pixels' type too"


def test_csv_rows_are_capped_per_class_and_split_and_a_spreadsheets_byte_order_mark_is_read(tmp_path):
    rows = [(3, pixels_of(1, k), usage) for k, usage in enumerate(["Training"] * 4 + ["PublicTest"] * 3)]
    rows += [(0, pixels_of(0, 9), "Training")]
    path = write_fer_csv(tmp_path / "fer.csv", rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    splits = load_fer_csv(path, [name.upper() for name in CLASSES], max_per_class=2)
    assert splits["Training"].labels.tolist() == [1, 1, 0] and splits["PublicTest"].labels.tolist() == [1, 1]
    assert splits["Training"].class_names == list(CLASSES)
    np.testing.assert_array_equal(splits["Training"].images[1, :, :, 0], pattern_image(1, 1))


def test_reading_a_csv_shows_a_progress_bar_in_rows_that_is_cleared_when_done(tmp_path, capsys):
    path = write_fer_csv(tmp_path / "fer.csv", [(3, pixels_of(1, 0), "Training")])
    load_fer_csv(path, CLASSES)
    err = capsys.readouterr().err
    assert f"reading {path}" in err and "row" in err and err.split("\r")[-1].strip() == ""


def test_an_unreadable_csv_is_a_dataset_error_that_says_why(tmp_path):
    with pytest.raises(DatasetError, match=f"^cannot read {tmp_path / 'none.csv'}: "):
        load_fer_csv(tmp_path / "none.csv", CLASSES)
    (tmp_path / "latin.csv").write_bytes("emotion,pixels,Usage\n0,\xe9,Training\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="cannot read"):
        load_fer_csv(tmp_path / "latin.csv", CLASSES)
    (tmp_path / "lower.csv").write_text("emotion,pixels,usage\n")
    with pytest.raises(DatasetError, match=r"lower.csv is not a fer2013 CSV \(needs columns emotion, pixels, Usage\)$"):
        load_fer_csv(tmp_path / "lower.csv", CLASSES)


def test_class_weights_for_classes_without_images_and_unbalanced_powers():
    labels = np.array([0] * 10 + [2] * 30 + [1] * 20)  # not sorted
    weights = class_weights(labels, 3, power=1)
    assert list(weights) == [0, 1, 2] and [weights[k] for k in range(3)] == pytest.approx([2.0, 1.0, 2 / 3])
    half = class_weights(np.array([0] * 10 + [1] * 40), 2, power=0.5)
    assert half[0] / half[1] == pytest.approx(2.0)
    assert 10 * half[0] + 40 * half[1] == pytest.approx(50)


def test_camera_artefacts_give_float_pixels_in_range_and_leave_validation_data_alone():
    images = np.stack([pattern_image(k % 5, k) for k in range(6)])[..., None]
    labels = np.arange(6) % 5
    x, y = next(iter(make_dataset(images, labels, 5, batch_size=6, training=True, seed=2, camera_artefacts=True)))
    assert x.dtype == tf.float32 and x.shape == (6, 48, 48, 1) and y.shape == (6, 5)
    assert 0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 255
    assert not np.allclose(np.sort(x.numpy().ravel()), np.sort(images.ravel().astype(np.float32)))
    plain = next(iter(make_dataset(images, labels, 5, batch_size=6, camera_artefacts=True)))[0]
    np.testing.assert_array_equal(plain.numpy(), images.astype(np.float32))


def test_the_same_seed_gives_the_same_augmented_batches_and_flips_are_only_horizontal():
    images = np.stack([pattern_image(k % 5, k) for k in range(8)])[..., None]
    labels = np.arange(8) % 5
    first, second = (next(iter(make_dataset(images, labels, 5, batch_size=8, training=True, seed=3)))[0].numpy()
                     for _ in range(2))
    np.testing.assert_array_equal(first, second)
    # A face bright at the top and dark at the bottom stays so: mirror images left-right only, small rotations.
    top_lit = np.tile(np.linspace(255, 0, 48)[:, None, None], (64, 1, 48, 1)).astype(np.uint8)
    augmented = next(iter(make_dataset(top_lit, np.zeros(64, int), 2, batch_size=64, training=True, seed=1)))[0]
    augmented = augmented.numpy()
    assert (augmented[:, :12].mean(axis=(1, 2, 3)) > augmented[:, -12:].mean(axis=(1, 2, 3))).all()


def test_face_batches_give_what_the_tf_data_pipeline_gives_and_reshuffle_and_augment_only_in_training():
    images = np.stack([pattern_image(k % 5, k) for k in range(10)])[..., None]
    labels = np.arange(10) % 5
    plain = FaceBatches(images, labels, 5, batch_size=4)
    assert len(plain) == 3
    for (x, y), (tf_x, tf_y) in zip([plain[i] for i in range(len(plain))], make_dataset(images, labels, 5, 4),
                                    strict=True):
        np.testing.assert_array_equal(x, tf_x.numpy())
        np.testing.assert_array_equal(y, tf_y.numpy())
    soft = np.random.default_rng(0).dirichlet(np.ones(5), 10).astype(np.float32)
    np.testing.assert_array_equal(FaceBatches(images, soft, 5, batch_size=10)[0][1], soft)

    training = FaceBatches(images, labels, 5, batch_size=4, training=True, seed=1)
    epochs = []
    for _ in range(2):
        batches = [training[i] for i in range(len(training))]
        targets = np.concatenate([y for _, y in batches])
        assert sorted(targets.argmax(axis=1)) == sorted(labels)  # every image once an epoch
        pixels = np.concatenate([np.asarray(x) for x, _ in batches])
        assert pixels.shape == images.shape and pixels.dtype == np.float32
        assert not np.allclose(np.sort(pixels.ravel()), np.sort(images.ravel().astype(np.float32)))
        epochs.append(training.order.copy())
        training.on_epoch_end()
    assert sorted(epochs[0]) == list(range(10)) and list(epochs[0]) != list(epochs[1])


def test_mixup_blends_each_image_and_its_target_with_another_by_the_same_weight():
    # Image k is flat grey 10 * k of class k, so a blended image's grey must be its target's weights times 0, 10, ..
    values = 10.0 * np.arange(5, dtype=np.float32)
    pixels = np.ones((5, 48, 48, 1), np.float32) * values[:, None, None, None]
    mixed_pixels, mixed_targets = (np.asarray(part) for part in build_mixup(0.4, seed=0)(pixels, np.eye(5, dtype=np.float32)))
    np.testing.assert_allclose(mixed_targets.sum(axis=1), 1, atol=1e-6)
    assert (mixed_targets.max(axis=1) < 0.99).any()  # some images are really blended
    np.testing.assert_allclose(mixed_pixels, (mixed_targets @ values)[:, None, None, None] * np.ones_like(pixels),
                               atol=1e-3)


def test_mixup_blends_training_batches_only_on_both_pipelines():
    images = np.stack([pattern_image(k % 5, k) for k in range(40)])[..., None]
    labels = np.arange(40) % 5
    for pipeline in (lambda **options: next(iter(make_dataset(images, labels, 5, batch_size=40, seed=0, **options))),
                     lambda **options: FaceBatches(images, labels, 5, batch_size=40, seed=0, **options)[0]):
        for training, mixup, blended in ((True, 0.4, True), (True, 0.0, False), (False, 0.4, False)):
            targets = np.asarray(pipeline(training=training, mixup=mixup)[1])
            np.testing.assert_allclose(targets.sum(axis=1), 1, atol=1e-6)
            assert (targets.max(axis=1) < 0.99).any() == blended


def test_reading_a_folder_imports_neither_tensorflow_nor_keras(tmp_path):
    write_dataset(tmp_path, per_class=2)
    code = ("import sys; from emotion.data import load_image_folder; "
            f"split = load_image_folder({str(tmp_path)!r}, {list(CLASSES)!r}); "
            "print(len(split.labels), sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.stdout.split() == ["10", "[]"], result.stderr
