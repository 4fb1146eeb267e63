"""Interrupted training loses at most one epoch: kill -9 and Ctrl-C, then --resume."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise

import pytest

from tests.conftest import ROOT, run_script, write_dataset


def start_training(data, model_out, epochs):
    command = [sys.executable, str(ROOT / "training.py"), "--train-dir", data / "train", "--val-dir", data / "val",
               "--epochs", str(epochs), "--batch-size", "8", "--precision", "float32", "--model-out", model_out]
    return subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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


def test_kill_9_mid_run_then_resume_continues_schedule_and_epochs(data):
    model_out = data / "m.h5"
    process = start_training(data, model_out, epochs=8)
    wait_for_backup(process, data / "m.backup" / "training_metadata.json", completed=2)
    process.kill()
    process.wait()
    done_before = {epoch for epoch, _ in history(model_out)}
    assert done_before and max(done_before) < 7

    refused = run_script("training.py", "--train-dir", data / "train", "--val-dir", data / "val",
                         "--model-out", model_out)
    assert refused.returncode != 0 and "--resume" in refused.stderr

    resumed = run_script("training.py", "--train-dir", data / "train", "--val-dir", data / "val", "--epochs", 8,
                         "--batch-size", 8, "--precision", "float32", "--model-out", model_out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    rows = history(model_out)
    epochs = [epoch for epoch, _ in rows]
    assert epochs[-1] == 7 and len(epochs) == len(set(epochs)), epochs
    # No epoch trained twice beyond the one in flight, and none skipped before the kill.
    assert min(epoch for epoch in epochs if epoch not in done_before) <= max(done_before) + 2
    # The learning-rate schedule continued instead of restarting its warm-up (it only falls after epoch 0).
    rates = [rate for _, rate in rows[1:]]
    assert all(later <= earlier + 1e-9 for earlier, later in pairwise(rates)), rates
    assert model_out.is_file() and not (data / "m.backup").exists()


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery to a child process")
def test_ctrl_c_keeps_best_and_last_checkpoint_and_exits_cleanly(data):
    model_out = data / "m.h5"
    process = start_training(data, model_out, epochs=40)
    wait_for_backup(process, data / "m.backup" / "training_metadata.json", completed=2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "--resume" in stdout
    assert model_out.is_file() and (data / "m.backup" / "latest.weights.h5").is_file()
