"""Interrupted training loses at most one epoch: kill -9 and Ctrl-C, then --resume."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest

from tests.conftest import ROOT, narrow_vgg, run_script, user_environment, write_dataset


def start_training(data, model_out, epochs, in_background=False):
    """in_background: started as `nohup ... &` starts it, ignoring SIGINT."""
    command = [sys.executable, str(ROOT / "training.py"), "--train-dir", data / "train", "--val-dir", data / "val",
               "--epochs", str(epochs), "--batch-size", "8", "--precision", "float32", "--model-out", model_out]
    if in_background:  # exec keeps the ignored signal, as a background job's shell hands it on
        command = ["sh", "-c", "trap '' INT; exec \"$0\" \"$@\"", *command]
    return subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=user_environment())


def wait_for_backup(process, metadata, completed=1, timeout=180):
    """Block until the run has backed up at least `completed` epochs, then a little more: mid next epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be interrupted"
        try:
            if json.loads(metadata.read_text())["epoch"] >= completed:
                time.sleep(0.3)
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    raise TimeoutError("no backup appeared")


def history(model_out):
    with open(model_out.with_suffix(".log.csv")) as file:
        return [(int(row["epoch"]), float(row["learning_rate"])) for row in csv.DictReader(file)]


@pytest.fixture
def data(tmp_path):
    write_dataset(tmp_path / "train", per_class=16)
    write_dataset(tmp_path / "val", per_class=2, seed=1)
    return tmp_path


@pytest.mark.option("--epochs", "--resume")
@pytest.mark.happens("Training is interrupted")
@pytest.mark.e2e
def test_kill_9_mid_run_then_resume_continues_schedule_and_epochs(data, trainer):
    model_out = data / "m.h5"
    process = start_training(data, model_out, epochs=6)
    wait_for_backup(process, data / "m.backup" / "training_metadata.json", completed=2)
    process.kill()
    process.wait()
    done_before = {epoch for epoch, _ in history(model_out)}
    assert done_before and max(done_before) < 5

    refused = run_script("training.py", "--train-dir", data / "train", "--val-dir", data / "val",
                         "--model-out", model_out)
    assert refused.returncode != 0 and "--resume" in refused.stderr

    # Resumed in this process: what is left on disk is all a new run has, and TensorFlow is loaded already.
    assert trainer.main([str(arg) for arg in ("--train-dir", data / "train", "--val-dir", data / "val", "--epochs", 6,
                                              "--batch-size", 8, "--precision", "float32", "--model-out", model_out,
                                              "--resume")]) == 0
    rows = history(model_out)
    epochs = [epoch for epoch, _ in rows]
    assert epochs[-1] == 5 and len(epochs) == len(set(epochs)), epochs
    # No epoch trained twice beyond the one in flight, and none skipped before the kill.
    assert min(epoch for epoch in epochs if epoch not in done_before) <= max(done_before) + 2
    # The learning-rate schedule continued instead of restarting its warm-up (it only falls after epoch 0).
    rates = [rate for _, rate in rows[1:]]
    assert all(later <= earlier + 1e-9 for earlier, later in pairwise(rates)), rates
    assert model_out.is_file() and not (data / "m.backup").exists()


@pytest.mark.happens("Training is interrupted")
@pytest.mark.e2e
@pytest.mark.skipif(os.name != "posix", reason="signal delivery to a child process")
@pytest.mark.parametrize(("stop", "in_background"), [(signal.SIGINT, True), (signal.SIGTERM, True)],
                         ids=["ctrl-c or kill -INT, also in the background", "kill, in the background"])
def test_ctrl_c_or_kill_keeps_best_and_last_checkpoint_and_exits_cleanly(data, stop, in_background):
    model_out = data / "m.h5"
    process = start_training(data, model_out, epochs=40, in_background=in_background)
    wait_for_backup(process, data / "m.backup" / "training_metadata.json", completed=2)
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "--resume" in stdout
    assert model_out.is_file() and (data / "m.backup" / "latest.weights.h5").is_file()


