"""Load on `test.py --serve` over loopback: WebSocket clients streaming real clips and API callers posting photos.

    python benchmarks/serve_load.py                                   # 10 minutes: 3 WebSockets, 1 API caller
    python benchmarks/serve_load.py --duration 20 --sample-s 2        # a quick look
    python benchmarks/serve_load.py --clients 8 --callers 2 --videos clips/ --json serve_load.json

The server runs as a user starts it, in a process of its own, and each client behaves as the page does: a
WebSocket sends its next JPEG frame only once the last one is answered. Figures per kind: answers a second,
round-trip latency, errors (non-2xx, error answers, exceptions, answers out of step) and frames the server
dropped; and the server's resident memory, sampled through the run, with its slope over the second half.
"""
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

import cv2
import numpy as np

from benchmarks.common import benchmark_parser, command_line
from emotion.sources import demo_frames, sample_face

JPEG_QUALITY = 85
STARTUP_S = 180  # the server's model load, on a busy machine included
RETRY_S = 1.0  # pause after an exception before a client tries again


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def jpeg(image):
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("cannot JPEG-encode a frame")
    return data.tobytes()


def clip_paths(videos):
    """The .mp4 files of a folder, or the one file given; [] where there are none."""
    if videos.is_file():
        return [videos]
    return sorted(videos.glob("*.mp4")) if videos.is_dir() else []


def read_clip(path, max_frames):
    """The clip's first max_frames frames, JPEG-encoded, in memory."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < max_frames and (frame := capture.read()[1]) is not None:
        frames.append(jpeg(frame))
    capture.release()
    return frames


def load_clips(videos, max_frames):
    """[(name, JPEG frames)] of the clips; the generated demo clip when there are none."""
    clips = [(path.name, frames) for path in clip_paths(videos) if (frames := read_clip(path, max_frames))]
    return clips or [("demo_frames(120)", [jpeg(frame) for frame in demo_frames(120)])]


def load_photos():
    """[(name, JPEG bytes)]: real photos that matplotlib and scikit-image ship."""
    from skimage.data import astronaut
    return [("grace_hopper", jpeg(sample_face())), ("astronaut", jpeg(np.ascontiguousarray(astronaut()[:, :, ::-1])))]


def has_avx512():
    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


class Server:
    """`python test.py --serve 127.0.0.1:PORT` in a process of its own, its output in a temporary file."""

    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        # A session of its own: a Ctrl-C in the terminal stops the load, and the server is then stopped here, after
        # the frames in flight are answered.
        self.process = subprocess.Popen([sys.executable, "test.py", "--serve", f"127.0.0.1:{port}"], cwd=repo_root,
                                        stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_ready(self, timeout):
        """Waits until /health answers 200; RuntimeError with the server's output if it exits or never does."""
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer /health within {timeout} s:\n{self.output()}")

    def stop(self):
        """Terminates the server and waits for it (killed after 15 s); (exit code, what it printed). uvicorn shuts
        down on SIGTERM and then raises the signal again, so a clean stop exits with -SIGTERM."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        output = self.output()
        self.log.close()
        return self.process.returncode, output


class Results:
    """What every client recorded, shared between the threads: (kind, sent at, latency s, outcome, faces)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows = []
        self.errors = Counter()  # reason -> times

    def add(self, kind, sent, latency, outcome, faces=0, reason=None):
        with self.lock:
            self.rows.append((kind, sent, latency, outcome, faces))
            if outcome == "error":
                self.errors[f"{kind}: {reason}"[:200]] += 1


def stream_client(url, frames, offset, stop, results, timeout, pace_fps):
    """One WebSocket sending frames in a loop, each once the last is answered and at most pace_fps a second (the
    page paces its frames); reconnects after an exception."""
    from websockets.sync.client import connect
    index, gap = offset, 1 / pace_fps if pace_fps else 0.0
    while not stop.is_set():
        try:
            with connect(url, open_timeout=timeout, max_size=None) as websocket:
                number = 0  # the server numbers a connection's frames from 0
                sent = -gap
                while not stop.wait(max(0.0, sent + gap - time.perf_counter())):
                    sent = time.perf_counter()
                    websocket.send(frames[index % len(frames)])
                    try:
                        answer = json.loads(websocket.recv(timeout=timeout))
                    except TimeoutError:
                        results.add("ws", sent, None, "error", reason=f"no answer within {timeout} s")
                        break  # a late answer would put this connection out of step: a new one
                    latency = time.perf_counter() - sent
                    index += 1
                    if answer.get("frame") != number:
                        results.add("ws", sent, latency, "error",
                                    reason=f"answer out of step: frame {answer.get('frame')} for {number}")
                        break
                    number += 1
                    if "faces" in answer:
                        results.add("ws", sent, latency, "served", len(answer["faces"]))
                    elif "dropped" in answer:
                        results.add("ws", sent, latency, "dropped")
                    else:
                        results.add("ws", sent, latency, "error", reason=answer.get("error", str(answer)[:100]))
        except Exception as error:  # noqa: BLE001 - every failure is a figure of the run
            results.add("ws", time.perf_counter(), None, "error", reason=f"{type(error).__name__}: {error}")
            stop.wait(RETRY_S)


