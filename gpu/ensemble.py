"""Several little VGGs trained at once on one GPU (Keras on JAX), then distilled into one: a GPU machine's minutes.

A GPU machine with JAX but no TensorFlow trains this small net many times faster than a 2-core CPU, but it may
reach nothing outside itself: the faces and the Python wheels it lacks travel with the project. Two steps:

    python gpu/ensemble.py pack                     # here: runs/gpu/ holds the faces, FER+'s votes and the wheels
    python3 gpu/ensemble.py train --out "$OUT"      # there: the teachers at once, then the student, into --out

`train` installs the wheels into a folder of its own, unpacks the faces, trains --teachers models with the committed
recipe (FER+'s votes) from different seeds, side by side on the one GPU, and then a student that also learns their
mirror-averaged answers (training.py --teacher). A phase still going at its deadline is stopped as Ctrl-C stops
training.py, which keeps the best epoch so far. --out gets the student, its report and the teachers. Then, here:
`python benchmarks/ensemble.py --model T1 --model T2 …` scores the teachers' ensemble and
`python benchmarks/compare_fer.py --model STUDENT` the student as test.py reads a photo.
"""
import csv
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emotion.console import command_parser

PACK = REPO / "runs" / "gpu"  # runs/ is ignored by git: nothing packed here is ever committed
SHARED = REPO.parent / "shared"
# What training.py needs that the GPU machines' image lacks (docs/training.md, "On a lent GPU"); the image has
# numpy, h5py, opencv-python-headless, matplotlib, tqdm and JAX, and Python 3.12.
# Keras too, at this machine's version (download_wheels).
WHEELS = ("namex", "optree", "platformdirs")
WHEEL_PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:",
                  "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                  "--platform", "manylinux2014_x86_64"]
CARRY_LIMIT = 64 * 2**20  # what travels to the GPU machine: the project's files and the pack together
# At most 8 files come back from a GPU machine: the student, its report, the log of every run, and the teachers.
MOST_TEACHERS = 5
PROBE_FACES = 300  # per class, in the two epochs that time a run before the real ones
COMPILE_S = 45  # a run's start before its first step: reading the faces, compiling the step


def parse_args(argv=None):
    parser = command_parser(__doc__)
    parser.add_argument("--pack", default=PACK, type=Path, help="the packed faces and wheels (under an ignored folder)")
    steps = parser.add_subparsers(dest="step", required=True)
    pack = steps.add_parser("pack", help="here: the faces, the votes and the wheels into --pack")
    pack.add_argument("--fer2013", default=SHARED / "fer2013", type=Path, help="FER2013's train/ and test/ folders")
    pack.add_argument("--ferplus", default=SHARED / "ferplus", type=Path, help="FER+'s train.csv and test.csv")
    train = steps.add_parser("train", help="there: the teachers, then the student")
    train.add_argument("--out", required=True, type=Path, help="where the models and their reports go")
    train.add_argument("--teachers", default=4, type=int,
                       help=f"models trained side by side from different seeds, 1 to {MOST_TEACHERS}")
    train.add_argument("--epochs", default=45, type=int,
                       help="epochs of each teacher and of the student, fewer where the deadline needs")
    train.add_argument("--teacher-minutes", default=4.0, type=float,
                       help="the teachers' deadline; their epochs are cut to fit it, at most --epochs")
    train.add_argument("--student-minutes", default=3.0, type=float, help="the student's deadline")
    train.add_argument("--work", default=Path(tempfile.gettempdir()) / "ensemble", type=Path,
                       help="where the faces are unpacked and the wheels installed")
    train.add_argument("options", nargs="*", help="more training.py options for every run, after --")
    args = parser.parse_args(argv)
    if args.step == "train" and not 1 <= args.teachers <= MOST_TEACHERS:
        raise SystemExit(f"error: --teachers must be 1 to {MOST_TEACHERS}, not {args.teachers}: at most 8 files come "
                         "back from a GPU machine")
    return args


