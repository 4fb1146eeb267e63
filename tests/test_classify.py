import os
import re
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from emotion.classify import EmotionClassifier, LiteRTModel, convert_to_litert, litert_from_keras, write_atomically
from emotion.model import build_little_vgg
from tests.conftest import narrow_vgg

NAMES = ["angry", "happy", "neutral", "sad", "surprise"]


@pytest.fixture(scope="module")
def model():
    return build_little_vgg(5)


@pytest.mark.parametrize("count", [0, 1, 3, 20])
def test_compiled_batched_scores_match_the_keras_model(model, count):
    faces = np.random.default_rng(count).integers(0, 255, (count, 48, 48, 1)).astype(np.float32)
    scores = EmotionClassifier(model, NAMES).scores(faces)
    assert scores.shape == (count, 5) and scores.dtype == np.float32
    if count:
        np.testing.assert_allclose(scores, model.predict(faces, verbose=0), atol=1e-5)


def test_flip_average_is_the_mean_of_the_face_and_its_mirror(model):
    faces = np.random.default_rng(1).integers(0, 255, (2, 48, 48, 1)).astype(np.float32)
    expected = (model.predict(faces, verbose=0) + model.predict(faces[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(EmotionClassifier(model, NAMES, flip_average=True).scores(faces), expected, atol=1e-5)


def real_face_crops():
    from emotion.classify import crop_faces
    from emotion.detect import HaarCascade, to_gray
    from emotion.sources import sample_face
    gray = to_gray(sample_face())
    crops = crop_faces(gray, HaarCascade().detect(gray), margin=0.1)
    return np.concatenate([crops, crops[:, :, ::-1], np.clip(crops * 0.6 + 40, 0, 255)])


@pytest.mark.e2e  # about the checkout's files, not the code: mutation runs work in a copy git does not track
def test_the_shipped_model_s_litert_file_is_committed_and_is_its_own():
    # Without it, a new clone's first run loads TensorFlow and converts the model (see docs/speed.md, Start-up).
    import subprocess

    from emotion.classify import litert_cache
    from emotion.constants import DEFAULT_MODEL_PATH, PROJECT_DIR
    listed = subprocess.run(["git", "ls-files", "*.tflite"], cwd=PROJECT_DIR, capture_output=True, text=True,
                            check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    assert listed.stdout.split() == [litert_cache(DEFAULT_MODEL_PATH).name]


def test_litert_fast_path_gives_the_keras_scores_within_quantisation_error():
    # The committed model, not a one-epoch one: its scores are what users see, and it is the same every run.
    from emotion.constants import DEFAULT_MODEL_PATH
    from emotion.model import load_model
    model, names = load_model(DEFAULT_MODEL_PATH)
    litert = litert_from_keras(model, DEFAULT_MODEL_PATH)  # the committed LiteRT file, which users' runs load
    faces = real_face_crops()
    exact = EmotionClassifier(model, names, flip_average=True).scores(faces)
    fast = EmotionClassifier(model, names, flip_average=True, litert=litert).scores(faces)
    assert fast.shape == exact.shape == (3, 5)
    np.testing.assert_allclose(fast, exact, atol=0.03)
    np.testing.assert_array_equal(fast.argmax(axis=1), exact.argmax(axis=1))
    np.testing.assert_allclose(fast.sum(axis=1), 1, atol=1e-4)


@pytest.fixture(scope="module")
def narrow_model():
    """A little VGG four filters wide: quick to convert to LiteRT."""
    return narrow_vgg(5)


def test_litert_file_is_cached_beside_the_model_and_renewed_when_the_model_changes(narrow_model, tmp_path):
    from emotion.model import save_model
    path = tmp_path / "m.h5"
    save_model(narrow_model, path, NAMES)
    litert_from_keras(narrow_model, path)
    caches = list(tmp_path.glob(".m.h5.*.tflite"))
    assert len(caches) == 1
    modified = caches[0].stat().st_mtime_ns
    litert_from_keras(narrow_model, path)
    assert caches[0].stat().st_mtime_ns == modified, "the cached file is reused, not rewritten"
    changed = keras.models.clone_model(narrow_model)
    changed.set_weights([w * 0.5 for w in narrow_model.get_weights()])
    save_model(changed, path, NAMES)
    litert_from_keras(changed, path)
    assert len(list(tmp_path.glob(".m.h5.*.tflite"))) == 2
    assert [file for file in tmp_path.iterdir() if "partial" in file.name] == []


def test_a_damaged_or_unwritable_cache_costs_a_conversion_not_the_run(narrow_model, tmp_path, capfd, monkeypatch):
    from emotion.model import save_model
    path, faces = tmp_path / "m.h5", np.zeros((2, 48, 48, 1), np.float32)
    save_model(narrow_model, path, NAMES)
    litert_from_keras(narrow_model, path)
    [cache] = tmp_path.glob(".m.h5.*.tflite")
    assert re.fullmatch(r"\.m\.h5\.[0-9a-f]{16}\.tflite", cache.name)
    cache.write_bytes(b"")
    capfd.readouterr()
    assert litert_from_keras(narrow_model, path)(faces).shape == (2, 5)
    assert capfd.readouterr().err == (f"notice: LiteRT cache {cache} is damaged or unreadable; "
                                      "converting the model again\n")
    assert cache.stat().st_size > 0, "the damaged cache is replaced"
    cache.unlink()

    def refuse(self, data):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "write_bytes", refuse)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the fallback, which refuses too
    assert litert_from_keras(narrow_model, path)(faces).shape == (2, 5)
    assert list(tmp_path.glob(".m.h5.*")) == [] and list((tmp_path / "cache").rglob("*.tflite")) == []


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="platformdirs follows XDG_CACHE_HOME on Linux")
def test_a_model_folder_that_cannot_be_written_caches_in_the_user_cache_folder(narrow_model, tmp_path, monkeypatch):
    # As an installed package in a read-only site-packages. Tests run as root here, which chmod cannot stop.
    import emotion.classify
    from emotion.model import save_model
    folder, cache, faces = tmp_path / "read-only", tmp_path / "cache", np.zeros((2, 48, 48, 1), np.float32)
    folder.mkdir()
    path = folder / "m.h5"
    save_model(narrow_model, path, NAMES)
    write_bytes = Path.write_bytes

    def read_only_folder(self, data):
        if self.parent == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return write_bytes(self, data)
    monkeypatch.setattr(Path, "write_bytes", read_only_folder)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert litert_from_keras(narrow_model, path)(faces).shape == (2, 5)
    assert sorted(folder.iterdir()) == [path]
    [cached] = (cache / "little-vgg-emotion").iterdir()  # whole: no partial file beside it
    assert re.fullmatch(r"m\.h5\.[0-9a-f]{16}\.tflite", cached.name)
    assert LiteRTModel(cached.read_bytes())(faces).shape == (2, 5)

    def no_conversion(model):
        raise AssertionError("converted again")
    monkeypatch.setattr(emotion.classify, "convert_to_litert", no_conversion)
    assert litert_from_keras(narrow_model, path)(faces).shape == (2, 5), "served from the user cache folder"


def test_a_disk_that_fills_up_leaves_no_part_of_a_litert_file_anywhere(narrow_model, tmp_path, monkeypatch):
    from emotion.model import save_model
    path, cache = tmp_path / "m.h5", tmp_path / "cache"
    save_model(narrow_model, path, NAMES)

    def half_then_full(self, data):
        with open(self, "wb") as file:
            file.write(data[:len(data) // 2])
        raise OSError(28, "No space left on device", str(self))
    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert litert_from_keras(narrow_model, path)(np.zeros((1, 48, 48, 1), np.float32)).shape == (1, 5)
    assert sorted(tmp_path.iterdir()) == [cache, path] and list(cache.rglob("*.*")) == []


def test_litert_scores_follow_the_batch_size_as_it_changes(narrow_model):
    faces = np.random.default_rng(2).integers(0, 255, (5, 48, 48, 1)).astype(np.float32)
    expected = narrow_model.predict(faces, verbose=0)
    litert = litert_from_keras(narrow_model)
    # One face, then five, then one, then two twice: LiteRT's input is resized whenever the count changes.
    for start, stop in ((0, 1), (0, 5), (1, 2), (3, 5), (3, 5)):
        np.testing.assert_allclose(litert(faces[start:stop]), expected[start:stop], atol=0.03)
    assert EmotionClassifier(narrow_model, NAMES, litert=litert).scores(faces[:0]).shape == (0, 5)


def test_faces_of_any_numeric_type_are_scored_as_float_pixels(model, narrow_model):
    faces = np.random.default_rng(3).integers(0, 255, (3, 48, 48, 1))
    for classifier in (EmotionClassifier(model, NAMES), EmotionClassifier(narrow_model, NAMES,
                                                                          litert=litert_from_keras(narrow_model))):
        expected = classifier.scores(faces.astype(np.float32))
        for kind in (np.uint8, np.int64, np.float64):
            np.testing.assert_allclose(classifier.scores(faces.astype(kind)), expected, atol=1e-6)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_litert_computes_on_two_threads_where_there_are_two_cores(narrow_model):
    # The calling thread and one more: where a CPU lacks AVX-512, a face costs milliseconds, and a frame's
    # stages run one after another, so the second core is free while faces are scored.
    import gc
    flatbuffer = convert_to_litert(narrow_model)
    faces = np.zeros((4, 48, 48, 1), np.float32)
    gc.collect()  # models of earlier tests, and their threads, go now rather than while threads are counted
    before = len(os.listdir("/proc/self/task"))
    model = LiteRTModel(flatbuffer)
    model(faces)
    assert len(os.listdir("/proc/self/task")) == before + 1
    del model


def test_a_write_that_fails_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "cache.tflite"
    write_atomically(target, b"first")
    assert target.read_bytes() == b"first" and [path.name for path in tmp_path.iterdir()] == ["cache.tflite"]

    def no_rename(source, destination):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, b"second")
    assert target.read_bytes() == b"first" and [path.name for path in tmp_path.iterdir()] == ["cache.tflite"]
    monkeypatch.undo()
    write_atomically(target, b"second")
    assert target.read_bytes() == b"second" and [path.name for path in tmp_path.iterdir()] == ["cache.tflite"]


def test_without_litert_installed_the_keras_graph_is_used(model, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    assert litert_from_keras(model) is None