def api_caller(url, photos, offset, stop, results, timeout):
    """POSTs the photos to /analyze in a loop, one at a time."""
    import httpx
    index = offset
    with httpx.Client(base_url=url, timeout=timeout) as client:
        while not stop.is_set():
            _, data = photos[index % len(photos)]
            index += 1
            sent = time.perf_counter()
            try:
                response = client.post("/analyze", content=data, headers={"Content-Type": "image/jpeg"})
                latency = time.perf_counter() - sent
                if response.is_success:
                    results.add("api", sent, latency, "served", len(response.json()["faces"]))
                else:
                    results.add("api", sent, latency, "error", reason=f"{response.status_code} {response.text[:100]}")
            except Exception as error:  # noqa: BLE001
                results.add("api", sent, None, "error", reason=f"{type(error).__name__}: {error}")
                stop.wait(RETRY_S)


def percentile_ms(latencies, q):
    return round(float(np.percentile(latencies, q)) * 1000, 1) if latencies else None


def kind_figures(rows, seconds):
    served = [row for row in rows if row[3] == "served"]
    latencies = [row[2] for row in served]
    return {"count": len(rows), "per_second": round(len(rows) / seconds, 2), "served": len(served),
            "with_a_face": sum(1 for row in served if row[4]), "p50_ms": percentile_ms(latencies, 50),
            "p95_ms": percentile_ms(latencies, 95), "errors": sum(1 for row in rows if row[3] == "error"),
            "dropped": sum(1 for row in rows if row[3] == "dropped")}


def memory_figures(samples):
    """First, last and max resident MB, and the least-squares slope in MB a minute over the second half."""
    if not samples:
        return {"samples": 0}
    mb = [value for _, value in samples]
    half = [(t, value) for t, value in samples if t >= samples[-1][0] / 2]
    slope = None
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        slope = round(float(np.polyfit([t / 60 for t, _ in half], [value for _, value in half], 1)[0]), 2)
    return {"samples": len(samples), "first_mb": round(mb[0], 1), "last_mb": round(mb[-1], 1),
            "max_mb": round(max(mb), 1), "slope_mb_per_min_second_half": slope, "second_half_samples": len(half),
            "series": [[round(t, 1), round(value, 1)] for t, value in samples]}


