"""Runs that must not break or chatter: a damaged LiteRT cache, runs starting together, a broken video."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotion.classify import LiteRTModel, litert_from_keras
from emotion.console import load_quietly
from emotion.model import load_model
from tests.conftest import ROOT, run_script, save_narrow_model, user_environment

FACES = np.zeros((2, 48, 48, 1), np.float32)
# What each of the runs started at once does: the first steps of every test.py run.
CONVERT = """
import sys
import numpy as np
from emotion.console import load_quietly
load_quietly()
from emotion.classify import litert_from_keras
from emotion.model import load_model
model, _ = load_model(sys.argv[1])
print(litert_from_keras(model, sys.argv[1])(np.zeros((2, 48, 48, 1), np.float32)).shape)
"""


@pytest.fixture(scope="module")
def narrow_model(tmp_path_factory):
    return save_narrow_model(tmp_path_factory.mktemp("narrow") / "m.h5")


@pytest.fixture
def model_copy(narrow_model, tmp_path):
    """The narrow model in a folder of its own, so each test starts without a cache."""
    return Path(shutil.copy(narrow_model, tmp_path / "m.h5"))


def cache_files(folder):
    return sorted(folder.glob(".m.h5.*"))


@pytest.mark.happens("The hidden LiteRT file beside the model is damaged")
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_cache_is_converted_again_and_replaced(narrow_model, model_copy, damage, capfd):
    [good] = cache_files(narrow_model.parent)
    cache = model_copy.parent / good.name
    cache.write_bytes(good.read_bytes()[:good.stat().st_size // 2] if damage == "truncated" else b"")
    model, _ = load_model(model_copy)
    capfd.readouterr()
    assert litert_from_keras(model, model_copy)(FACES).shape == (2, 5)
    notice = capfd.readouterr().err.splitlines()
    assert len(notice) == 1 and notice[0].startswith("notice:") and cache.name in notice[0]
    assert cache_files(model_copy.parent) == [cache] and LiteRTModel(cache.read_bytes())(FACES).shape == (2, 5)
    litert_from_keras(model, model_copy)
    assert capfd.readouterr().err == "", "the replaced cache is used as it is"


def test_a_folder_that_cannot_be_written_still_works(model_copy, monkeypatch):
    # Tests run as root here, which chmod cannot stop: the writes fail as in a read-only folder.
    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(Path, "write_bytes", refuse)
    monkeypatch.setenv("XDG_CACHE_HOME", str(model_copy.parent / "cache"))  # the fallback, which refuses too
    model, _ = load_model(model_copy)
    assert litert_from_keras(model, model_copy)(FACES).shape == (2, 5)
    assert cache_files(model_copy.parent) == [] and list((model_copy.parent / "cache").rglob("*.tflite")) == []


@pytest.mark.happens("The hidden LiteRT file beside the model is damaged")
def test_runs_started_together_while_the_cache_is_being_written_all_succeed(model_copy, monkeypatch):
    """Two runs start at once while this process is halfway through writing the cache, as on a slow disk."""
    model, _ = load_model(model_copy)
    results = []

    def write_with_runs_starting_halfway(path, data):
        with open(path, "wb") as file:
            file.write(data[:len(data) // 2])
            file.flush()
            runs = [subprocess.Popen([sys.executable, "-c", CONVERT, str(model_copy)], cwd=ROOT, text=True,
                                     env=user_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    for _ in range(2)]
            results.extend(run.communicate(timeout=300) + (run.returncode,) for run in runs)
            file.write(data[len(data) // 2:])
    monkeypatch.setattr(Path, "write_bytes", write_with_runs_starting_halfway)
    litert_from_keras(model, model_copy)
    assert len(results) == 2, "the cache is written with Path.write_bytes, where the runs start"
    for stdout, stderr, returncode in results:
        assert (returncode, stdout, stderr) == (0, "(2, 5)\n", ""), "each run finds no cache or a whole one"
    [cache] = cache_files(model_copy.parent)  # and no temporary files
    assert LiteRTModel(cache.read_bytes())(FACES).shape == (2, 5)


def test_load_quietly_keeps_the_users_log_level_and_can_be_called_again(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    load_quietly()
    load_quietly()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


def test_the_api_starts_and_runs_without_a_word_on_stderr(model_copy):
    code = ("from emotion import EmotionRecognizer; from emotion.sources import sample_face; "
            f"print(len(EmotionRecognizer(model={str(model_copy)!r}).detect(sample_face())))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=user_environment(), capture_output=True, text=True,
                            timeout=300, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")


def test_a_broken_video_gives_one_line_on_stderr(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).bytes(20000))
    result = run_script("test.py", "--source", broken, "--no-display")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {broken} is neither an image nor a video that OpenCV can read"]
