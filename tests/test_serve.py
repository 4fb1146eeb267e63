"""test.py --serve: the HTTP API and the WebSocket on a real server on loopback (emotion.serve), bad requests, tokens.
The page in a real browser: tests/test_browser.py."""
import contextlib
import io
import json
import socket
import subprocess
import sys
import time

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from emotion.serve import MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_FPS, choose_token, create_app, parse_address
from emotion.sources import sample_face
from tests.conftest import ROOT, run_script, start_server, user_environment


def jpeg(image, quality=90):
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def png(image):
    return cv2.imencode(".png", image)[1].tobytes()


def framed_face():
    """Grace Hopper's photo in a 640x480 frame, as a webcam would show her."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    face = cv2.resize(sample_face(), (300, 256))
    frame[112:368, 170:470] = face
    return frame


def ws_url(url, query=""):
    return url.replace("http://", "ws://") + "/ws" + query


def answers(websocket, count, timeout=60):
    return [json.loads(websocket.recv(timeout=timeout)) for _ in range(count)]


def test_health_names_the_models_classes(served, shipped_recognizer):
    reply = httpx.get(f"{served}/health")
    assert reply.status_code == 200
    assert reply.json()["class_names"] == shipped_recognizer.class_names
    assert set(reply.json()["class_colours"]) == set(shipped_recognizer.class_names)


def test_analyze_reads_a_photo_as_test_py_does(served, shipped_recognizer):
    photo = sample_face()
    expected = [face.to_json() for face in shipped_recognizer.detect(photo)]
    assert expected, "Grace Hopper's face is found"
    raw = httpx.post(f"{served}/analyze", content=jpeg(photo, 100), headers={"Content-Type": "image/jpeg"},
                     timeout=60)
    form = httpx.post(f"{served}/analyze", files={"file": ("hopper.png", png(photo), "image/png")}, timeout=60)
    assert raw.status_code == form.status_code == 200
    assert form.json() == {"faces": expected, "class_names": shipped_recognizer.class_names}  # PNG: same pixels
    assert [face["box"] for face in raw.json()["faces"]] == [face["box"] for face in expected]
    assert raw.json()["faces"][0]["label"] == expected[0]["label"]


def test_analyze_answers_no_faces_for_a_wall(served):
    reply = httpx.post(f"{served}/analyze", content=png(np.full((200, 200, 3), 128, np.uint8)), timeout=60)
    assert reply.status_code == 200 and reply.json()["faces"] == []


def test_websocket_follows_a_face_with_the_logs_schema(served, shipped_recognizer):
    frame = jpeg(framed_face())
    with connect(ws_url(served)) as websocket:
        records = []
        for _ in range(6):  # one at a time, as the page sends them
            websocket.send(frame)
            records += answers(websocket, 1)
    assert [record["frame"] for record in records] == list(range(6))
    shown = [record for record in records if record.get("faces")]
    assert shown, "the face is confirmed and shown within six frames"
    face = shown[-1]["faces"][0]
    assert set(shown[-1]) == {"frame", "time_s", "faces"}
    assert set(face) == {"box", "label", "scores", "face_id"}
    assert face["label"] in shipped_recognizer.class_names
    x, y, w, h = face["box"]
    assert 150 < x + w / 2 < 490 and 100 < y + h / 2 < 380  # over the pasted face
    assert len({record["faces"][0]["face_id"] for record in shown}) == 1  # one face, followed


def test_each_connection_has_its_own_tracker(served):
    frame = jpeg(framed_face())
    with connect(ws_url(served)) as first:
        for _ in range(4):
            first.send(frame)
            answers(first, 1)
        with connect(ws_url(served)) as second:
            second.send(frame)
            fresh = answers(second, 1)[0]
    assert fresh["frame"] == 0  # numbered per connection


def test_newest_frame_wins_and_every_frame_is_answered_once(served):
    frame = jpeg(framed_face())
    with connect(ws_url(served)) as websocket:
        for _ in range(8):
            websocket.send(frame)  # all at once: the server falls behind
        replies = answers(websocket, 8)
    assert sorted(reply["frame"] for reply in replies) == list(range(8))
    behind = [reply for reply in replies if "newer frame" in reply.get("dropped", "")]
    assert behind, "frames waiting behind a newer one are dropped, not queued"
    last = next(reply for reply in replies if reply["frame"] == 7)
    assert "faces" in last  # the newest is never dropped


def test_frames_over_the_rate_limit_are_answered_as_dropped(served):
    tiny = jpeg(np.full((64, 64, 3), 100, np.uint8))
    with connect(ws_url(served)) as websocket:
        for _ in range(MAX_FPS + 15):
            websocket.send(tiny)
        replies = answers(websocket, MAX_FPS + 15)
    over = [reply for reply in replies if "frames a second" in reply.get("dropped", "")]
    assert len(over) >= 10
    assert sorted(reply["frame"] for reply in replies) == list(range(MAX_FPS + 15))


def test_calibration_is_asked_by_a_text_message(served):
    frame = jpeg(framed_face())
    with connect(ws_url(served)) as websocket:
        websocket.send(json.dumps({"calibrate": True}))
        before = answers(websocket, 1)[0]
        for _ in range(5):
            websocket.send(frame)
            answers(websocket, 1)
        websocket.send(json.dumps({"calibrate": True}))
        after = answers(websocket, 1)[0]
    assert "no face" in before["calibrate"]
    assert after["calibrate"].startswith("calibrating face")


def test_bad_websocket_messages_are_answered_and_the_connection_stays(served):
    with connect(ws_url(served)) as websocket:
        bad = []
        for message in (b"not an image", "hello", png(np.zeros((4, 4, 3), np.uint8))):
            websocket.send(message)
            bad += answers(websocket, 1)
        websocket.send(jpeg(framed_face()))
        good = answers(websocket, 1)[0]
    assert bad[0] == {"frame": 0, "error": "not a JPEG or PNG image"}
    assert "text messages" in bad[1]["error"]
    assert bad[2]["frame"] == 1 and "too small" in bad[2]["error"]
    assert good["frame"] == 2 and "faces" in good


def test_a_websocket_message_over_the_body_limit_closes_that_connection_only(served):
    from websockets.exceptions import ConnectionClosed
    with connect(ws_url(served)) as websocket:
        websocket.send(b"\0" * (MAX_BODY_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=30)
    assert closed.value.rcvd.code == 1009  # message too big
    assert httpx.get(f"{served}/health").status_code == 200


def test_websockets_from_another_site_or_over_the_limit_are_refused(served):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(served), origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with contextlib.ExitStack() as open_now:
        for _ in range(MAX_CONNECTIONS):
            open_now.enter_context(connect(ws_url(served)))
        with pytest.raises(InvalidStatus) as full:
            connect(ws_url(served))
        assert full.value.response.status_code == 429
        assert "connections are open" in json.loads(full.value.response.body)["error"]
    time.sleep(0.5)
    with connect(ws_url(served)) as again:  # places are given back
        again.send(jpeg(framed_face()))
        assert "faces" in answers(again, 1)[0]


def big_png(width, height):
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def other_format(name):
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(buffer, name)
    return buffer.getvalue()


def multipart(fields, boundary="b0undary"):
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="x"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for name, data in fields]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


HOPPER = jpeg(sample_face())
BAD_REQUESTS = {
    "unknown path": ("GET", "/nope", {}, 404),
    "GET on /analyze": ("GET", "/analyze", {}, 405),
    "DELETE on /analyze": ("DELETE", "/analyze", {}, 405),
    "POST on /health": ("POST", "/health", {}, 405),
    "empty body": ("POST", "/analyze", {"content": b"", "headers": {"Content-Type": "image/jpeg"}}, 400),
    "text body": ("POST", "/analyze", {"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415),
    "JSON body": ("POST", "/analyze", {"json": {"image": "x"}}, 415),
    "garbage as JPEG": ("POST", "/analyze", {"content": b"\xff\xd8garbage" * 50,
                                             "headers": {"Content-Type": "image/jpeg"}}, 400),
    "JPEG cut in half": ("POST", "/analyze", {"content": HOPPER[:len(HOPPER) // 2],
                                              "headers": {"Content-Type": "image/jpeg"}}, 400),
    "GIF": ("POST", "/analyze", {"content": other_format("GIF"), "headers": {"Content-Type": "image/gif"}}, 415),
    "BMP": ("POST", "/analyze", {"content": other_format("BMP")}, 415),
    "TIFF": ("POST", "/analyze", {"content": other_format("TIFF")}, 415),
    "too many pixels": ("POST", "/analyze", {"content": big_png(6000, 4500)}, 413),
    "a 4x4 image": ("POST", "/analyze", {"content": png(np.zeros((4, 4, 3), np.uint8))}, 400),
    "body over the limit": ("POST", "/analyze", {"content": b"\0" * (MAX_BODY_BYTES + 1)}, 413),
    "multipart without 'file'": ("POST", "/analyze", dict(zip(("content", "headers"),
                                                              multipart([("photo", HOPPER)]))), 400),
    "multipart, garbage file": ("POST", "/analyze", dict(zip(("content", "headers"),
                                                             multipart([("file", b"junk")]))), 400),
    "multipart, no boundary": ("POST", "/analyze", {"content": b"--x\r\n\r\n",
                                                    "headers": {"Content-Type": "multipart/form-data"}}, 400),
    "path out of the static folder": ("GET", "/static/..%2f..%2fserve.py", {}, 404),
    "static file that is not there": ("GET", "/static/secret.txt", {}, 404),
    "PUT on the page": ("PUT", "/", {}, 405),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_requests_get_a_4xx_and_one_json_line_and_the_server_goes_on(served, name):
    method, path, options, status = BAD_REQUESTS[name]
    reply = httpx.request(method, served + path, timeout=60, **options)
    assert reply.status_code == status
    reason = reply.json()["error"]
    assert reason and "\n" not in reason
    assert httpx.get(f"{served}/health").status_code == 200


def test_a_40_mb_body_is_refused_before_it_is_sent(served):
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(f"POST /analyze HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\n"
                       f"Content-Length: {40 * 2**20}\r\n\r\n".encode() + b"\0" * 65536)
        reply = b""
        while b'"}' not in reply:  # answered after 64 KB of the 40 MB: headers, then the JSON reason
            chunk = client.recv(4096)
            assert chunk, f"closed before the whole answer: {reply!r}"
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413")
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["error"]


def test_a_chunked_body_is_cut_off_at_the_limit(served):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 2**20 + 5):
            yield b"\0" * 2**20
    reply = httpx.post(f"{served}/analyze", content=chunks(), timeout=60)
    assert reply.status_code == 413


@pytest.fixture(scope="module")
def guarded(shipped_recognizer):
    url, running = start_server(create_app(shipped_recognizer, token="s3cret-token"))
    yield url
    running.should_exit = True


@pytest.mark.parametrize("path", ["/", "/health", "/docs", "/openapi.json"])
def test_a_token_server_refuses_every_route_without_it(guarded, path):
    assert httpx.get(guarded + path).status_code == 401
    assert httpx.get(guarded + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(guarded + path + "?token=wrong").status_code == 401
    assert httpx.get(guarded + path, headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert httpx.get(guarded + path + "?token=s3cret-token").status_code == 200


def test_a_token_server_refuses_the_api_and_the_websocket_without_it(guarded):
    refused = httpx.post(f"{guarded}/analyze", content=HOPPER)
    assert refused.status_code == 401 and "token" in refused.json()["error"]
    assert httpx.post(f"{guarded}/analyze", content=HOPPER, timeout=60,
                      headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    for query in ("", "?token=wrong"):
        with pytest.raises(InvalidStatus) as denied:
            connect(ws_url(guarded, query))
        assert denied.value.response.status_code == 401
    with connect(ws_url(guarded, "?token=s3cret-token")) as websocket:
        websocket.send(jpeg(framed_face()))
        assert "faces" in answers(websocket, 1)[0]
    assert httpx.get(f"{guarded}/static/app.js").status_code == 200  # the page's own code is no secret


def test_tokens_are_needed_off_loopback_and_random():
    assert choose_token("127.0.0.1") is None and choose_token("localhost") is None and choose_token("::1") is None
    tokens = {choose_token("0.0.0.0") for _ in range(20)}
    assert len(tokens) == 20 and all(len(token) >= 22 for token in tokens)  # 16 random bytes, base64: 128 bits
    assert choose_token("192.168.1.20", "mine") == "mine" and choose_token("127.0.0.1", "mine") == "mine"
    assert choose_token("myhost.local") is not None  # a name may resolve to any interface


@pytest.mark.parametrize("text, address", [("8000", ("127.0.0.1", 8000)), ("0.0.0.0:80", ("0.0.0.0", 80)),
                                           ("[::1]:8443", ("::1", 8443)), ("localhost:1", ("localhost", 1))])
def test_addresses(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "host:", "host:http", "0.0.0.0:0", "0.0.0.0:65536", ":-1"])
def test_bad_addresses(text):
    with pytest.raises(ValueError, match=r"\[HOST:\]PORT"):
        parse_address(text)


@pytest.mark.option("--serve", "--token", "--certfile", "--keyfile")
@pytest.mark.parametrize("args, message", [
    (["--serve", "0.0.0.0:99999"], "[HOST:]PORT"),
    (["--serve", "8000", "--certfile", "cert.pem"], "--certfile and --keyfile go together"),
    (["--serve", "8000", "--certfile", "none.pem", "--keyfile", "none.key"], "none.pem does not exist"),
    (["--token", "abc"], "go with --serve"),
])
def test_server_mistakes_end_with_one_line(live, capsys, args, message):
    assert live.main(args) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.option("--serve")
def test_serve_off_loopback_prints_a_token_url_and_asks_for_it():
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "test.py"), "--serve", f"0.0.0.0:{port}"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=user_environment({"EMOTION_TOKEN": None}))
    try:
        line = server.stdout.readline()
        assert line.startswith(f"serving on http://0.0.0.0:{port}/?token=")
        token = line.strip().rpartition("?token=")[2]
        assert len(token) >= 22
        deadline = time.monotonic() + 60
        while True:
            try:
                refused = httpx.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
        assert refused.status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/health?token={token}").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.option("--token", "--certfile", "--keyfile")
def test_serve_over_https(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                           "-days", "1", "-subj", "/CN=localhost"], capture_output=True, check=False)
    if made.returncode:
        pytest.skip("openssl cannot make a certificate here")
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "test.py"), "--serve", str(port), "--token", "tok",
                               "--certfile", cert, "--keyfile", key], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=user_environment())
    try:
        assert server.stdout.readline().strip() == f"serving on https://127.0.0.1:{port}/?token=tok"
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = httpx.get(f"https://127.0.0.1:{port}/health", verify=False,  # self-signed
                                  headers={"Authorization": "Bearer tok"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
        assert reply.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.option("--serve")
def test_a_port_in_use_ends_with_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_script("test.py", "--serve", str(taken.getsockname()[1]), timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot serve on") and result.stderr.count("\n") == 1
