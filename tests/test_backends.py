"""training.py on Keras' JAX backend with TensorFlow absent, as a GPU machine with only JAX runs it (distilling, with
mixup: the options a long GPU run would take)."""
import json

from conftest import ROOT, run_script, write_dataset

# Run a script with every `import tensorflow` failing as it does where TensorFlow is not installed.
WITHOUT_TENSORFLOW = """
import runpy, sys

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTensorFlow())
sys.path.insert(0, sys.argv[1])
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_without_tensorflow(tmp_path, *args):
    wrapper = tmp_path / "without_tensorflow.py"
    wrapper.write_text(WITHOUT_TENSORFLOW)
    return run_script(wrapper, ROOT, ROOT / "training.py", *args, env={"KERAS_BACKEND": "jax"})


def test_training_on_jax_without_tensorflow_saves_a_model_that_tensorflow_loads_unchanged(tiny_model, tmp_path):
    import numpy as np

    from emotion.data import load_image_folder
    from emotion.model import load_model
    from emotion.report import evaluate
    write_dataset(tmp_path / "train", per_class=6)
    write_dataset(tmp_path / "val", per_class=4, seed=1)
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