def pack_faces(fer2013, ferplus, pack):
    """pack/faces.tar.gz: FER2013's train/ and test/ folders, their JPEGs made smaller without a pixel changed, and
    FER+'s votes files beside them."""
    jpegtran = shutil.which("jpegtran")
    if jpegtran is None:
        raise SystemExit("error: pack needs jpegtran (apt-get install libjpeg-turbo-progs) to make the faces fit")
    for needed in (fer2013 / "train", fer2013 / "test", ferplus / "train.csv", ferplus / "test.csv"):
        if not needed.exists():
            raise SystemExit(f"error: {needed} not found")
    from tqdm import tqdm
    pack.mkdir(parents=True, exist_ok=True)
    faces = sorted(path for split in ("train", "test") for path in (fer2013 / split).glob("*/*.jpg"))
    with tempfile.TemporaryDirectory() as staging:
        # The JPEGs as they are would not fit beside the project: jpegtran rewrites each one's Huffman tables
        # (lossless: the same pixels decode), 14 % smaller.
        def shrink(path):
            target = Path(staging, path.relative_to(fer2013))
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([jpegtran, "-optimize", "-copy", "none", "-outfile", str(target), str(path)], check=True)
        with ThreadPoolExecutor(os.cpu_count()) as pool:
            list(tqdm(pool.map(shrink, faces), total=len(faces), desc="faces", unit="img"))
        with tarfile.open(pack / "faces.tar.gz", "w:gz") as archive:
            for split in ("train", "test"):
                archive.add(Path(staging, split), split)
                archive.add(ferplus / f"{split}.csv", f"{split}.csv")
    return len(faces)


def download_wheels(pack):
    """pack/wheels/: Keras and WHEELS for the GPU machine's Python, Keras at this machine's version so that the models
    it saves load here as they were saved."""
    import keras
    shutil.rmtree(pack / "wheels", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *WHEEL_PLATFORM, "-d",
                    str(pack / "wheels"), f"keras=={keras.__version__}", *WHEELS], check=True)


def pack_all(args):
    faces = pack_faces(args.fer2013, args.ferplus, args.pack)
    download_wheels(args.pack)
    # What travels with the working tree: tracked files and the untracked ones git does not ignore.
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout
    size = sum((REPO / name).stat().st_size for name in set(listed.decode().split("\0")) if (REPO / name).is_file())
    size += sum(path.stat().st_size for path in args.pack.rglob("*") if path.is_file())
    print(f"{args.pack}: {faces} faces and the wheels; with the project {size / 2**20:.1f} MiB of the "
          f"{CARRY_LIMIT // 2**20} that may travel")
    if size > CARRY_LIMIT:
        raise SystemExit("error: too large to travel to the GPU machine")
    return 0


