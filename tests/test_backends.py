"""The scripts without TensorFlow: training.py on Keras' JAX backend, as a GPU machine with only JAX runs it
(distilling, with mixup: the options a long GPU run would take), and test.py on a model's LiteRT cache."""
import json
import shutil

import cv2
import pytest

from emotion.sources import sample_face
from tests.conftest import ROOT, run_script, write_dataset

# Run a script with every import of the packages named in argv[2] (comma-separated) failing, as it does where they
# are not installed.
WITHOUT_PACKAGES = """
import runpy, sys

ABSENT = sys.argv[2].split(",")

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Absent())
sys.path.insert(0, sys.argv[1])
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_without(tmp_path, packages, script, *args, env=None):
    wrapper = tmp_path / "without_packages.py"
    wrapper.write_text(WITHOUT_PACKAGES)
    return run_script(wrapper, ROOT, ",".join(packages), ROOT / script, *args, env=env)


def run_without_tensorflow(tmp_path, *args):
    # XLA's CPU optimisations cost most of a short JAX run's time (each eager op and each step is compiled) and
    # change nothing that is checked here.
    fast_compile = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    return run_without(tmp_path, ["tensorflow"], "training.py", *args,
                       env={"KERAS_BACKEND": "jax", "XLA_FLAGS": fast_compile})


@pytest.mark.option("--teacher")
def test_training_on_jax_without_tensorflow_saves_a_model_that_tensorflow_loads_unchanged(tiny_model, tmp_path):
    import numpy as np

    from emotion.data import load_image_folder
    from emotion.model import load_model
    from emotion.report import evaluate
    # Whole batches only: JAX compiles each step again for a batch of another size.
    write_dataset(tmp_path / "train", per_class=8)
    write_dataset(tmp_path / "val", per_class=8, seed=1)
    out = tmp_path / "jax.h5"
    result = run_without_tensorflow(tmp_path, "--train-dir", tmp_path / "train", "--val-dir", tmp_path / "val",
                                    "--epochs", 1, "--batch-size", 8, "--precision", "float32",
                                    "--teacher", tiny_model, "--mixup", 0.2, "--model-out", out)
    assert result.returncode == 0, result.stderr
    assert "jax, precision float32, 1 replica(s), batch 8," in result.stdout
    assert len(np.loadtxt(tmp_path / "jax.log.csv", delimiter=",", skiprows=1, ndmin=2)) == 1

    model, class_names = load_model(out)  # here, under TensorFlow
    val = load_image_folder(tmp_path / "val", class_names)
    under_jax = json.loads((tmp_path / "jax.metrics.json").read_text())
    under_tensorflow = evaluate(model, val.images, val.labels, class_names)
    assert under_tensorflow["confusion_matrix"] == under_jax["confusion_matrix"]
    assert under_tensorflow["flip_average"]["confusion_matrix"] == under_jax["flip_average"]["confusion_matrix"]


def test_camera_artefacts_on_another_backend_is_one_line(tmp_path):
    write_dataset(tmp_path / "train", per_class=1)
    result = run_without_tensorflow(tmp_path, "--train-dir", tmp_path / "train", "--camera-artefacts",
                                    "--model-out", tmp_path / "m.h5")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["error: --camera-artefacts needs the TensorFlow backend, not jax"]


def test_a_model_converted_before_runs_in_test_py_without_tensorflow_or_keras(tiny_model, tmp_path):
    model = tmp_path / "model.h5"  # in a folder of its own, where its LiteRT cache goes
    shutil.copy(tiny_model, model)
    photo = tmp_path / "hopper.png"
    cv2.imwrite(str(photo), sample_face())
    run = ["--source", photo, "--no-display", "--model", model, "--log"]
    first = run_script("test.py", *run, tmp_path / "first.jsonl")
    assert first.returncode == 0, first.stderr
    caches = list(tmp_path.glob(".model.h5.*.tflite"))
    assert len(caches) == 1

    again = run_without(tmp_path, ["tensorflow", "keras"], "test.py", *run, tmp_path / "again.jsonl")
    assert again.returncode == 0, again.stderr
    assert "notice" not in again.stderr and "Traceback" not in again.stderr
    first_faces, again_faces = (json.loads((tmp_path / f"{name}.jsonl").read_text())["faces"]
                                for name in ("first", "again"))
    assert again_faces == first_faces and len(first_faces) == 1  # same box, label and scores

    caches[0].unlink()  # without its cache the model must be converted, which needs Keras
    uncached = run_without(tmp_path, ["tensorflow", "keras"], "test.py", *run, tmp_path / "uncached.jsonl")
    assert uncached.returncode != 0 and "No module named" in uncached.stderr
