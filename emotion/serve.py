"""`test.py --serve`: the browser as camera and screen, and an HTTP API, on one ASGI server (FastAPI on uvicorn).

    app = create_app(recognizer, token=None)   # GET / (the page), WS /ws, POST /analyze, GET /health, /docs
    serve(recognizer, "127.0.0.1", 8000)       # prints the URL, runs until Ctrl-C

Every request a client can make is answered: a bad one with a 4xx and {"error": "one line"}. Images stay in
memory (nothing a client sends reaches the file system), bodies and pixels are capped before they are decoded,
and one recognizer serves every connection in turn, each WebSocket with a tracker of its own.
"""
import asyncio
import contextlib
import email.parser
import email.policy
import hmac
import io
import ipaddress
import json
import logging
import secrets
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.websockets import WebSocketDisconnect

from .draw import label_colour
from .recognizer import as_image
from .records import frame_record
from .sources import SourceError
from .window import calibrate_largest_face

logger = logging.getLogger(__name__)
PAGE_DIR = Path(__file__).resolve().parent / "web"
TOKEN_VARIABLE = "EMOTION_TOKEN"
# A phone photo is 2-8 MB; more is refused from its Content-Length, before a byte of it is read.
MAX_BODY_BYTES = 10 * 2**20
# 24 megapixels, a full-size phone photo: a small PNG can decode into gigabytes, so the header is read first.
MAX_PIXELS = 24_000_000
# Per WebSocket: a browser sends as fast as it is answered; more frames than this a second are dropped.
MAX_FPS = 30
# WebSockets at once: each costs the CPU its frames; the next is refused (429) until one closes.
MAX_CONNECTIONS = 8
IMAGE_FORMATS = {"JPEG", "PNG"}


class BadRequest(Exception):
    """A client's mistake: answered with status and reason, the server unharmed."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


def is_loopback(host):
    """True for localhost and loopback addresses: only this machine can connect there."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def parse_address(text, default_host="127.0.0.1"):
    """(host, port) of "[HOST:]PORT" ("8000", "0.0.0.0:8000", "[::1]:8000"); ValueError saying what is wrong."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--serve {text}: give [HOST:]PORT with a port from 1 to 65535, e.g. 127.0.0.1:8000")
    return host, int(port)


def choose_token(host, given=None):
    """The token clients must show: the one given (--token, or the EMOTION_TOKEN variable); else, off loopback, a
    random one of 128 bits; on loopback, None (no token needed)."""
    if given:
        return given
    return None if is_loopback(host) else secrets.token_urlsafe(16)


def decode_image(data):
    """BGR or grey uint8 array of a JPEG or PNG file's bytes; BadRequest for anything else, too many pixels
    included, found from the header before the pixels are decoded."""
    from PIL import Image, UnidentifiedImageError
    if not data:
        raise BadRequest(400, "empty body: send one JPEG or PNG image")
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            image_format, (width, height) = header.format, header.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise BadRequest(400, "not a JPEG or PNG image") from None
    if image_format not in IMAGE_FORMATS:
        raise BadRequest(415, f"{image_format} images are not taken: send JPEG or PNG")
    if width * height > MAX_PIXELS:
        raise BadRequest(413, f"image of {width}x{height} pixels: at most {MAX_PIXELS // 1_000_000} megapixels")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BadRequest(400, f"the {image_format} image cannot be decoded (cut off or damaged?)")
    try:
        return as_image(image)
    except SourceError as error:
        raise BadRequest(400, str(error)) from None


def image_of_multipart(content_type, body):
    """The bytes of a multipart/form-data body's field "file"; BadRequest where there is none. Parsed in memory by
    the standard library, so an upload never lands in a temporary file."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadRequest(400, "multipart body without parts: send the image as the field 'file'")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True) or b""
    raise BadRequest(400, "multipart body without the field 'file'")


async def read_body(request):
    """The request's body, at most MAX_BODY_BYTES: refused from its Content-Length when that says more, and cut
    off as soon as a body sent without one passes the limit."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise BadRequest(413 if length.isdigit() else 400,
                         f"body of {length} bytes: at most {MAX_BODY_BYTES // 2**20} MB" if length.isdigit()
                         else "Content-Length is not a number")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(413, f"body over {MAX_BODY_BYTES // 2**20} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def offered_token(headers, query):
    """The token a request shows: `Authorization: Bearer TOKEN`, else ?token=TOKEN (browsers cannot set headers
    on a WebSocket or a typed URL)."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return query.get("token", "")


