"""Model files of the original toolkit: Keras 2 Sequential .h5 files, built here with h5py in the layout Keras 2.3.1
wrote (no InputLayer, batch_input_shape on the first Conv2D and on a later one that was given input_shape)."""
import csv
import json

import h5py
import keras
import numpy as np
import pytest

from emotion.model import load_model
from tests.conftest import CLASSES, load_script, pattern_image, run_script

HE_NORMAL = {"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_in", "distribution": "normal",
                                                         "seed": None}}
ZEROS, ONES = {"class_name": "Zeros", "config": {}}, {"class_name": "Ones", "config": {}}
WEIGHT_NAMES = {"Conv2D": ("kernel", "bias"), "Dense": ("kernel", "bias"),
                "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}


def keras2_layer(kind, name, **config):
    """One layer of a Keras 2.3.1 model_config."""
    common = {"name": name, "trainable": True, "dtype": "float32"}
    defaults = {
        "Conv2D": {"kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "data_format": "channels_last",
                   "dilation_rate": [1, 1], "activation": "linear", "use_bias": True, "kernel_initializer": HE_NORMAL,
                   "bias_initializer": ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
                   "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None},
        "Dense": {"activation": "linear", "use_bias": True, "kernel_initializer": HE_NORMAL, "bias_initializer": ZEROS,
                  "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                  "kernel_constraint": None, "bias_constraint": None},
        "BatchNormalization": {"axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True,
                               "beta_initializer": ZEROS, "gamma_initializer": ONES, "moving_mean_initializer": ZEROS,
                               "moving_variance_initializer": ONES, "beta_regularizer": None, "gamma_regularizer": None,
                               "beta_constraint": None, "gamma_constraint": None},
        "MaxPooling2D": {"pool_size": [2, 2], "padding": "valid", "strides": [2, 2], "data_format": "channels_last"},
        "Dropout": {"noise_shape": None, "seed": None},
        "Flatten": {"data_format": "channels_last"},
    }.get(kind, {})
    return {"class_name": kind, "config": {**common, **defaults, **config}}


def seed_layers():
    """The seed's little VGG, narrowed to 4 filters and one block: ELU and BatchNorm after each convolution."""
    shape = [None, 48, 48, 1]
    return [keras2_layer("Conv2D", "conv2d_1", filters=4, batch_input_shape=shape),
            keras2_layer("Activation", "activation_1", activation="elu"),
            keras2_layer("BatchNormalization", "batch_normalization_1"),
            # The seed script also gave its second convolution an input_shape, which Keras 2 stored so.
            keras2_layer("Conv2D", "conv2d_2", filters=4, batch_input_shape=shape),
            keras2_layer("Activation", "activation_2", activation="elu"),
            keras2_layer("BatchNormalization", "batch_normalization_2"),
            keras2_layer("MaxPooling2D", "max_pooling2d_1"), keras2_layer("Dropout", "dropout_1", rate=0.2),
            keras2_layer("Flatten", "flatten_1"), keras2_layer("Dense", "dense_1", units=5),
            keras2_layer("Activation", "activation_3", activation="softmax")]


def random_weights(layers, seed=0):
    """{layer name: [arrays]} in Keras 2's order, BatchNorm statistics far from their defaults."""
    random = np.random.default_rng(seed)
    shapes = {"conv2d_1": [(3, 3, 1, 4), (4,)], "conv2d_2": [(3, 3, 4, 4), (4,)], "dense_1": [(24 * 24 * 4, 5), (5,)]}
    weights = {name: [random.normal(0, 0.3 if len(shape) > 1 else 0.1, shape).astype(np.float32) for shape in shapes]
               for name, shapes in shapes.items()}
    for layer in layers:
        if layer["class_name"] == "BatchNormalization":
            weights[layer["config"]["name"]] = [random.uniform(0.5, 1.5, 4), random.normal(0, 0.2, 4),
                                                random.normal(0, 0.2, 4), random.uniform(0.5, 1.5, 4)]
    return weights


def write_keras2_h5(path, layers, weights, legacy_list=False):
    """A .h5 as Keras 2.3.1 saved a Sequential (legacy_list: as Keras 2.0-2.2 did, the layers as the whole config)."""
    config = {"class_name": "Sequential",
              "config": layers if legacy_list else {"name": "sequential_1", "layers": layers}}
    with h5py.File(path, "w") as file:
        file.attrs["keras_version"], file.attrs["backend"] = b"2.3.1", b"tensorflow"
        file.attrs["model_config"] = json.dumps(config).encode()
        group = file.create_group("model_weights")
        group.attrs["layer_names"] = [layer["config"]["name"].encode() for layer in layers]
        group.attrs["keras_version"], group.attrs["backend"] = b"2.3.1", b"tensorflow"
        for layer in layers:
            name = layer["config"]["name"]
            names = [f"{name}/{weight}:0" for weight in WEIGHT_NAMES.get(layer["class_name"], ())]
            layer_group = group.create_group(name)
            layer_group.attrs["weight_names"] = [weight.encode() for weight in names]
            for weight, values in zip(names, weights.get(name, ()), strict=True):
                layer_group.create_dataset(weight, data=np.asarray(values, np.float32))
    return path


def rebuilt(weights):
    """The same network built in Keras 3, with the weights set: what the file must answer, on pixels scaled to 0-1."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((48, 48, 1)), layers.Conv2D(4, 3, padding="same"), layers.Activation("elu"),
        layers.BatchNormalization(), layers.Conv2D(4, 3, padding="same"), layers.Activation("elu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Dropout(0.2), layers.Flatten(), layers.Dense(5),
        layers.Activation("softmax")])
    model.set_weights([values for name in ("conv2d_1", "batch_normalization_1", "conv2d_2", "batch_normalization_2",
                                           "dense_1") for values in weights[name]])
    return model


@pytest.fixture(scope="module")
def faces():
    return np.stack([pattern_image(label, seed) for label in range(5) for seed in range(2)])[..., None]


@pytest.mark.happens("The model file is missing, truncated or not HDF5")
@pytest.mark.parametrize("legacy_list", [False, True], ids=["keras 2.3", "keras 2.0-2.2"])
def test_a_keras2_file_of_the_seed_s_shape_answers_as_the_rebuilt_net_on_pixels_scaled_to_0_1(
        tmp_path, faces, capsys, legacy_list):
    layers = seed_layers()
    weights = random_weights(layers)
    path = write_keras2_h5(tmp_path / "Emotion_little_vgg.h5", layers, weights, legacy_list)
    with no_warnings():
        model, class_names = load_model(path)
    assert class_names == list(CLASSES)  # flow_from_directory's sorted order, not a webcam script's list
    net = rebuilt(weights)
    expected = net.predict(faces / 255.0, verbose=0)
    np.testing.assert_allclose(model.predict(faces.astype(np.float32), verbose=0), expected, atol=1e-5)
    # Raw pixels would give other answers: the file's scaling is what makes the two agree.
    assert np.abs(net.predict(faces.astype(np.float32), verbose=0) - expected).max() > 0.05
    notice = capsys.readouterr().out.strip().splitlines()
    assert len(notice) == 1 and notice[0].startswith(f"notice: {path} is a Keras 2 model without class names")
    assert "pixels scaled to 0-1" in notice[0] and "angry, happy, neutral, sad, surprise" in notice[0]


class no_warnings:
    """Fails the test if a warning (Keras' UserWarning about input_shape, say) is raised within."""

    def __enter__(self):
        import warnings
        self.catcher = warnings.catch_warnings(record=True)
        self.seen = self.catcher.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self.catcher.__exit__(*exc)
        assert not self.seen, [str(warning.message) for warning in self.seen]


@pytest.mark.option("--convert")
def test_convert_writes_the_class_names_and_scaling_into_a_file_that_loads_silently(tmp_path, faces, capsys):
    layers = seed_layers()
    weights = random_weights(layers, seed=3)
    seed_file = write_keras2_h5(tmp_path / "seed.h5", layers, weights)
    order = ["angry", "happy", "sad", "neutral", "surprise"]  # as a user who knows their file's order says
    assert load_script("training").main(["--convert", str(seed_file), "--classes", ",".join(order),
                                         "--model-out", str(tmp_path / "converted.h5")]) == 0
    capsys.readouterr()
    model, class_names = load_model(tmp_path / "converted.h5")
    assert class_names == order and capsys.readouterr().out == ""
    np.testing.assert_allclose(model.predict(faces.astype(np.float32), verbose=0),
                               rebuilt(weights).predict(faces / 255.0, verbose=0), atol=1e-5)


@pytest.mark.option("--convert")
def test_convert_refuses_a_model_whose_outputs_do_not_match_the_classes(tmp_path):
    seed_file = write_keras2_h5(tmp_path / "seed.h5", seed_layers(), random_weights(seed_layers()))
    with pytest.raises(SystemExit, match="has 5 outputs, not one for each of the 3 --classes"):
        load_script("training").main(["--convert", str(seed_file), "--classes", "happy,sad,neutral",
                                      "--model-out", str(tmp_path / "converted.h5")])


@pytest.mark.happens("The model file is missing, truncated or not HDF5")
def test_test_py_labels_a_face_with_a_seed_era_file_as_the_rebuilt_net_and_no_keras_warning(tmp_path):
    import cv2

    from emotion.classify import SHIFTS, shift
    layers = seed_layers()
    weights = random_weights(layers, seed=5)
    path = write_keras2_h5(tmp_path / "seed.h5", layers, weights)
    face = pattern_image(2, 0)
    cv2.imwrite(str(tmp_path / "face.png"), face)
    result = run_script("test.py", "--model", path, "--source", tmp_path / "face.png", "--no-display",
                        "--detector", "none", "--log", tmp_path / "faces.csv")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
    assert "is a Keras 2 model without class names" in result.stdout
    with open(tmp_path / "faces.csv") as file:
        (row,) = list(csv.DictReader(file))
    # A photo's score is the mean over 18 views: 9 shifts, each with its mirror image (classify.SHIFTS).
    views = [shift(face[None, ..., None].astype(np.float32), dx, dy) for dx, dy in SHIFTS]
    views = np.concatenate([*views, *(view[:, :, ::-1] for view in views)])
    expected = rebuilt(weights).predict(views / 255.0, verbose=0).mean(axis=0)
    logged = np.array([float(row[name]) for name in CLASSES])
    np.testing.assert_allclose(logged, expected, atol=0.03)  # LiteRT's 8-bit weights
    assert row["label"] == CLASSES[int(expected.argmax())]
