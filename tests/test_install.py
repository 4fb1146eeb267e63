"""`pip install` of the repository: the API, the trained model and the two commands, from a read-only site-packages.

The wheel is built from the sdist (python -m build) of the files a clone has, and installed into a new venv that
borrows this Python's packages, so nothing is downloaded.
"""
import functools
import json
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from emotion.classify import litert_cache
from emotion.constants import CASCADE_NAME, DEFAULT_MODEL_PATH
from tests.conftest import CLASSES, ROOT, user_environment

pytestmark = pytest.mark.install

# The model (10 MB of float32 weights, which hardly compress), its LiteRT file and the cascade: 11.6 MB in all.
WHEEL_MOST_BYTES = 14_000_000
API = """
import json, sys
import matplotlib.cbook
import emotion
from emotion import EmotionRecognizer
recognizer = EmotionRecognizer(*sys.argv[1:])
faces = recognizer.detect(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
print(json.dumps({"package": emotion.__file__, "runtime": recognizer.runtime, "labels": [face.label for face in faces],
                  "tensorflow": "tensorflow" in sys.modules}))
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A copy of what a clone has (git's tracked and new files): the wheel is built there, so the checkout gets no
    build/, and the scripts it holds stay the ones built while the checkout is edited."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    source = tmp_path_factory.mktemp("source")
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():  # a deleted file is still listed until the deletion is committed
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    return source


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    # --no-isolation builds with the setuptools installed here: offline, and seconds sooner.
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = dist.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A venv with the wheel installed, its site-packages made read-only; yields the venv's bin folder."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        capture_output=True, text=True, check=True).stdout.strip())
    # Where the tests run in a venv, --system-site-packages would miss its packages (TensorFlow...).
    (site_packages / "tests-borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # --no-index: the wheel's dependencies must be met by what is installed, not downloaded.
    result = subprocess.run([python, "-m", "pip", "install", "--no-index", "--disable-pip-version-check", str(wheel)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    subprocess.run(["chmod", "-R", "a-w", str(site_packages)], check=True)
    yield venv / "bin"
    subprocess.run(["chmod", "-R", "u+w", str(venv)], check=True)


@functools.cache
def honest_permissions():
    """What runs a command so that permissions hold, or None where nothing can: root writes whatever they say
    (the tests run as root here) unless it gives up the capabilities that let it."""
    if os.geteuid() != 0:
        return []
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    if shutil.which("setpriv") and subprocess.run([*drop, "true"], check=False).returncode == 0:
        return drop
    return None


def run_installed(bin_folder, command, *args, cwd, cache):
    """command (python, emotion-live, emotion-train) of the venv, from folder cwd, as a user whose site-packages is
    read-only and whose cache folder is cache. Help is not wrapped: argparse would break paths at their hyphens."""
    env = user_environment({"XDG_CACHE_HOME": str(cache), "PYTHONPATH": None, "COLUMNS": "10000"})
    return subprocess.run([*(honest_permissions() or []), str(bin_folder / command), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def files_under(folder):
    return sorted(path.relative_to(folder) for path in Path(folder).rglob("*") if path.is_file())


@pytest.fixture
def user(tmp_path):
    """A user's folders: where they run the commands, and their cache folder."""
    (tmp_path / "work").mkdir()
    return tmp_path / "work", tmp_path / "cache"


