"""Training images per second of the little VGG: float32 against bfloat16, with and without XLA.

    python benchmarks/training_speed.py                 # the four variants, 30 steps each
    python benchmarks/training_speed.py --steps 100 --batch-size 128

Synthetic 48x48 batches from memory, so only the model's training step is timed; training.py logs
what the real input pipeline adds (input_share).
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotion.console import load_quietly

load_quietly()

import keras
import numpy as np
import tensorflow as tf

from emotion.constants import DEFAULT_CLASS_NAMES, IMAGE_SIZE
from emotion.model import build_little_vgg
from emotion.train import compile_model
from training import hardware_has_bfloat16

VARIANTS = (("float32", False), ("mixed_bfloat16", False), ("float32", True), ("mixed_bfloat16", True))


def images_per_second(precision, jit_compile, batches, steps):
    keras.mixed_precision.set_global_policy(precision)
    model = compile_model(build_little_vgg(len(DEFAULT_CLASS_NAMES)), 2e-3, steps, 10, 0.1)
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=jit_compile)
    model.fit(batches.take(3), shuffle=False, verbose=0)  # tracing and compiling are start-up, not speed
    start = time.perf_counter()
    model.fit(batches.take(steps), shuffle=False, verbose=0)
    return steps * batches.element_spec[0].shape[0] / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per variant")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step")
    args = parser.parse_args(argv)
    random = np.random.default_rng(0)
    images = random.integers(0, 256, (args.batch_size, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.float32)
    labels = keras.utils.to_categorical(random.integers(0, len(DEFAULT_CLASS_NAMES), args.batch_size),
                                        len(DEFAULT_CLASS_NAMES))
    batches = tf.data.Dataset.from_tensors((images, labels)).repeat()

    auto = "mixed_bfloat16" if hardware_has_bfloat16() else "float32"
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, training.py --precision auto picks {auto}, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}\n"
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}; batch {args.batch_size}, {args.steps} steps\n")
    print("| precision | XLA | images/s | against float32 without XLA |\n|---|---|---:|---:|")
    baseline = None
    for precision, jit_compile in VARIANTS:
        speed = images_per_second(precision, jit_compile, batches, args.steps)
        baseline = baseline or speed
        print(f"| {precision} | {'on' if jit_compile else 'off'} | {speed:.0f} | {speed / baseline:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
