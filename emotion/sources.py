"""Where frames come from and where annotated frames go: camera, network stream, video, image, folder, or the
built-in demo.

    source = open_source("0")                      # camera 0; or "rtsp://cam/live", "clip.mp4", "photos/", "demo"
    for name, frame in source.frames(): ...        # BGR uint8 frames (name: file name, or None for streams)
    sink = open_sink("out.mp4", source)            # writes what the source's kind calls for
"""
import contextlib
import os
import queue
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2
import matplotlib
import numpy as np

from .console import native_stderr_silenced

# FFmpeg logs each failed try to reach a stream in lines of its own, around the one line this module's errors
# give; OpenCV reads this when it first uses FFmpeg (-8 is FFmpeg's AV_LOG_QUIET).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

STREAM_SCHEMES = ("rtsp", "rtmp", "http", "https", "udp")
# A camera or video file that states no frame rate is timed, and written, at this rate: what most cameras give.
DEFAULT_FPS = 30.0
# Frames of a video file decoded ahead of the one being processed (see _video_frames).
READ_AHEAD = 4
# A stream read that waits longer than this counts as a drop (FFmpeg's own limit is 30 s).
STALL_S = 5.0


class SourceError(ValueError):
    """A source or output that cannot be used; the message says what to do instead."""


@contextlib.contextmanager
def write_or_undo(path, undo):
    """A write to path that, if it fails (a full disk, mostly), calls undo to remove what it half wrote
    (what was written before stays readable), and raises a SourceError: cannot write <path>: <reason>."""
    try:
        yield
    except OSError as error:
        undo()
        raise SourceError(f"cannot write {path}: {error.strerror or error}") from error


def has_display():
    """False where a window cannot open; checked first because imshow without one aborts the process."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def is_image_file(path):
    return cv2.haveImageReader(str(path))


# A folder's members are taken by name: opening every file of a big folder to find out would be slow, and a
# broken photo.jpg must be reported as unreadable, not left out unnoticed.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".pbm", ".pgm", ".ppm",
                  ".pnm", ".jp2", ".sr", ".ras", ".avif")


def folder_files(folder, suffixes):
    """The files of a folder (not of its sub-folders) with one of suffixes, in name order; hidden files left out."""
    return [file for file in sorted(Path(folder).iterdir()) if file.is_file() and not file.name.startswith(".")
            and file.suffix.lower() in suffixes]


def folder_videos(folder):
    return folder_files(folder, VIDEO_SUFFIXES)


def folder_images(folder):
    return folder_files(folder, IMAGE_SUFFIXES)


def read_image(path):
    """BGR image, or None when the file cannot be decoded; the decoders' own complaints (libpng, libjpeg) are
    kept off the terminal, where the caller says it in one line."""
    with native_stderr_silenced():
        return cv2.imread(str(path))


def batch_folder(spec):
    """The folder that a folder run's --output or --log names (made here): the name without its suffix."""
    folder = Path(spec).with_suffix("")  # the same path when it has no suffix
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def batch_path(spec, stem, default_suffix):
    """Where one file of a folder run writes: inside batch_folder(spec), in the format of spec's suffix if it has
    one: ("annotated.avi", "clip1", ".mp4") -> annotated/clip1.avi, ("logs", "clip1", ".jsonl") -> logs/clip1.jsonl.
    None stays None."""
    if spec is None:
        return None
    return batch_folder(spec) / f"{stem}{Path(spec).suffix or default_suffix}"


def sample_face():
    """A real face photo that matplotlib ships (Grace Hopper, 600x512 BGR); no download, no dataset."""
    return cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))