# The save, export and resume paths in-process, cheaply (mutation runs use these; see docs/testing.md).
@pytest.fixture
def float32_afterwards():
    import keras
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_export_rebuilds_the_best_checkpoint_in_float32_with_its_class_names(tmp_path, float32_afterwards):
    import keras
    import numpy as np

    import training
    from emotion.model import build_little_vgg, load_model
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # as a run on a GPU trains
    checkpoint = build_little_vgg(3)
    checkpoint.save(tmp_path / "m.best.h5")
    names = ["sad", "happy", "angry"]  # not alphabetical: the order is the model's output order
    exported = training.export(tmp_path / "m.best.h5", tmp_path / "m.h5", names)
    model, loaded_names = load_model(tmp_path / "m.h5")
    assert loaded_names == names
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    for saved, trained in zip(model.get_weights(), checkpoint.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, trained)
    faces = np.random.default_rng(0).integers(0, 255, (2, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(exported(faces, training=False), model(faces, training=False), atol=1e-6)


def test_a_crash_while_saving_a_new_best_leaves_the_earlier_best_whole(tmp_path, monkeypatch):
    import keras
    import numpy as np

    from emotion.train import best_checkpoint
    model = narrow_vgg(5)
    best = tmp_path / "m.best.h5"

    def checkpoint(initial_best):
        return keras.callbacks.CallbackList(best_checkpoint(best, tmp_path / "m.best.saving.h5", initial_best),
                                            model=model)

    def assert_best_holds(weights):
        saved = keras.saving.load_model(best, compile=False).get_weights()
        for kept, weight in zip(saved, weights, strict=True):
            np.testing.assert_array_equal(kept, weight)

    callbacks = checkpoint(initial_best=0.3)
    callbacks.on_epoch_end(0, {"val_accuracy": 0.2})  # below a resumed run's best so far: not kept
    assert not best.exists()
    first = model.get_weights()
    callbacks.on_epoch_end(1, {"val_accuracy": 0.5})
    model.set_weights([weight + 1 for weight in first])
    callbacks.on_epoch_end(2, {"val_accuracy": 0.4})  # not better: the best stays epoch 1's
    assert_best_holds(first)

    def killed_mid_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"\x89HDF\r\n\x1a\n half a file")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save", killed_mid_save)
        with pytest.raises(KeyboardInterrupt):
            callbacks.on_epoch_end(3, {"val_accuracy": 0.6})
    assert_best_holds(first)
    # Resumed (new callbacks, as in a new process) with the half file still there: an epoch that is no new best
    # leaves the earlier best in place.
    callbacks = checkpoint(initial_best=0.5)
    callbacks.on_train_begin()
    callbacks.on_epoch_end(4, {"val_accuracy": 0.45})
    assert_best_holds(first)
    callbacks.on_epoch_end(5, {"val_accuracy": 0.7})  # the next best replaces it
    assert_best_holds(model.get_weights())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.best.h5"]


def test_a_finished_run_removes_its_checkpoints_and_a_half_written_one_but_keeps_the_model_and_report(tmp_path):
    import training
    from emotion.report import report_paths
    paths = report_paths(tmp_path / "m.h5")
    kept = [tmp_path / "m.h5", paths["metrics"], paths["history"]]
    for path in (*kept, paths["best"], paths["best_saving"], paths["backup"] / "latest.weights.h5"):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\x89HDF\r\n\x1a\n")
    training.remove_checkpoints(paths)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    training.remove_checkpoints(paths)  # a run that never wrote some of them
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_init_from_takes_a_models_weights_only_for_the_same_classes_in_the_same_order(tmp_path):
    import numpy as np

    import training
    from emotion.model import build_little_vgg, save_model
    model = build_little_vgg(3)
    save_model(model, tmp_path / "m.h5", ["sad", "happy", "angry"])
    weights = training.trained_model(tmp_path / "m.h5", ["sad", "happy", "angry"], "--init-from").get_weights()
    for taken, trained in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(taken, trained)
    with pytest.raises(SystemExit, match=r"^error: --init-from \S+m\.h5 was trained on sad,happy,angry, "
                                         r"not angry,happy,sad$"):
        training.trained_model(tmp_path / "m.h5", ["angry", "happy", "sad"], "--init-from")
    with pytest.raises(SystemExit, match=r"^error: --init-from: model file \S+absent\.h5 not found"):
        training.trained_model(tmp_path / "absent.h5", ["sad", "happy", "angry"], "--init-from")


def test_the_output_folder_is_checked_before_any_training(tmp_path, monkeypatch):
    from pathlib import Path

    import training
    monkeypatch.chdir(tmp_path)
    assert training.check_writable(Path("m.h5")) is None
    assert list(tmp_path.iterdir()) == [], "the write test leaves nothing behind"
    with pytest.raises(SystemExit, match=f"^error: output folder {tmp_path}/absent does not exist$"):
        training.check_writable(Path("absent/m.h5"))
    with pytest.raises(SystemExit, match="^error: cannot write in output folder /proc: [A-Z]"):
        training.check_writable(Path("/proc/m.h5"))


def test_a_resumed_run_keeps_the_best_value_so_far_not_the_last(tmp_path):
    from emotion.train import best_logged
    history = tmp_path / "m.log.csv"
    history.write_text("epoch,accuracy,val_accuracy\n0,0.5,0.4\n1,0.6,0.7\n2,0.9,0.55\n3,0.95,\n")
    assert best_logged(history) == pytest.approx(0.7)
    assert best_logged(history, metric="accuracy") == pytest.approx(0.95)
    assert best_logged(tmp_path / "absent.csv") is None
    (tmp_path / "empty.csv").write_text("epoch,accuracy,val_accuracy\n")
    assert best_logged(tmp_path / "empty.csv") is None