class Recognition:
    """One recognizer shared by every request, one call at a time: LiteRT's interpreter is not thread-safe."""

    def __init__(self, recognizer):
        self.recognizer = recognizer
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def turn(self):
        with self.lock:
            yield self.recognizer

    def still(self, data):
        """[Face] of one image file's bytes, as test.py reads a photo; decoded here, off the event loop."""
        image = decode_image(data)
        with self.turn() as recognizer:
            return recognizer.detect_image(image)

    def frame(self, data, tracker):
        """[Face] of one video frame's bytes, followed by tracker."""
        image = decode_image(data)
        with self.turn() as recognizer:
            return recognizer.process_frame(image, tracker)


class Stream:
    """One WebSocket's frames: numbered as they arrive; the newest waits while one is read (an older waiting one
    is dropped), and frames over MAX_FPS a second are dropped. Each frame is answered once."""

    def __init__(self, websocket, recognition):
        self.websocket, self.recognition = websocket, recognition
        self.tracker = recognition.recognizer.tracker()
        self.received = 0
        self.waiting = None  # (number, bytes) of the newest frame not yet read
        self.arrived = asyncio.Event()
        self.recent = []  # arrival times of the frames taken in the last second
        self.faces = []
        self.started = time.perf_counter()

    async def answer(self, message):
        await self.websocket.send_json(message)

    async def receive(self):
        """Takes messages until the client leaves; frames go to self.waiting, text messages are commands."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self.take(message["bytes"])
            else:
                await self.answer(await self.command(message.get("text") or ""))

    async def take(self, data):
        number, now = self.received, time.perf_counter()
        self.received += 1
        self.recent = [moment for moment in self.recent if now - moment < 1.0]
        if len(self.recent) >= MAX_FPS:
            await self.answer({"frame": number, "dropped": f"over {MAX_FPS} frames a second"})
            return
        self.recent.append(now)
        if self.waiting is not None:
            await self.answer({"frame": self.waiting[0], "dropped": "the server is behind: a newer frame came"})
        self.waiting = (number, data)
        self.arrived.set()

    async def command(self, text):
        """The answer to a text message: {"calibrate": true} calibrates the largest face shown (key c)."""
        try:
            request = json.loads(text)
        except ValueError:
            request = None
        if not isinstance(request, dict) or request.get("calibrate") is not True:
            return {"error": 'text messages: {"calibrate": true}; frames go as binary JPEG or PNG'}

        def calibrate():
            with self.recognition.turn():  # the tracker is changed by frames read meanwhile, in another thread
                # The frames taken in the last second give the client's frame rate, in which calibration counts.
                return calibrate_largest_face(self.tracker, self.faces, max(len(self.recent), 1))
        return {"calibrate": await run_in_threadpool(calibrate)}

    async def read(self):
        """Reads the waiting frame whenever there is one, until cancelled."""
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            number, data = self.waiting
            self.waiting = None
            try:
                self.faces = await run_in_threadpool(self.recognition.frame, data, self.tracker)
            except BadRequest as error:
                await self.answer({"frame": number, "error": error.reason})
                continue
            except Exception as error:  # a bug must not leave the page waiting for an answer that never comes
                logger.exception("frame %d of a WebSocket", number)
                await self.answer({"frame": number, "error": f"the server failed on this frame: {error}"})
                continue
            await self.answer(frame_record(number, time.perf_counter() - self.started, self.faces))


def error_response(status, reason):
    return JSONResponse({"error": reason}, status_code=status)


def create_app(recognizer, token=None):
    """The FastAPI app over recognizer (an EmotionRecognizer); with a token, every route but the page's own
    scripts and styles asks for it."""
    recognition = Recognition(recognizer)
    class_names = list(recognizer.class_names)
    connections = {"open": 0}
    app = FastAPI(title="Facial emotion recognition", version="1",
                  description="Faces and their emotions in images and live frames. Errors: {\"error\": reason}.")

    def authorised(headers, query):
        return token is None or hmac.compare_digest(offered_token(headers, query).encode(), token.encode())

    @app.middleware("http")
    async def guard(request, call_next):
        if not request.url.path.startswith("/static/") and not authorised(request.headers, request.query_params):
            return error_response(401, "a token is needed: `Authorization: Bearer TOKEN` or ?token=TOKEN, as "
                                       "the server printed it")
        return await call_next(request)

    @app.exception_handler(BadRequest)
    async def bad_request(request, error):
        return error_response(error.status, error.reason)

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        return error_response(error.status_code, str(error.detail).splitlines()[0])

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error):
        return error_response(422, "; ".join(str(item.get("msg")) for item in error.errors())[:200])

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=PAGE_DIR), name="static")

    # The overlay's colours, as test.py draws them (BGR there), for the page.
    colours = {name: "#{2:02x}{1:02x}{0:02x}".format(*label_colour(name, class_names)) for name in class_names}

    @app.get("/health", summary="The server answers, with the model's classes and their colours")
    async def health():
        return {"status": "ok", "class_names": class_names, "class_colours": colours,
                "connections": connections["open"]}

    @app.post("/analyze", summary="Faces and emotions of one image, read as test.py reads a photo (18 views)",
              openapi_extra={"requestBody": {"content": {
                  "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                  "image/png": {"schema": {"type": "string", "format": "binary"}},
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "file": {"type": "string", "format": "binary"}}, "required": ["file"]}}}}})
    async def analyze(request: Request):
        content_type = request.headers.get("content-type", "")
        body = await read_body(request)
        if content_type.lower().startswith("multipart/form-data"):
            body = image_of_multipart(content_type, body)
        elif content_type and not content_type.lower().startswith(("image/", "application/octet-stream")):
            raise BadRequest(415, f"Content-Type {content_type.split(';')[0]}: send image/jpeg, image/png or "
                                  "multipart/form-data with the field 'file'")
        faces = await run_in_threadpool(recognition.still, body)
        return {"faces": [face.to_json() for face in faces], "class_names": class_names}

    @app.websocket("/ws")
    async def frames(websocket: WebSocket):
        if not authorised(websocket.headers, websocket.query_params):
            await deny(websocket, 401, "a token is needed: ?token=TOKEN, as the server printed it")
            return
        origin = websocket.headers.get("origin")
        if origin and origin.split("://", 1)[-1] != websocket.headers.get("host"):
            # Another site's page would otherwise reach the camera path with this browser's access.
            await deny(websocket, 403, f"connections from another site's page ({origin}) are refused")
            return
        if connections["open"] >= MAX_CONNECTIONS:
            await deny(websocket, 429, f"{MAX_CONNECTIONS} connections are open already: try again later")
            return
        connections["open"] += 1
        try:
            await websocket.accept()
            stream = Stream(websocket, recognition)
            reader = asyncio.create_task(stream.read())
            try:
                await stream.receive()
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        except WebSocketDisconnect:
            pass
        finally:
            connections["open"] -= 1

    return app


async def deny(websocket, status, reason):
    """Refuses a WebSocket before it opens: the client's handshake gets status and {"error": reason}."""
    await websocket.send_denial_response(error_response(status, reason))


def server(app, host, port, certfile=None, keyfile=None):
    """The uvicorn server of app: HTTPS with a certificate, WebSocket messages at most MAX_BODY_BYTES."""
    import uvicorn
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, ssl_certfile=certfile, ssl_keyfile=keyfile,
                                         ws="websockets-sansio", ws_max_size=MAX_BODY_BYTES, log_level="warning"))


def serve(recognizer, host, port, token=None, certfile=None, keyfile=None):
    """Runs the app on uvicorn until Ctrl-C, after printing the URL to open."""
    scheme = "https" if certfile else "http"
    shown_host = f"[{host}]" if ":" in host else host
    print(f"serving on {scheme}://{shown_host}:{port}/" + (f"?token={token}" if token else ""), flush=True)
    if host in ("0.0.0.0", "::"):
        print("  (open it with this machine's address in place of the host)", flush=True)
    server(create_app(recognizer, token), host, port, certfile, keyfile).run()