def demo_frames(count=300, size=(640, 480), faces=(sample_face,), seed=0):
    """Generated BGR frames: face photos gliding and resizing over a textured background."""
    width, height = size
    random = np.random.default_rng(seed)
    background = cv2.GaussianBlur(random.integers(40, 90, (height, width, 3), dtype=np.uint8), (0, 0), 9)
    photos = [make() for make in faces]
    for index in range(count):
        frame = background.copy()
        for number, photo in enumerate(photos):
            phase = 2 * np.pi * (index / count + number / len(photos))
            face_height = int(height * (0.45 + 0.1 * np.sin(phase * 2)) / max(1, len(photos) ** 0.5))
            face = cv2.resize(photo, (face_height * photo.shape[1] // photo.shape[0], face_height))
            x = int((width - face.shape[1]) * (0.5 + 0.4 * np.sin(phase)))
            y = int((height - face.shape[0]) * (0.5 + 0.3 * np.cos(phase + number)))
            frame[y:y + face.shape[0], x:x + face.shape[1]] = face
        yield frame


def is_stream_url(spec):
    return urlsplit(str(spec)).scheme.lower() in STREAM_SCHEMES


def masked(url):
    """url with its password shown as ***: messages name the source, and terminals and logs are shared."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host}"))


class Source:
    """Frames from one input; kind is camera, stream, video, image, folder or demo."""

    def __init__(self, kind, frames, fps, size, expected_frames=None):
        self.kind, self._frames, self.fps, self.size = kind, frames, fps, size
        self.expected_frames = expected_frames
        self.stopped_early = None  # set to a message when the source ended before its end

    @property
    def live(self):
        """Cameras and streams: no end to count towards, the wall clock for time, and they can run for hours."""
        return self.kind in ("camera", "stream")

    def frames(self):
        """(name, BGR frame) pairs; name is the file name for image and folder sources, else None."""
        return self._frames(self)

    def time_s(self, index, started):
        """Seconds into the source at frame index: the wall clock since started (a time.perf_counter()) for cameras
        and streams, the frame rate's clock for files and the demo (DEFAULT_FPS where a file states none); None for
        images, which records name instead."""
        if self.live:
            return time.perf_counter() - started
        return index / self.fps if self.fps else None


def _video_frames(capture):
    """A video file's frames, every one and in order, decoded READ_AHEAD frames ahead on a thread of their own: the
    decoder runs on a second core beside the frame's other stages instead of between them."""
    def read(source):
        ahead, done, end = queue.Queue(maxsize=READ_AHEAD), threading.Event(), object()

        def put(item):
            while not done.is_set():
                with contextlib.suppress(queue.Full):
                    ahead.put(item, timeout=0.05)
                    return

        def run():
            count = 0
            try:
                while not done.is_set():
                    ok, frame = capture.read()
                    if not ok:
                        break
                    count += 1
                    put(frame)
                if source.expected_frames and count < source.expected_frames and not done.is_set():
                    source.stopped_early = f"video ended after {count} of {source.expected_frames} frames (truncated?)"
            finally:
                capture.release()
                put(end)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            while (frame := ahead.get()) is not end:
                yield None, frame
        finally:
            done.set()
            thread.join(timeout=1)
    return read


def _newest_frames(grab):
    """Runs grab(source, offer, done) on a thread of its own, so the loop never waits on a live source and always
    gets the newest frame. grab offers frames until done is set or the source ends, and releases what it opened:
    releasing a capture from another thread while a read blocks in it would crash."""
    def read(source):
        newest, done, ended = queue.Queue(maxsize=1), threading.Event(), threading.Event()

        def offer(frame):
            # Keep only the newest frame: a slow loop skips frames instead of falling behind the camera.
            with contextlib.suppress(queue.Empty):
                newest.get_nowait()
            newest.put(frame)

        def run():
            try:
                grab(source, offer, done)
            finally:
                ended.set()  # a flag, not a marker in the queue, which would push out the last frame

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            while True:
                try:
                    frame = newest.get(timeout=0.05)
                except queue.Empty:
                    if ended.is_set() and newest.empty():
                        break
                    continue
                yield None, frame
        finally:
            done.set()
            thread.join(timeout=1)
    return read


def _camera_frames(capture, retries=20, retry_wait=0.05):
    def grab(source, offer, done):
        failures = 0
        try:
            while not done.is_set():
                ok, frame = capture.read()
                if ok:
                    failures = 0
                    offer(frame)
                    continue
                failures += 1
                if failures > retries:
                    source.stopped_early = "camera stopped delivering frames"
                    break
                time.sleep(retry_wait)
        finally:
            capture.release()
    return _newest_frames(grab)


def _connect(url, reconnect_s, stop):
    """(capture, first frame) of url, tried again after a short back-off for up to reconnect_s seconds;
    (None, None) if no try delivered a frame in that time, or stop was set."""
    until, wait = time.monotonic() + reconnect_s, 0.25
    while (left := until - time.monotonic()) > 0 and not stop.is_set():
        # Without these limits FFmpeg waits 30 s on an address that never answers, or a stream that stalls.
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(1, int(left * 1000)),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(min(reconnect_s, STALL_S) * 1000)])
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if ok:
            return capture, frame
        capture.release()
        stop.wait(max(0.0, min(wait, until - time.monotonic())))
        wait = min(2 * wait, 2.0)
    return None, None


def _stream_frames(url, capture, reconnect_s):
    def grab(source, offer, done):
        nonlocal capture
        try:
            while not done.is_set():
                ok, frame = capture.read()
                if not ok:
                    capture.release()
                    capture, frame = _connect(url, reconnect_s, done)
                    if capture is None:
                        if not done.is_set():
                            source.stopped_early = (f"stream {masked(url)} dropped and did not come back within "
                                                    f"{reconnect_s:g} s")
                        return
                offer(frame)
        finally:
            if capture is not None:
                capture.release()
    return _newest_frames(grab)


def _open_stream(url, reconnect_s):
    capture, first = _connect(url, reconnect_s, threading.Event())
    if capture is None:
        raise SourceError(f"stream {masked(url)} delivered no frame within {reconnect_s:g} s: check the address, "
                          "and that the camera or server is running")
    return Source("stream", _stream_frames(url, capture, reconnect_s), capture.get(cv2.CAP_PROP_FPS) or 30.0,
                  (first.shape[1], first.shape[0]))


