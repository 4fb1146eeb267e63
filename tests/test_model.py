import json

import h5py
import keras
import numpy as np
import pytest

from emotion.model import ModelFileError, build_little_vgg, load_model, read_class_names, save_model


@pytest.fixture(scope="module")
def model():
    return build_little_vgg(5)


def test_little_vgg_has_five_conv_blocks_and_a_softmax(model):
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 10
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 5
    assert model.input_shape == (None, 48, 48, 1)
    scores = model(np.full((2, 48, 48, 1), 128, np.float32), training=False).numpy()
    assert scores.shape == (2, 5)
    np.testing.assert_allclose(scores.sum(axis=1), 1, atol=1e-5)


def test_normalisation_is_inside_the_model(model):
    assert model.layers[1].name == "rescale"
    # Raw 255 pixels map to +1: callers feed raw pixels, the model scales them.
    assert float(model.layers[1](np.full((1, 1), 255.0))[0, 0]) == pytest.approx(1.0)


def test_save_and_load_round_trip_keeps_class_names_and_scores(model, tmp_path):
    path = tmp_path / "m.h5"
    names = ["a", "b", "c", "d", "e"]
    save_model(model, path, names)
    assert json.loads(h5py.File(path, "r").attrs["class_names"]) == names
    loaded, loaded_names = load_model(path)
    assert loaded_names == names
    faces = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(faces, training=False), model(faces, training=False), atol=1e-5)
    assert not list(tmp_path.glob(".*partial*")), "the temporary file must be renamed away"


def test_save_refuses_a_class_list_of_the_wrong_length(model, tmp_path):
    with pytest.raises(ValueError, match="3 class names for 5 outputs"):
        save_model(model, tmp_path / "m.h5", ["a", "b", "c"])


def test_model_without_class_names_and_five_outputs_gets_the_defaults(model, tmp_path, capsys):
    path = tmp_path / "seed.h5"
    model.save(path)
    assert read_class_names(path) is None
    _, names = load_model(path)
    assert names == ["angry", "happy", "neutral", "sad", "surprise"]
    assert "assuming" in capsys.readouterr().out


def test_model_without_class_names_and_other_outputs_is_refused(tmp_path):
    path = tmp_path / "seven.h5"
    build_little_vgg(7).save(path)
    with pytest.raises(ModelFileError, match="7 outputs and no class_names"):
        load_model(path)


def test_model_with_wrong_input_is_refused(tmp_path):
    path = tmp_path / "rgb.h5"
    inputs = keras.Input((64, 64, 3))
    keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inputs))).save(path)
    with pytest.raises(ModelFileError, match="takes input"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x89HDF\r\n\x1a\n" + b"\0" * 100])
def test_non_hdf5_or_truncated_file_is_refused(tmp_path, content):
    path = tmp_path / "broken.h5"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a readable HDF5"):
        load_model(path)


def test_truncated_model_file_is_refused(model, tmp_path):
    path = tmp_path / "cut.h5"
    save_model(model, path, ["a", "b", "c", "d", "e"])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError):
        load_model(path)


def test_lambda_layer_with_python_code_is_refused_in_safe_mode(tmp_path):
    path = tmp_path / "lambda.h5"
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(lambda t: t * 2)(inputs)
    keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(x))).save(path)
    with pytest.raises(ModelFileError, match="cannot load model"):
        load_model(path)


def test_missing_model_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ModelFileError, match="python training.py"):
        load_model(tmp_path / "nothing.h5")
