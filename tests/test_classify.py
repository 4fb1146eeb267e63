import numpy as np
import pytest

from emotion.classify import EmotionClassifier, litert_from_keras
from emotion.model import build_little_vgg

NAMES = ["angry", "happy", "neutral", "sad", "surprise"]


@pytest.fixture(scope="module")
def model():
    return build_little_vgg(5)


@pytest.mark.parametrize("count", [0, 1, 3, 20])
def test_compiled_batched_scores_match_the_keras_model(model, count):
    faces = np.random.default_rng(count).integers(0, 255, (count, 48, 48, 1)).astype(np.float32)
    scores = EmotionClassifier(model, NAMES).scores(faces)
    assert scores.shape == (count, 5)
    if count:
        np.testing.assert_allclose(scores, model.predict(faces, verbose=0), atol=1e-5)


def test_flip_average_is_the_mean_of_the_face_and_its_mirror(model):
    faces = np.random.default_rng(1).integers(0, 255, (2, 48, 48, 1)).astype(np.float32)
    expected = (model.predict(faces, verbose=0) + model.predict(faces[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(EmotionClassifier(model, NAMES, flip_average=True).scores(faces), expected, atol=1e-5)


def real_face_crops():
    from emotion.detect import FaceDetector, crop_faces, to_gray
    from emotion.sources import sample_face
    gray = to_gray(sample_face())
    crops = crop_faces(gray, FaceDetector().detect(gray), margin=0.1)
    return np.concatenate([crops, crops[:, :, ::-1], np.clip(crops * 0.6 + 40, 0, 255)])


def test_litert_fast_path_gives_the_keras_scores_within_quantisation_error():
    # The committed model, not a one-epoch one: its scores are what users see, and it is the same every run.
    from emotion.constants import DEFAULT_MODEL_PATH
    from emotion.model import load_model
    model, names = load_model(DEFAULT_MODEL_PATH)
    faces = real_face_crops()
    exact = EmotionClassifier(model, names, flip_average=True).scores(faces)
    fast = EmotionClassifier(model, names, flip_average=True, litert=litert_from_keras(model)).scores(faces)
    assert fast.shape == exact.shape == (3, 5)
    np.testing.assert_allclose(fast, exact, atol=0.03)
    np.testing.assert_array_equal(fast.argmax(axis=1), exact.argmax(axis=1))
    np.testing.assert_allclose(fast.sum(axis=1), 1, atol=1e-4)


def test_litert_file_is_cached_beside_the_model_and_renewed_when_the_model_changes(tiny_model, tmp_path):
    import shutil

    from emotion.model import load_model, save_model
    path = tmp_path / "m.h5"
    shutil.copy(tiny_model, path)
    model, names = load_model(path)
    litert_from_keras(model, path)
    caches = list(tmp_path.glob(".m.h5.*.tflite"))
    assert len(caches) == 1
    modified = caches[0].stat().st_mtime_ns
    litert_from_keras(model, path)
    assert caches[0].stat().st_mtime_ns == modified, "the cached file is reused, not rewritten"
    model.layers[-1].set_weights([w * 0.5 for w in model.layers[-1].get_weights()])
    save_model(model, path, names)
    litert_from_keras(model, path)
    assert len(list(tmp_path.glob(".m.h5.*.tflite"))) == 2


def test_without_litert_installed_the_keras_graph_is_used(model, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    assert litert_from_keras(model) is None
