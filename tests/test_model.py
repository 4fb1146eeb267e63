import json

import h5py
import keras
import numpy as np
import pytest

from emotion.model import ModelFileError, build_little_vgg, load_model, read_class_names, save_model
from tests.conftest import narrow_vgg


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


@pytest.mark.happens("The model file is missing, truncated or not HDF5")
def test_model_without_class_names_and_five_outputs_gets_the_defaults(model, tmp_path, capsys):
    path = tmp_path / "seed.h5"
    model.save(path)
    assert read_class_names(path) is None
    _, names = load_model(path)
    assert names == ["angry", "happy", "neutral", "sad", "surprise"]
    assert "assuming" in capsys.readouterr().out


@pytest.mark.happens("The model file is missing, truncated or not HDF5")
def test_model_without_class_names_and_other_outputs_is_refused(tmp_path):
    path = tmp_path / "seven.h5"
    build_little_vgg(7).save(path)
    with pytest.raises(ModelFileError, match="7 outputs and no class_names"):
        load_model(path)


@pytest.mark.happens("The model file is missing, truncated or not HDF5")
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


@pytest.mark.happens("The model file is missing, truncated or not HDF5")
def test_truncated_model_file_is_refused(model, tmp_path):
    path = tmp_path / "cut.h5"
    save_model(model, path, ["a", "b", "c", "d", "e"])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError):
        load_model(path)


@pytest.mark.happens("The model file is missing, truncated or not HDF5")
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


def test_the_committed_model_is_the_network_build_little_vgg_builds():
    # training.py's export rebuilds every checkpoint with build_little_vgg and --init-from copies weights by
    # position: the network built here must stay the one of the model that ships, layer for layer.
    from emotion.constants import DEFAULT_MODEL_PATH
    shipped, names = load_model(DEFAULT_MODEL_PATH)
    built = build_little_vgg(len(names))
    assert built.name == shipped.name
    assert [layer.get_config() for layer in built.layers] == [layer.get_config() for layer in shipped.layers]
    assert [w.shape for w in built.get_weights()] == [w.shape for w in shipped.get_weights()]


def test_raw_pixels_0_to_255_are_scaled_to_minus_1_to_1(model):
    rescale = model.get_layer("rescale")
    np.testing.assert_allclose(rescale(np.array([[0.0, 127.5, 255.0]])), [[-1.0, 0.0, 1.0]], atol=1e-6)


def test_a_failed_save_keeps_the_previous_model_and_leaves_no_partial_file(model, tmp_path, monkeypatch):
    import emotion.model
    path = tmp_path / "m.h5"
    save_model(model, path, ["a", "b", "c", "d", "e"])
    before = path.read_bytes()

    def full(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(emotion.model.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        save_model(model, path, ["v", "w", "x", "y", "z"])
    assert path.read_bytes() == before and [file.name for file in tmp_path.iterdir()] == ["m.h5"]
    monkeypatch.undo()

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(emotion.model, "open", refused, raising=False)
    with pytest.raises(PermissionError):  # the reason itself, not a failure to tidy up after it
        save_model(model, path, ["v", "w", "x", "y", "z"])
    assert path.read_bytes() == before and [file.name for file in tmp_path.iterdir()] == ["m.h5"]


@pytest.mark.happens("The model file is missing, truncated or not HDF5")
@pytest.mark.parametrize("attribute", ['"angry"', "7", '["a", "b", "c", "d"', "[]", '["a", "", "c", "d", "e"]',
                                       '["a", "b", "a", "d", "e"]', '["a", "b", 3, "d", "e"]', '{"a": 1}'])
def test_a_damaged_class_names_attribute_is_refused(model, tmp_path, attribute):
    path = tmp_path / "m.h5"
    save_model(model, path, ["a", "b", "c", "d", "e"])
    with h5py.File(path, "a") as file:
        file.attrs["class_names"] = attribute
    with pytest.raises(ModelFileError, match=f"^model file {path} is damaged: its class_names attribute is not a "
                                             "JSON list of distinct names$"):
        load_model(path)


def test_what_load_model_says_when_it_refuses_a_model(model, tmp_path, capsys):
    path = tmp_path / "m.h5"
    save_model(model, path, ["a", "b", "c", "d", "e"])
    with h5py.File(path, "a") as file:
        file.attrs["class_names"] = json.dumps(["a", "b", "c"])
    with pytest.raises(ModelFileError, match=f"^model {path} has 5 outputs but 3 class names$"):
        load_model(path)
    seven = tmp_path / "seven.h5"
    narrow_vgg(7).save(seven)
    with pytest.raises(ModelFileError, match=f"^model {seven} has 7 outputs and no class_names attribute$"):
        load_model(seven)
    rgb = tmp_path / "rgb.h5"
    inputs = keras.Input((64, 64, 3))
    keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inputs))).save(rgb)
    with pytest.raises(ModelFileError, match=rf"^model {rgb} takes input \(64, 64, 3\), not 48x48 grey images$"):
        load_model(rgb)
    with pytest.raises(ModelFileError, match=f"^model file {tmp_path / 'none.h5'} not found \\(train one with: "):
        load_model(tmp_path / "none.h5")
    bare = tmp_path / "bare.h5"
    model.save(bare)
    load_model(bare)
    assert capsys.readouterr().out == f"notice: {bare} has no class_names; assuming angry, happy, neutral, sad, surprise\n"


def test_a_model_keras_cannot_load_gives_the_first_line_of_its_reason(tmp_path):
    path = tmp_path / "lambda.h5"
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(lambda t: t * 2)(inputs)
    keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(x))).save(path)
    with pytest.raises(ModelFileError) as refused:
        load_model(path)
    message = str(refused.value)
    assert message.startswith(f"cannot load model {path}: ") and "\n" not in message
    assert len(message) > len(f"cannot load model {path}: ") + 10


@pytest.mark.parametrize(("error", "reason"), [(ValueError("bad layer\nTraceback details"), "bad layer"),
                                              (RuntimeError("  \n "), "RuntimeError"), (KeyError(), "KeyError")])
def test_a_loading_error_becomes_one_line_even_without_a_message(model, tmp_path, monkeypatch, error, reason):
    path = tmp_path / "m.h5"
    save_model(model, path, ["a", "b", "c", "d", "e"])

    def fail(*args, **kwargs):
        raise error
    monkeypatch.setattr(keras.saving, "load_model", fail)
    with pytest.raises(ModelFileError, match=f"^cannot load model {path}: {reason}$"):
        load_model(path)


def test_scores_stay_float32_when_the_network_computes_in_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = narrow_vgg(3)
        scores = mixed(np.full((2, 48, 48, 1), 128, np.float32), training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert scores.dtype == "float32"
    np.testing.assert_allclose(np.sum(scores, axis=1), 1, atol=1e-6)
