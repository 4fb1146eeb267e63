"""Training images per second: training.py's own loop on real images, this release against an earlier one; then
the bare training step in float32 and bfloat16, with and without XLA.

    python benchmarks/training_speed.py                        # HEAD's training.py against the working tree's
    python benchmarks/training_speed.py --base 0cce109 --as-avx2
    python benchmarks/training_speed.py --loop-only --max-per-class 600 --epochs 3
    python benchmarks/training_speed.py --bare-only --steps 100 --batch-size 128

The loop: each release runs `python training.py --train-dir TRAIN --val-dir VAL --max-per-class N --epochs E`
on the same images, in turn, and its <model>.log.csv gives each epoch's images/s (training only, validation
left out); the first epoch, which traces the step, is left out of the median. The bare step: synthetic batches
from memory, the model's training step alone.
"""
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from benchmarks.common import WORKING_TREE, benchmark_parser, release_tree

VARIANTS = (("float32", False), ("mixed_bfloat16", False), ("float32", True), ("mixed_bfloat16", True))
# What TensorFlow does by itself on a CPU without AVX-512: oneDNN off. --as-avx2 gives the earlier release this,
# and both releases oneDNN's AVX2 kernels, so that an AVX-512 machine shows what a laptop's AVX2 CPU gets.
AVX2_ONEDNN = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
AVX2_TENSORFLOW_DEFAULT = {"TF_ENABLE_ONEDNN_OPTS": "0"}


def loop_speed(tree, args, folder, environment):
    """(median images/s of the epochs after the first, every epoch's, the run's seconds) of tree's training.py."""
    log_dir = Path(tempfile.mkdtemp(dir=folder))
    command = [sys.executable, "training.py", "--train-dir", str(args.train_dir), "--val-dir", str(args.val_dir),
               "--max-per-class", str(args.max_per_class), "--epochs", str(args.epochs),
               "--model-out", str(log_dir / "model.h5")]
    started = time.perf_counter()
    run = subprocess.run(command, cwd=tree, env={**os.environ, **environment}, capture_output=True, text=True,
                         check=False)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"error: {tree}/training.py failed: {last}")
    with open(log_dir / "model.log.csv", newline="") as file:
        speeds = [float(row["images_per_s"]) for row in csv.DictReader(file)]
    return statistics.median(speeds[1:] or speeds), speeds, seconds


def compare_loops(args):
    names = [args.base, args.new]
    print(f"training.py's loop: {args.train_dir}, at most {args.max_per_class} images a class, {args.epochs} epochs, "
          f"{'oneDNN limited to AVX2, the earlier release with TensorFlow AVX2 default' if args.as_avx2 else 'as installed'}"
          f"\n\n| release | images/s (median after epoch 1) | every epoch | run | against {names[0]} |\n"
          "|---|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        baseline = None
        for index, ref in enumerate(names):
            tree = release_tree(ref, Path(folder) / f"release{index}")
            environment = {}
            if args.as_avx2:
                environment = {**AVX2_ONEDNN, **(AVX2_TENSORFLOW_DEFAULT if index == 0 else {})}
            speed, speeds, seconds = loop_speed(tree, args, folder, environment)
            baseline = baseline or speed
            print(f"| {ref} | {speed:.0f} | {', '.join(f'{s:.0f}' for s in speeds)} | {seconds:.0f} s | "
                  f"{speed / baseline:.2f}x |", flush=True)


def bare_step_speeds(args):
    from emotion.console import load_quietly
    load_quietly()
    import keras
    import numpy as np
    import tensorflow as tf

    from emotion.constants import DEFAULT_CLASS_NAMES, IMAGE_SIZE
    from emotion.model import build_little_vgg
    from emotion.train import compile_model
    from training import hardware_has_bfloat16

    random = np.random.default_rng(0)
    images = random.integers(0, 256, (args.batch_size, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.float32)
    labels = keras.utils.to_categorical(random.integers(0, len(DEFAULT_CLASS_NAMES), args.batch_size),
                                        len(DEFAULT_CLASS_NAMES))
    batches = tf.data.Dataset.from_tensors((images, labels)).repeat()
    auto = "mixed_bfloat16" if hardware_has_bfloat16() else "float32"
    print(f"\nthe bare step: --precision auto picks {auto}; batch {args.batch_size}, {args.steps} steps\n\n"
          "| precision | XLA | images/s | against float32 without XLA |\n|---|---|---:|---:|")
    baseline = None
    for precision, jit_compile in VARIANTS:
        keras.mixed_precision.set_global_policy(precision)
        model = compile_model(build_little_vgg(len(DEFAULT_CLASS_NAMES)), 2e-3, args.steps, 10, 0.1)
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=jit_compile)
        model.fit(batches.take(3), shuffle=False, verbose=0)  # tracing and compiling are start-up, not speed
        start = time.perf_counter()
        model.fit(batches.take(args.steps), shuffle=False, verbose=0)
        speed = args.steps * args.batch_size / (time.perf_counter() - start)
        baseline = baseline or speed
        print(f"| {precision} | {'on' if jit_compile else 'off'} | {speed:.0f} | {speed / baseline:.2f}x |")


def main(argv=None):
    parser = benchmark_parser(__doc__, model=False)
    parser.add_argument("--base", default="HEAD", help="the earlier release: a git commit, branch or tag")
    parser.add_argument("--new", default=WORKING_TREE,
                        help=f"the release to check: a git ref, or {WORKING_TREE} for the checkout as it is")
    parser.add_argument("--train-dir", type=Path, default=repo_root / "../shared/fer2013/train",
                        help="training images, one sub-folder per class")
    parser.add_argument("--val-dir", type=Path, default=repo_root / "../shared/fer2013/test",
                        help="validation images, one sub-folder per class")
    parser.add_argument("--max-per-class", type=int, default=1000, help="training images of each class")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each release's run")
    parser.add_argument("--as-avx2", action="store_true",
                        help="on an AVX-512 CPU, time what an AVX2-only CPU gets: oneDNN's AVX2 kernels for both "
                        "releases, and oneDNN off for the earlier one, as TensorFlow leaves it there")
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each bare-step variant")
    parser.add_argument("--batch-size", type=int, default=64, help="images per bare step")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--loop-only", action="store_true", help="time training.py's loop only")
    only.add_argument("--bare-only", action="store_true", help="time the bare step only")
    args = parser.parse_args(argv)
    if not args.bare_only and not args.train_dir.is_dir():
        raise SystemExit(f"error: no training images at {args.train_dir} (give --train-dir, or --bare-only)")
    avx512 = "avx512f" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, AVX-512: {'yes' if avx512 else 'no'}\n")
    if not args.bare_only:
        compare_loops(args)
    if not args.loop_only:
        if args.as_avx2:
            os.environ.update(AVX2_ONEDNN)  # before TensorFlow loads; the working tree's oneDNN setting applies
        import training  # noqa: F401  (sets oneDNN's default before TensorFlow loads)
        bare_step_speeds(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