def test_the_wheel_holds_the_package_the_model_and_the_scripts_and_nothing_else(source, wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
        entry_points = archive.read(next(name for name in names if name.endswith("entry_points.txt"))).decode()
    assert {name.split("/")[0] for name in names} == {"emotion", wheel.name.split("-py3")[0] + ".dist-info"}
    assert {name for name in names if re.fullmatch(r"emotion/[^/]+", name)} == {
        f"emotion/{path.name}" for path in (source / "emotion").glob("*.py")}
    assert {name for name in names if name.startswith("emotion/scripts/")} == {
        f"emotion/scripts/{name}" for name in ("training.py", "test.py", DEFAULT_MODEL_PATH.name,
                                               litert_cache(DEFAULT_MODEL_PATH).name, CASCADE_NAME)}
    assert wheel.stat().st_size < WHEEL_MOST_BYTES
    # requirements.txt is the one list of dependencies.
    listed = [line.split("#")[0] for line in (source / "requirements.txt").read_text().splitlines()]
    assert sorted(re.findall(r"^Requires-Dist: (.+)$", metadata, re.MULTILINE)) == sorted(
        str(Requirement(line)) for line in listed if line.strip())
    assert "emotion-train = emotion.scripts.training:main" in entry_points
    assert "emotion-live = emotion.scripts.test:main" in entry_points


def test_the_installed_api_labels_a_real_photo_from_the_shipped_files_and_writes_nothing(installed, user):
    work, cache = user
    lib = installed.parent / "lib"
    before = files_under(lib)
    result = run_installed(installed, "python", "-c", API, cwd=work, cache=cache)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert Path(found["package"]).is_relative_to(installed.parent), "the installed package, not the clone's"
    assert len(found["labels"]) == 1 and found["labels"][0] in CLASSES
    # The shipped LiteRT file is used as it is: no TensorFlow, no conversion, nothing cached.
    assert found["runtime"] == "litert" and not found["tensorflow"]
    assert not (cache / "little-vgg-emotion").exists() and files_under(lib) == before
    assert files_under(work) == []


def test_emotion_live_runs_the_demo_with_the_installed_model(installed, user):
    work, cache = user
    result = run_installed(installed, "emotion-live", "--source", "demo", "--no-display", "--max-frames", 5,
                           cwd=work, cache=cache)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("5 frames, 5 face observations")


def same_text(text, prog, script):
    """Help or error text with the command's name for the script's, and without the line breaks its length moves."""
    return " ".join(text.replace(prog, script).split())


@pytest.mark.parametrize(("command", "script", "args"), [
    ("emotion-train", "training.py", ["--help"]),
    ("emotion-train", "training.py", ["--model-out", "absent/m.h5"]),
    ("emotion-train", "training.py", ["--epochs", "many"]),
    ("emotion-live", "test.py", ["--help"]),
    ("emotion-live", "test.py", ["--source", "absent.mp4", "--no-display"]),
])
def test_the_commands_are_the_scripts_with_the_installed_files(source, installed, user, command, script, args):
    work, cache = user
    result = run_installed(installed, command, *args, cwd=work, cache=cache)
    expected = subprocess.run([sys.executable, str(source / script), *args], cwd=work, capture_output=True, text=True,
                              env=user_environment({"COLUMNS": "10000", "PYTHONPATH": None}), timeout=300, check=False)
    assert result.returncode == expected.returncode
    scripts_folder = next(installed.parent.glob("lib/python*/site-packages/emotion/scripts"))
    # test.py's defaults are the files beside it: the clone's there, the installed ones here.
    assert same_text(result.stdout.replace(str(scripts_folder), str(source)), command, script) == same_text(
        expected.stdout, script, script)
    assert same_text(result.stderr, command, script) == same_text(expected.stderr, script, script)


def test_a_model_in_a_read_only_folder_is_cached_in_the_user_cache_folder_once(installed, user, tmp_path):
    if honest_permissions() is None:
        pytest.skip("runs as root, and setpriv cannot drop the capabilities that override permissions")
    work, cache = user
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(next(installed.parent.glob(f"lib/python*/site-packages/emotion/scripts/{DEFAULT_MODEL_PATH.name}")),
                models / "m.h5")
    models.chmod(0o555)
    try:
        first = run_installed(installed, "python", "-c", API, models / "m.h5", cwd=work, cache=cache)
        again = run_installed(installed, "python", "-c", API, models / "m.h5", cwd=work, cache=cache)
    finally:
        models.chmod(0o755)
    for result in (first, again):
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["runtime"] == "litert" and len(json.loads(result.stdout)["labels"]) == 1
    assert json.loads(first.stdout)["tensorflow"], "converted by the first run"
    assert not json.loads(again.stdout)["tensorflow"], "served from the user cache folder by the next"
    assert files_under(models) == [Path("m.h5")]
    assert files_under(cache / "little-vgg-emotion") == [Path(litert_cache(models / "m.h5").name.removeprefix("."))]
