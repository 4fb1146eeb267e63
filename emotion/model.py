"""The five-block ELU/BatchNorm "little VGG" and its .h5 file, which carries its own class names.

    model = build_little_vgg(num_classes=5)
    save_model(model, "Emotion_little_vgg.h5", ["angry", "happy", "neutral", "sad", "surprise"])
    model, class_names = load_model("Emotion_little_vgg.h5")
"""
import io
import json
import os
from pathlib import Path

import h5py

from .console import import_keras
from .constants import DEFAULT_CLASS_NAMES, IMAGE_SIZE

CONV_WIDTHS = (32, 64, 128, 256, 256)
DENSE_WIDTHS = (256, 128)


def build_little_vgg(num_classes, widths=CONV_WIDTHS, dense_widths=DENSE_WIDTHS,
                     conv_dropout=0.1, dense_dropout=0.3):
    """Uncompiled model: (n, 48, 48, 1) raw 0-255 grey pixels -> (n, num_classes) softmax."""
    keras = import_keras()
    layers = keras.layers
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    # Normalisation lives in the model so every caller feeds raw pixels and none can forget it.
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    for block, width in enumerate(widths, start=1):
        for conv in (1, 2):
            x = layers.Conv2D(width, 3, padding="same", kernel_initializer="he_normal",
                              name=f"block{block}_conv{conv}")(x)
            x = layers.ELU(name=f"block{block}_elu{conv}")(x)
            x = layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
        x = layers.Dropout(conv_dropout, name=f"block{block}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    for index, width in enumerate(dense_widths, start=1):
        x = layers.Dense(width, kernel_initializer="he_normal", name=f"fc{index}")(x)
        x = layers.ELU(name=f"fc{index}_elu")(x)
        x = layers.BatchNormalization(name=f"fc{index}_bn")(x)
        x = layers.Dropout(dense_dropout, name=f"fc{index}_dropout")(x)
    # float32 output even under a mixed-precision policy, so softmax scores stay exact.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="emotion")(x)
    return keras.Model(inputs, outputs, name="little_vgg")


class ModelFileError(ValueError):
    """A model file that cannot be used: missing, not HDF5, unsafe, or not a 48x48 grey classifier."""


def save_model(model, path, class_names, held_out=None):
    """Write model to a .h5 with a root attribute class_names (JSON list in output order), atomically.

    held_out: for a model trained without one fold of its training images, {"fold", "folds", "images"} (see
    data.fold_mask), kept as the attribute held_out so that distilling asks it only about that fold."""
    # No public API writes to an h5py.File.
    from keras.src.legacy.saving.legacy_h5_format import save_model_to_hdf5
    path = Path(path)
    if len(class_names) != model.output_shape[-1]:
        raise ValueError(f"{len(class_names)} class names for {model.output_shape[-1]} outputs")
    # The file is built in memory and written by Python: HDF5 writing to a disk that fills up mid-save raises
    # cryptic errors, prints hundreds of lines and can crash the process (tests/test_fuzz.py); a Python write
    # raises OSError: No space left on device.
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        save_model_to_hdf5(model, file)  # what model.save does for a .h5 name
        file.attrs["class_names"] = json.dumps(list(class_names))
        if held_out:
            file.attrs["held_out"] = json.dumps(held_out)
    # Written beside the target and renamed, so a crash or a full disk mid-save never leaves a broken model
    # behind: the previous file stays as it was, and the half-written one is removed.
    partial = path.with_name(f".{path.stem}.partial.h5")
    try:
        with open(partial, "wb") as file:
            file.write(buffer.getbuffer())
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename, so a power cut cannot leave an empty model
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def read_json_attribute(path, name, is_valid, expected):
    """The root attribute name of a .h5 file parsed as JSON, or None when the file has none; ValueError ("its name
    attribute is not expected") unless is_valid(value).

    A damaged or hand-edited attribute must be refused here: a JSON string would give one class per letter, and
    a number or non-JSON bytes would escape as TypeError or JSONDecodeError (tests/test_fuzz.py)."""
    with h5py.File(path, "r") as file:
        value = file.attrs.get(name)
    if value is None:
        return None
    try:
        value = json.loads(value)
    except (TypeError, ValueError):
        value = None
    if not is_valid(value):
        raise ValueError(f"its {name} attribute is not {expected}")
    return value


def read_held_out(path):
    """The held_out attribute of a .h5 ({"fold", "folds", "images"}; see save_model), or None for a model trained
    on all its training images; ValueError when it is not such a record."""
    def is_valid(record):
        return (isinstance(record, dict) and all(isinstance(record.get(key), int) for key in ("fold", "folds", "images"))
                and 1 <= record["fold"] <= record["folds"])
    return read_json_attribute(path, "held_out", is_valid, "a JSON record of fold, folds and images")


def read_class_names(path):
    """The class_names attribute of a .h5 file, or None when the file has none; ValueError when it is not a JSON
    list of distinct names."""
    def is_valid(names):
        return (isinstance(names, list) and names and all(isinstance(name, str) and name for name in names)
                and len(set(names)) == len(names))
    return read_json_attribute(path, "class_names", is_valid, "a JSON list of distinct names")


def read_model_class_names(path):
    """The class_names attribute of the model file at path, or None when it has none; raises ModelFileError when
    the file is missing, not HDF5, or its attribute is damaged. Cheap: no Keras."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} not found (train one with: python training.py)")
    try:
        return read_class_names(path)
    except OSError:
        raise ModelFileError(f"model file {path} is not a readable HDF5 file (truncated or another format?)") from None
    except ValueError as error:
        raise ModelFileError(f"model file {path} is damaged: {error}") from None


def class_names_for_outputs(path, class_names, outputs):
    """class_names (read_model_class_names) of the model at path, checked against its number of outputs; a file
    without them, from before they were saved, is taken to answer the default classes (with a notice)."""
    if class_names is None:
        if outputs != len(DEFAULT_CLASS_NAMES):
            raise ModelFileError(f"model {path} has {outputs} outputs and no class_names attribute")
        print(f"notice: {path} has no class_names; assuming {', '.join(DEFAULT_CLASS_NAMES)}")
        class_names = list(DEFAULT_CLASS_NAMES)
    if len(class_names) != outputs:
        raise ModelFileError(f"model {path} has {outputs} outputs but {len(class_names)} class names")
    return class_names


def is_keras2_sequential(path):
    """True for a Sequential .h5 that Keras 2 wrote, as the original toolkit's training script made them."""
    with h5py.File(path, "r") as file:
        version, config = file.attrs.get("keras_version", ""), file.attrs.get("model_config", "")
    # A damaged file may hold any bytes there; such a file is not Keras 2's, and Keras' own loader says why.
    version = version.decode(errors="replace") if isinstance(version, bytes) else str(version)
    config = config.decode(errors="replace") if isinstance(config, bytes) else str(config)
    return version.startswith("2.") and '"class_name": "Sequential"' in config


def load_keras2_sequential(path):
    """A Keras 2 Sequential .h5 as a model of raw 0-255 pixels: the original toolkit trained on pixels scaled to 0-1,
    so that scaling is put in front of it, as this project's models carry theirs.

    Keras 2 kept the input shape as a batch_input_shape on the first layer, and on any later one given an
    input_shape; Keras 3 reads each as a new input and fails ("Kernel shape must have the same length as input").
    The file's config is rewritten in memory with one input layer instead, and its weights load as they are."""
    from keras.src.legacy.saving import legacy_h5_format  # the loader Keras 3 itself uses for .h5 files
    keras = import_keras()
    buffer = io.BytesIO(Path(path).read_bytes())
    with h5py.File(buffer, "r+") as file:
        config = json.loads(file.attrs["model_config"])
        if isinstance(config["config"], list):  # Keras 2.0-2.2 kept a Sequential's layers as its whole config
            config["config"] = {"name": "sequential", "layers": config["config"]}
        layers = config["config"]["layers"]
        shapes = [layer["config"].pop(key) for layer in layers for key in ("batch_input_shape", "input_shape")
                  if key in layer["config"]]
        input_shape = [None, IMAGE_SIZE, IMAGE_SIZE, 1] if not shapes else (
            shapes[0] if len(shapes[0]) == 4 else [None, *shapes[0]])
        layers.insert(0, {"class_name": "InputLayer",
                          "config": {"batch_input_shape": input_shape, "dtype": "float32", "name": "seed_input"}})
        file.attrs["model_config"] = json.dumps(config)
        seed = legacy_h5_format.load_model_from_hdf5(file, compile=False, safe_mode=True)
    pixels = keras.Input(seed.input_shape[1:], name="pixels")
    return keras.Model(pixels, seed(keras.layers.Rescaling(1 / 255, name="rescale")(pixels)), name=seed.name)


def load_model(path):
    """(model, class_names) from a .h5; raises ModelFileError with a one-line reason."""
    path = Path(path)
    class_names = read_model_class_names(path)  # a wrong file fails here, before Keras takes seconds to load
    keras2 = is_keras2_sequential(path)
    keras = import_keras()
    try:
        # safe_mode stays on: a .h5 can hold Python code (Lambda layers) that must never run.
        model = load_keras2_sequential(path) if keras2 else keras.saving.load_model(path, compile=False,
                                                                                    safe_mode=True)
    # Keras raises many exception types for bad files; the user needs one line, not a traceback.
    except Exception as error:  # noqa: BLE001
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"cannot load model {path}: {reason}") from None
    if tuple(model.input_shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE, 1):
        raise ModelFileError(f"model {path} takes input {model.input_shape[1:]}, "
                             f"not {IMAGE_SIZE}x{IMAGE_SIZE} grey images")
    if keras2 and class_names is None and model.output_shape[-1] == len(DEFAULT_CLASS_NAMES):
        # flow_from_directory, which the original toolkit trained with, numbers the class folders in sorted order.
        print(f"notice: {path} is a Keras 2 model without class names: assuming pixels scaled to 0-1 and the classes "
              f"{', '.join(DEFAULT_CLASS_NAMES)} (its training folders' sorted order); to write them into a copy: "
              f"python training.py --convert {path} --model-out NEW.h5")
        class_names = list(DEFAULT_CLASS_NAMES)
    return model, class_names_for_outputs(path, class_names, model.output_shape[-1])
