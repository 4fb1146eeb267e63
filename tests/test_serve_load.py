"""benchmarks/serve_load.py: test.py --serve under WebSocket clients and an API caller for a few seconds."""
import json

import cv2
import pytest

from emotion.sources import demo_frames
from tests.conftest import run_script

pytest.importorskip("httpx", reason="benchmarks/serve_load.py's API callers use httpx")
pytest.importorskip("psutil", reason="benchmarks/serve_load.py samples the server's memory with psutil")


@pytest.mark.e2e
def test_a_short_load_is_answered_with_faces_and_no_errors(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    writer = cv2.VideoWriter(str(videos / "demo.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for frame in demo_frames(30):
        writer.write(frame)
    writer.release()
    out = tmp_path / "load.json"
    # A server that stops answering: each client's wait ends after --answer-timeout, counted as an error (exit 1).
    result = run_script("benchmarks/serve_load.py", "--duration", 8, "--clients", 2, "--callers", 1,
                        "--sample-s", 2, "--answer-timeout", 15, "--videos", videos, "--json", out, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert figures["clips"] == {"demo.mp4": 30}  # the generated clip, not the demo fallback
    frames, calls = figures["websocket"], figures["api"]
    assert frames["served"] >= 4 and frames["with_a_face"] >= frames["served"] // 2, frames
    assert calls["served"] >= 1 and calls["with_a_face"] == calls["served"], calls  # Grace Hopper, the astronaut
    assert figures["errors_total"] == frames["errors"] == calls["errors"] == 0, figures["error_reasons"]
    assert figures["memory"]["samples"] >= 4 and figures["memory"]["max_mb"] > 50