def open_source(spec, reconnect_s=10.0):
    """Source for a camera index ("0"), a stream URL (rtsp://, rtmp://, http://, https://, udp://), "demo", an
    image file, a folder of images, or a video file. A stream is tried for up to reconnect_s seconds, at first
    and whenever it drops; one that never delivers a frame raises SourceError."""
    spec = str(spec)
    if is_stream_url(spec):
        return _open_stream(spec, reconnect_s)
    if spec.isdigit():
        capture = cv2.VideoCapture(int(spec))
        if not capture.isOpened():
            raise SourceError(f"no camera at index {spec}: pass --source with another index, "
                              "a video or image file, a folder, or 'demo'")
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        return Source("camera", _camera_frames(capture), capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS, size)
    if spec == "demo":
        return Source("demo", lambda source: ((None, frame) for frame in demo_frames()), DEFAULT_FPS, (640, 480), expected_frames=300)
    path = Path(spec)
    if path.is_dir():
        files = folder_images(path)
        if not files:
            raise SourceError(f"folder {path} holds no image or video files")
        return Source("folder", lambda source: _image_frames(files), 0.0, None, expected_frames=len(files))
    if not path.is_file():
        raise SourceError(f"source {spec} not found: pass a camera index, a stream URL ({', '.join(STREAM_SCHEMES)}), "
                          "a video or image file, a folder, or 'demo'")
    if is_image_file(path):
        image = read_image(path)
        if image is None:
            raise SourceError(f"image {path} cannot be read")
        return Source("image", lambda source: iter([(path.name, image)]), 0.0, (image.shape[1], image.shape[0]),
                      expected_frames=1)
    # FFmpeg reports a broken file in lines of its own ("moov atom not found"); the error below says it in one.
    with native_stderr_silenced():
        capture = cv2.VideoCapture(str(path))
        ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        raise SourceError(f"{path} is neither an image nor a video that OpenCV can read")
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    return Source("video", _video_frames(capture), capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS,
                  (first.shape[1], first.shape[0]), expected_frames=expected)


def _image_frames(files):
    for file in files:
        image = read_image(file)
        if image is None:
            print(f"warning: skipped unreadable image {file}", file=sys.stderr)
            continue
        yield file.name, image


# Free space below which a video stops being written (checked every DISK_CHECK_EVERY frames, a cheap call).
DISK_RESERVE = 20 * 2 ** 20
DISK_CHECK_EVERY = 25


class VideoSink:
    """Annotated frames into a video with the source's frame rate and size."""

    def __init__(self, path, fps, size):
        self.path = Path(path)
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps or DEFAULT_FPS, size)
        if not self.writer.isOpened():
            raise SourceError(f"cannot write video {path} (try a .mp4 or .avi name)")
        self.written = 0

    def write(self, frame, name=None):
        # OpenCV's writer says nothing when a write fails, and an .mp4 whose disk filled up cannot even be
        # finished (its index comes last): so the run stops while there is still room to close the file.
        if self.written % DISK_CHECK_EVERY == 0 and shutil.disk_usage(self.path.parent).free < DISK_RESERVE:
            raise SourceError(f"cannot write {self.path}: the disk is almost full (under "
                              f"{DISK_RESERVE // 2 ** 20} MB free); the video is closed after frame {self.written}")
        self.writer.write(frame)
        self.written += 1

    def close(self):
        self.writer.release()


class ImageSink:
    """Annotated images: into one file for an image source, or a folder of same-named files for a folder."""

    def __init__(self, path, folder):
        self.path, self.folder = Path(path), folder
        if folder:
            self.path.mkdir(parents=True, exist_ok=True)

    def write(self, frame, name=None):
        target = self.path / name if self.folder else self.path
        # Encoded here and written by Python, because cv2.imwrite only says False when the disk is full.
        try:
            ok, data = cv2.imencode(target.suffix, frame)
        except cv2.error:  # OpenCV 4.14 raises, rather than returning False, for a suffix it has no encoder for
            ok = False
        if not ok:
            raise SourceError(f"cannot write image {target} (unknown image extension?)")
        with write_or_undo(target, lambda: target.unlink(missing_ok=True)), open(target, "wb") as file:
            file.write(data)

    def close(self):
        pass


def check_output(output, source_spec, overwrite=False):
    """Refuse, before any work, an output that would overwrite the source or an existing file unasked."""
    output = Path(output)
    if Path(source_spec).exists() and output.resolve() == Path(source_spec).resolve():
        raise SourceError(f"output {output} is the source itself: choose another name")
    if output.exists() and output.is_file() and not overwrite:
        raise SourceError(f"{output} already exists: add --overwrite to replace it")
    if not output.resolve().parent.is_dir():
        raise SourceError(f"output folder {output.resolve().parent} does not exist")


def open_sink(output, source):
    """The sink that suits source: a video for camera/stream/video/demo, an image or a folder for image inputs."""
    if source.kind == "folder":
        return ImageSink(output, folder=True)
    if source.kind == "image":
        if not cv2.haveImageWriter(str(output)):
            raise SourceError(f"output {output} should be an image file name (.jpg or .png) for an image source")
        return ImageSink(output, folder=False)
    return VideoSink(output, source.fps, source.size)
