"""How long `python test.py` takes on one photo, start to finish: what a user waits for before the first answer.

    python benchmarks/startup.py
    python benchmarks/startup.py --repeats 5 --model /path/to/other.h5

Each run is a new process, as a user starts it: `test.py --source <photo> --no-display` on scikit-image's
astronaut photo (one face), once with the default LiteRT runtime and once with `--runtime keras`, which must
load the Keras model and TensorFlow. A first, untimed run makes the LiteRT cache where the model has none. Also
timed: a first run on a copy of the model without its LiteRT file, which must load both to convert it (as every
new clone did before the shipped model's file was committed), and `import tensorflow` alone, for scale.
"""
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
from skimage import data

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from benchmarks.common import benchmark_parser
from emotion.classify import litert_cache
from emotion.constants import DEFAULT_MODEL_PATH


def seconds(command, repeats, before_each=lambda: None):
    """Median wall time of command (a list) over repeats runs, before_each() run untimed before each; exits with
    its stderr when it fails."""
    times = []
    for _ in range(repeats):
        before_each()
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"error: {shlex.join(command)} failed:\n{done.stderr.strip()}")
    return statistics.median(times)


def main():
    parser = benchmark_parser(__doc__, model=False)
    parser.add_argument("--model", default=str(DEFAULT_MODEL_PATH), help="model file for test.py")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each command (the median is shown)")
    args = parser.parse_args()
    if args.repeats < 1:
        raise SystemExit("error: --repeats must be at least 1")

    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "astronaut.png"
        cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
        test_py = [sys.executable, str(repo_root / "test.py"), "--source", str(photo), "--no-display", "--model"]
        uncached = Path(folder) / "copy" / Path(args.model).name
        uncached.parent.mkdir()
        shutil.copy(args.model, uncached)
        seconds([*test_py, args.model], 1)  # makes the LiteRT cache where the model has none
        results = {
            "test.py, LiteRT (default)": seconds([*test_py, args.model], args.repeats),
            "test.py, first run, no LiteRT": seconds([*test_py, str(uncached)], args.repeats,
                                                     before_each=lambda: litert_cache(uncached).unlink(missing_ok=True)),
            "test.py --runtime keras": seconds([*test_py, args.model, "--runtime", "keras"], args.repeats),
            "python -c 'import tensorflow'": seconds([sys.executable, "-c", "import tensorflow"], args.repeats),
        }
    print(f"command: {shlex.join([sys.executable, *sys.argv])}\nmodel: {args.model}\n"
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; median of {args.repeats} runs\n")
    baseline = results["test.py --runtime keras"]
    for name, value in results.items():
        print(f"{name:<32} {value:6.2f} s  ({value / baseline:.2f}x of --runtime keras)")


if __name__ == "__main__":
    main()