def install(pack, work):
    """Environment for training.py there: the packed wheels on PYTHONPATH, JAX as Keras' backend, sharing the GPU."""
    site = work / "site"
    wheels = sorted((pack / "wheels").glob("*.whl"))
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(site), *map(str, wheels)], check=True)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    # JAX takes 75 % of the GPU's memory for the first process by default; this net needs a few hundred MB a run.
    return {**os.environ, "PYTHONPATH": path, "KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def run_all(commands, minutes, env):
    """Runs the {log file: command} at once from the project's folder; those still going after `minutes` get SIGINT
    (training.py then saves its best epoch so far: see finished). Their exit codes."""
    processes = []
    for log, command in commands.items():
        with log.open("w") as output:  # the run writes to its own copy of the file
            processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60 * minutes
    while any(process.poll() is None for process in processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    return [finished(process) for process in processes]


def finished(process, grace_s=60):
    """The exit code of a run told to stop: grace_s to save its model, then killed, so that the next phase runs."""
    try:
        return process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def training(model, options):
    """{log file: command} of a training.py run that saves model (its log beside it, as a .txt)."""
    return {model.with_suffix(".txt"): [sys.executable, "training.py", *map(str, options), "--model-out", str(model)]}


def seeded_runs(folder, name, seeds, options):
    """(models, {log file: command}) of one training.py run with options per seed, saving folder/<name><seed>.h5."""
    models = [folder / f"{name}{seed}.h5" for seed in seeds]
    commands = {}
    for seed, model in zip(seeds, models):
        commands.update(training(model, [*options, "--seed", seed]))
    return models, commands


def fitting_epochs(faces, images_per_s, minutes, most):
    """Epochs of `faces` training faces that a run at images_per_s finishes within `minutes`, at least 1 and at most
    `most`: a sixth more for each epoch's validation, and COMPILE_S for the run's start."""
    epoch_s = faces / images_per_s * 7 / 6
    return max(1, min(most, int((60 * minutes - COMPILE_S) / epoch_s)))


def timed_rate(data, seeds, work, env):
    """Images/s of each of len(seeds) runs side by side, timed on the second of two short epochs (the first also
    compiles; it alone counts for a run stopped before the second) of each run at once: the slowest run's."""
    # --max-per-class first, so that the options' own (a quick trial's) wins.
    probes, commands = seeded_runs(work, "probe", seeds, ["--max-per-class", PROBE_FACES, *data, "--epochs", 2])
    run_all(commands, 1.5, env)
    rates = [rate for rate in map(last_rate, probes) if rate is not None]
    if not rates:
        raise SystemExit(f"error: the timing runs logged no epoch: see {probes[0].with_suffix('.txt')}")
    return min(rates)


def last_rate(model):
    """Images/s of the last epoch in the log of the run that saves model, or None where it logged none (it failed,
    or was stopped within its first epoch)."""
    log = model.with_suffix(".log.csv")
    if not log.exists():
        return None
    with log.open(newline="") as file:
        epochs = list(csv.DictReader(file))
    return float(epochs[-1]["images_per_s"]) if epochs else None


def as_shown(log):
    """A run's log as a terminal ends up showing it: each progress bar's last state alone. A 45-epoch run logs
    4.6 MB of bar updates, and a file over 16 MiB does not come back from a GPU machine."""
    if not log.exists():
        return "(not run)\n"
    with open(log, newline="") as file:  # not "\r" read as a line end
        text = file.read()
    lines = []
    for line in text.replace("\b", "").split("\n"):
        shown = [part for part in line.split("\r") if part.strip()]
        lines.append(shown[-1] if shown else "")
    return "\n".join(lines)


def train(args):
    for folder in (args.out, args.work):
        folder.mkdir(parents=True, exist_ok=True)
    env = install(args.pack, args.work)
    faces = args.work / "faces"
    with tarfile.open(args.pack / "faces.tar.gz") as archive:
        archive.extractall(faces, filter="data")
    data = ["--train-dir", faces / "train", "--val-dir", faces / "test", "--votes", faces / "train.csv",
            "--val-votes", faces / "test.csv", *args.options]
    # Every model of this command is new: one left by an earlier command would pass for a teacher, and its
    # backup would stop training.py.
    runs = args.work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir()
    seeds = range(1, args.teachers + 1)
    rate = timed_rate(data, seeds, runs, env)
    epochs = fitting_epochs(sum(1 for _ in (faces / "train").glob("*/*")), rate, args.teacher_minutes, args.epochs)
    print(f"{len(seeds)} runs at once, {rate:.0f} images/s each: {epochs} epochs", flush=True)
    teachers, commands = seeded_runs(runs, "teacher", seeds, [*data, "--epochs", epochs])
    codes = run_all(commands, args.teacher_minutes, env)
    done = [teacher for teacher in teachers if teacher.exists()]
    student = runs / "student.h5"
    if done:
        # Alone on the GPU, the student runs faster than each teacher did: the same epochs fit in less time.
        taught = [item for teacher in done for item in ("--teacher", teacher)]
        run_all(training(student, [*data, "--epochs", epochs, *taught]), args.student_minutes, env)
    with (args.out / "ensemble.log").open("w") as log:
        for run in [*teachers, student]:
            log.write(f"== {run.name}, {epochs} epochs\n{as_shown(run.with_suffix('.txt'))}")
    for path in [student, student.with_suffix(".metrics.json"), *done]:
        if path.exists():
            shutil.copy(path, args.out / path.name)
    print(f"teachers' exit codes {codes}, {len(done)} of {len(teachers)} saved; student "
          f"{'saved' if student.exists() else 'not saved'}; in {args.out}")
    return 0 if student.exists() else 1


def main(argv=None):
    args = parse_args(argv)
    return pack_all(args) if args.step == "pack" else train(args)


if __name__ == "__main__":
    sys.exit(main())