def markdown(figures):
    def cell(value, unit=""):
        return "–" if value is None else f"{value}{unit}"
    out = ["| kind | count | per second | p50 ms | p95 ms | errors | dropped | answered with a face |",
           "|---|" + "---:|" * 7]
    for name, key in (("WebSocket frames", "websocket"), ("API calls", "api")):
        row = figures[key]
        dropped = row["dropped"] if key == "websocket" else None
        out.append(f"| {name} | {row['count']} | {row['per_second']} | {cell(row['p50_ms'])} | {cell(row['p95_ms'])} "
                   f"| {row['errors']} | {cell(dropped)} | {row['with_a_face']} of {row['served']} |")
    memory = figures["memory"]
    if memory["samples"]:
        slope = memory["slope_mb_per_min_second_half"]
        out += ["", "| server memory | first | last | max | slope, second half |", "|---|---:|---:|---:|---:|",
                (f"| resident, {memory['samples']} samples | {memory['first_mb']} MB | {memory['last_mb']} MB "
                 f"| {memory['max_mb']} MB | {cell(slope if slope is None else f'{slope:+.2f}', ' MB/min')} |")]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, model=False)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load")
    parser.add_argument("--clients", type=int, default=3,
                        help="WebSocket clients, each streaming a clip (the server takes at most 8)")
    parser.add_argument("--pace-fps", type=float, default=30,
                        help="frames a second a client sends at most, as the page does (the server drops more) "
                             "(0: no pause)")
    parser.add_argument("--callers", type=int, default=1, help="API callers, each POSTing photos to /analyze")
    parser.add_argument("--videos", type=Path, default=repo_root / "../shared/real/videos",
                        help="a folder of .mp4 clips (or one file), one per client in turn; none: demo_frames(120)")
    parser.add_argument("--max-frames", type=int, default=900, help="frames kept of each clip")
    parser.add_argument("--sample-s", type=float, default=10, help="seconds between samples of the server's memory")
    parser.add_argument("--answer-timeout", type=float, default=60,
                        help="seconds a client waits for an answer before counting an error")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.sample_s <= 0 or args.answer_timeout <= 0 or args.max_frames < 1:
        parser.error("--duration, --sample-s, --answer-timeout and --max-frames must be positive")
    if args.pace_fps < 0:
        parser.error("--pace-fps must be 0 (no pause) or more")
    if args.clients < 0 or args.callers < 0 or args.clients + args.callers == 0:
        parser.error("--clients and --callers: none negative, at least one client or caller")
    import httpx
    import psutil

    command = command_line(argv)
    clips, photos = load_clips(args.videos, args.max_frames), load_photos()
    port = free_port()
    server = Server(port)
    results, stop, samples, threads = Results(), threading.Event(), [], []
    interrupted = False
    try:
        server.wait_ready(STARTUP_S)
        # One photo before the clock starts: the model's first call is not part of the load.
        httpx.post(server.url + "/analyze", content=photos[0][1], headers={"Content-Type": "image/jpeg"},
                   timeout=args.answer_timeout).raise_for_status()
        memory = psutil.Process(server.process.pid)
        ws_url = f"ws://127.0.0.1:{port}/ws"
        for number in range(args.clients):
            _, frames = clips[number % len(clips)]
            offset = (number // len(clips)) * len(frames) // max(1, -(-args.clients // len(clips)))
            threads.append(threading.Thread(target=stream_client, daemon=True, name=f"ws-{number}",
                                            args=(ws_url, frames, offset, stop, results, args.answer_timeout,
                                                  args.pace_fps)))
        for number in range(args.callers):
            threads.append(threading.Thread(target=api_caller, daemon=True, name=f"api-{number}",
                                            args=(server.url, photos, number, stop, results, args.answer_timeout)))
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        try:
            while True:
                now = time.perf_counter() - start
                if server.process.poll() is not None:
                    results.add("server", time.perf_counter(), None, "error",
                                reason=f"exited with {server.process.returncode} during the run")
                    break
                samples.append((now, memory.memory_info().rss / 2**20))
                if now >= args.duration:
                    break
                time.sleep(max(0.0, min(args.sample_s * len(samples), args.duration) - now))
        except KeyboardInterrupt:
            interrupted = True
        except psutil.Error as error:
            results.add("server", time.perf_counter(), None, "error", reason=f"memory not readable: {error}")
        stopped = time.perf_counter()
        stop.set()
        for thread in threads:
            thread.join(args.answer_timeout + 10)
            if thread.is_alive():
                results.add("client", stopped, None, "error", reason=f"{thread.name} did not finish")
    except (RuntimeError, httpx.HTTPError, psutil.Error) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    finally:
        stop.set()
        exit_code, server_output = server.stop()
    seconds = stopped - start
    with results.lock:
        # Frames and calls sent after the clock stopped are left out; errors never are.
        rows = [row for row in results.rows if row[1] < stopped or row[3] == "error"]
        errors = dict(results.errors)
    figures = {
        "command": command, "machine": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "avx512f": has_avx512(), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "duration_s": round(seconds, 1), "interrupted": interrupted, "clients": args.clients,
        "pace_fps": args.pace_fps,
        "callers": args.callers, "clips": {name: len(frames) for name, frames in clips},
        "photos": [name for name, _ in photos], "server_exit_code": exit_code,
        "websocket": kind_figures([row for row in rows if row[0] == "ws"], seconds),
        "api": kind_figures([row for row in rows if row[0] == "api"], seconds),
        "other_errors": sum(1 for row in rows if row[0] not in ("ws", "api") and row[3] == "error"),
        "error_reasons": errors, "memory": memory_figures(samples),
        "server_output": server_output.strip().splitlines()[-20:]}
    if exit_code not in (0, -signal.SIGTERM):
        errors[f"server: exited with {exit_code} when stopped"] = 1
    if any(word in server_output for word in ("Traceback", "Exception", "ERROR")):
        errors["server: printed an error (see server_output)"] = 1
    figures["error_reasons"], figures["errors_total"] = errors, sum(errors.values())
    clip_text = ", ".join(f"{name} ({count} frames)" for name, count in figures["clips"].items())
    print(f"machine: {figures['machine']}, {figures['processor']}, {figures['cpus']} CPUs, "
          f"avx512f {'yes' if figures['avx512f'] else 'no'}, load average {figures['load_average_1min_at_end']} "
          f"at the end\ncommand: {command}\n"
          f"{args.clients} WebSocket client(s) looping {clip_text}, JPEG quality {JPEG_QUALITY}, each frame sent once "
          f"the last is answered, at most {args.pace_fps:g} a second; {args.callers} API caller(s) POSTing "
          f"{', '.join(figures['photos'])}; {figures['duration_s']} s{' (interrupted)' if interrupted else ''}\n"
          f"count: every answer, dropped frames included; latency: of the frames and calls answered with a result; "
          f"errors: non-2xx, error answers, exceptions, no answer within {args.answer_timeout:g} s; "
          f"the server stopped with exit code {exit_code}\n")
    print(markdown(figures))
    if errors:
        print("\nerrors:\n" + "\n".join(f"  {count} x {reason}" for reason, count in errors.items()))
        print("server output, last lines:\n" + "\n".join(f"  {line}" for line in figures["server_output"]))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
