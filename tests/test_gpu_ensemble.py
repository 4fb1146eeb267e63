"""gpu/ensemble.py: the faces packed for a GPU machine without a pixel changed, its runs stopped at their deadlines,
the epochs fitted to them, and the whole train step (teachers, then the student) on this CPU with Keras on JAX."""
import importlib.util
import subprocess
import sys
import tarfile

import cv2
import numpy as np
import pytest

from emotion.data import FERPLUS_VOTE_COLUMNS
from tests.conftest import (
    CLASSES,
    ROOT,
    assert_one_line_error,
    pattern_image,
    run_script,
    user_environment,
    write_votes,
)


def load_ensemble():
    spec = importlib.util.spec_from_file_location("gpu_ensemble", ROOT / "gpu" / "ensemble.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ensemble = load_ensemble()
VOTE_COLUMN = {"angry": "anger", "happy": "happiness", "neutral": "neutral", "sad": "sadness", "surprise": "surprise"}
needs_jpegtran = pytest.mark.skipif(ensemble.shutil.which("jpegtran") is None,
                                    reason="jpegtran missing: apt-get install libjpeg-turbo-progs (.ci/run does)")


def write_fer2013(root, per_class=4):
    """root/fer2013/{train,test}/<class>/<n>.jpg and root/ferplus/{train,test}.csv, every face voted for its folder."""
    (root / "ferplus").mkdir()
    for split_number, split in enumerate(("train", "test")):
        rows = []
        for label, name in enumerate(CLASSES):
            (root / "fer2013" / split / name).mkdir(parents=True)
            for index in range(per_class):
                image = pattern_image(label, 100 * split_number + 10 * label + index)
                cv2.imwrite(str(root / "fer2013" / split / name / f"{index}.jpg"), image)
                votes = [10 * (column == VOTE_COLUMN[name]) for column in FERPLUS_VOTE_COLUMNS]
                rows.append((name, f"{index}.jpg", votes))
        write_votes(root / "ferplus" / f"{split}.csv", rows)
    return root / "fer2013", root / "ferplus"


@needs_jpegtran
def test_pack_keeps_every_face_s_pixels_in_a_smaller_file_and_the_votes_beside_them(tmp_path):
    fer2013, ferplus = write_fer2013(tmp_path)
    assert ensemble.pack_faces(fer2013, ferplus, tmp_path / "pack") == 2 * 5 * 4
    with tarfile.open(tmp_path / "pack" / "faces.tar.gz") as archive:
        packed = {member.name: archive.extractfile(member).read() for member in archive if member.isfile()}
    originals = sorted(path.relative_to(fer2013).as_posix() for path in fer2013.rglob("*.jpg"))
    assert sorted(name for name in packed if name.endswith(".jpg")) == originals
    for name in originals:
        decoded = cv2.imdecode(np.frombuffer(packed[name], np.uint8), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(decoded, cv2.imread(str(fer2013 / name), cv2.IMREAD_GRAYSCALE), err_msg=name)
        assert len(packed[name]) < (fer2013 / name).stat().st_size
    for split in ("train", "test"):
        assert packed[f"{split}.csv"] == (ferplus / f"{split}.csv").read_bytes()


def test_pack_without_jpegtran_or_without_the_faces_is_one_line(tmp_path):
    script = ROOT / "gpu" / "ensemble.py"
    run = subprocess.run([sys.executable, script, "--pack", tmp_path / "pack", "pack", "--fer2013", tmp_path],
                         capture_output=True, text=True, env=user_environment({"PATH": str(tmp_path)}), check=False)
    assert_one_line_error(run, "pack needs jpegtran (apt-get install libjpeg-turbo-progs)", code=1)
    if ensemble.shutil.which("jpegtran"):
        result = run_script(script, "--pack", tmp_path / "pack", "pack", "--fer2013", tmp_path / "none")
        assert_one_line_error(result, f"{tmp_path / 'none' / 'train'} not found", code=1)


def test_more_teachers_than_can_come_back_is_one_line(tmp_path):
    result = run_script(ROOT / "gpu" / "ensemble.py", "train", "--out", tmp_path, "--teachers", 6)
    assert_one_line_error(result, "--teachers must be 1 to 5, not 6", code=1)
    assert not any(tmp_path.iterdir())


def test_a_run_past_its_deadline_is_stopped_as_ctrl_c_stops_it_and_one_that_ignores_that_is_killed(tmp_path):
    # A stand-in for training.py: saves and exits 0 on Ctrl-C, as training.py does; and one that ignores it.
    obeys = "import signal, time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('saved')\n"
    ignores = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('started', flush=True)\n" \
              "time.sleep(60)\n"
    quick = "print('done')\n"
    logs = [tmp_path / f"{name}.txt" for name in ("obeys", "quick")]
    codes = ensemble.run_all({logs[0]: [sys.executable, "-c", obeys], logs[1]: [sys.executable, "-c", quick]},
                             0.02, user_environment())
    assert codes == [0, 0]
    assert [log.read_text() for log in logs] == ["saved\n", "done\n"]

    stubborn = subprocess.Popen([sys.executable, "-c", ignores], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline() == "started\n"  # its handler is set
    stubborn.send_signal(ensemble.signal.SIGINT)
    assert ensemble.finished(stubborn, grace_s=0.5) == -ensemble.signal.SIGKILL


def test_the_teachers_epochs_fit_their_deadline_with_room_for_validation_and_the_start():
    # 28,000 faces at 1,000 images/s: 28 s of training and 4.7 s of validation an epoch; 5 minutes less 45 s to start.
    assert ensemble.fitting_epochs(28_000, 1_000, 5, 45) == 7
    assert ensemble.fitting_epochs(28_000, 100_000, 5, 45) == 45  # never more than asked
    assert ensemble.fitting_epochs(28_000, 10, 5, 45) == 1  # a slow machine still trains an epoch (and is stopped)


def test_a_timing_run_stopped_within_its_first_epoch_gives_no_rate_and_the_others_still_count(tmp_path):
    # training.py writes the log's header when it starts and a row when an epoch ends; a probe stopped at its deadline
    # on a busy machine may leave the header alone.
    header = "epoch,accuracy,images_per_s,input_share,learning_rate,loss,val_accuracy,val_loss\n"
    (tmp_path / "probe1.log.csv").write_text(header)
    (tmp_path / "probe2.log.csv").write_text(header + "0,0.3,52.5,0.01,0.002,1.7,0.4,1.5\n"
                                             "1,0.5,140.0,0.01,0.001,1.2,0.6,1.0\n")
    probes = [tmp_path / f"probe{seed}.h5" for seed in (1, 2, 3)]  # the third never started
    assert [ensemble.last_rate(probe) for probe in probes] == [None, 140.0, None]

def test_the_log_that_comes_back_keeps_each_progress_bar_s_last_state_alone(tmp_path):
    log = tmp_path / "run.txt"
    log.write_bytes(b"Epoch 1/45\n\r 1/430 loss: 2.0\b\b\b\r430/430 loss: 1.5 - val_accuracy: 0.42\n"
                    b"re-estimating: 0%\r re-estimating: 100%\r\nsaved m.h5\n")
    assert ensemble.as_shown(log) == "Epoch 1/45\n430/430 loss: 1.5 - val_accuracy: 0.42\n re-estimating: 100%\n" \
                                     "saved m.h5\n"
    assert ensemble.as_shown(tmp_path / "never.txt") == "(not run)\n"


@needs_jpegtran
def test_train_makes_teachers_from_seeds_and_a_student_that_learns_their_answers(tmp_path):
    fer2013, ferplus = write_fer2013(tmp_path)
    pack, out, work = tmp_path / "pack", tmp_path / "out", tmp_path / "work"
    ensemble.pack_faces(fer2013, ferplus, pack)
    # XLA's CPU optimisations cost most of a short JAX run's time and change nothing checked here.
    fast_compile = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    result = run_script(ROOT / "gpu" / "ensemble.py", "--pack", pack, "train", "--out", out, "--work", work,
                        "--teachers", 2, "--epochs", 1, "--", "--batch-size", 10, "--precision", "float32",
                        env={"XLA_FLAGS": fast_compile})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 runs at once, " in result.stdout and " images/s each: 1 epochs" in result.stdout
    assert sorted(path.name for path in out.iterdir()) == [
        "ensemble.log", "student.h5", "student.metrics.json", "teacher1.h5", "teacher2.h5"]
    log = (out / "ensemble.log").read_text()
    assert log.count("jax, precision float32, 1 replica(s), batch 10") == 3  # each teacher and the student on JAX
    assert log.count("training: 20 images") == 3
    from emotion.model import load_model
    weights = [load_model(out / f"teacher{seed}.h5")[0].get_weights()[0] for seed in (1, 2)]
    assert not np.allclose(*weights)  # two seeds, two models
    # The student alone learns from the teachers' answers, from both of them.
    assert "teachers' answers" not in (work / "runs" / "teacher1.txt").read_text()
    answers = [line for line in (work / "runs" / "student.txt").read_text().splitlines() if "teachers' answers" in line]
    assert "| 2/2 [" in answers[-1]  # its progress bar, one model after the other
