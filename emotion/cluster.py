"""A folder of videos on a Dask cluster: `test.py --source FOLDER --cluster tcp://HOST:PORT --log LOGS`.

Each video is one task, and the folder's images go in chunks of IMAGES_PER_TASK; each worker thread builds its
recognizer at its first task and keeps it. A task sends back each frame's faces, and the client writes every log
from them with FrameLog, as a --jobs run does: the logs are the same byte for byte, on the client's disk. Annotated
videos and images, too big to send back, are written by the workers into --output: that folder, like the archive
itself, must be at the same path on every worker (a shared disk).

A video is done once its log is in place and the archive report (LOGS.report.csv beside the log folder) has its
row. A log is written under a hidden name and renamed only after its row is added, so a run cut off anywhere
leaves no log that looks whole, and the same command again skips the videos done and redoes the rest.

    code = run_archive(args, folder)   # args: test.py's options; 0, or 2 when a file failed
"""
import csv
import io
import os
import sys
import threading
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from .console import load_quietly
from .constants import DEFAULT_CLASS_NAMES, DEFAULT_MODEL_PATH
from .detect import CascadeError, DetectorError, default_cascade_path
from .draw import draw_overlay
from .model import ModelFileError, read_model_class_names
from .recognizer import EmotionRecognizer
from .records import (
    FrameLog,
    face_counts,
    frame_record,
    plot_archive,
    plot_shares,
    plot_timeline,
    summarise,
    summarise_images,
)
from .sources import (
    ImageSink,
    SourceError,
    VideoSink,
    batch_folder,
    batch_path,
    check_output,
    folder_images,
    folder_videos,
    open_source,
    read_image,
)

# Enough images that a task's own cost (milliseconds of scheduling and transfer) is small beside its work.
IMAGES_PER_TASK = 32
CONNECT_TIMEOUT_S = 5
# For a task that raised something unforeseen (a shared disk that hiccupped). A worker that dies is the scheduler's
# business (its tasks go to other workers, distributed.scheduler.allowed-failures times), and a file that cannot
# be used fails at once, as a Failure: trying it again would only say the same.
RETRIES = 1


class ClusterError(ValueError):
    """A cluster that cannot run the archive (no scheduler at the address, distributed not installed)."""


@dataclass(frozen=True)
class RecognizerSettings:
    """test.py's options that build a recognizer, as the key of each worker's cache. model and cascade are None for
    the shipped files, which each worker takes from its own copy of the project, wherever that is; other paths are
    absolute, as the workers do not share the client's working folder."""
    model: str | None
    cascade: str | None
    min_face: int
    detector: str
    verify: bool
    scan_every: int
    max_change: float
    flip_average: bool
    runtime: str
    calibrate: tuple  # photos of the person's neutral face

    @classmethod
    def from_options(cls, args):
        def unless_default(path, default):
            return None if Path(path).resolve() == Path(default).resolve() else str(Path(path).resolve())
        return cls(unless_default(args.model, DEFAULT_MODEL_PATH), unless_default(args.cascade, default_cascade_path()),
                   args.min_face, args.detector, not args.no_verify, args.scan_every, args.max_change, not args.no_flip_average,
                   args.runtime, tuple(str(Path(photo).resolve()) for photo in args.calibrate or ()))


# A recognizer per worker thread: LiteRT's interpreter is not safe to share between threads.
_per_thread = threading.local()


def cached_recognizer(settings):
    """This worker thread's recognizer for settings: built at its first task, and again for a model file that
    changed since (retrained in place)."""
    model = Path(settings.model or DEFAULT_MODEL_PATH)
    stamp = (model.stat().st_mtime_ns, model.stat().st_size) if model.is_file() else None
    recognizers = _per_thread.__dict__.setdefault("recognizers", {})
    if settings not in recognizers or recognizers[settings][0] != stamp:
        recognizer = EmotionRecognizer(model, settings.cascade, min_face=settings.min_face, detector=settings.detector,
                                       verify=settings.verify, scan_every=settings.scan_every,
                                       max_change=settings.max_change,
                                       flip_average=settings.flip_average, runtime=settings.runtime)
        if settings.calibrate:
            recognizer.calibrate(list(settings.calibrate))
        recognizers[settings] = stamp, recognizer
    return recognizers[settings][1]


@dataclass
class VideoFaces:
    """A video task's answer: each frame's faces ([Face] a frame), the frame rate that times them, and why the
    video ended before its end (a truncated file), as Source.stopped_early says it."""
    class_names: list
    fps: float
    frames: list
    stopped_early: str | None


@dataclass
class ImageFaces:
    """An images task's answer: each image's faces, or None for an image that cannot be read, in the chunk's order."""
    class_names: list
    images: list


@dataclass
class Failure:
    """A task's answer for a file that cannot be done (a broken video, a missing model): the line test.py says."""
    message: str


# What stops one file's run in test.py too. Anything else is unforeseen, and retried.
USER_ERRORS = (SourceError, ModelFileError, CascadeError, DetectorError, ValueError)


def seen_here(path):
    """path, or a SourceError where this worker does not see it."""
    if not Path(path).exists():
        from distributed import get_worker
        raise SourceError(f"{path} not found on worker {get_worker().address}: the archive and --output must be at "
                          "the same path on every worker (a shared disk)")
    return path


def hidden_partial(path):
    """Where a file is written until it is whole: hidden, so that folder runs pass it by, and with its suffix, which
    picks the format of a log or a video."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def analyze_video(video, settings, max_frames, smooth, bars, output):
    """VideoFaces of one video, its annotated copy written to output (None: none) and renamed there once whole;
    a Failure for a video, model or output that cannot be used. Runs on a worker."""
    load_quietly(with_tensorflow=False)
    try:
        source = open_source(seen_here(video))
        recognizer = cached_recognizer(settings)
        sink = None
        if output:
            seen_here(Path(output).parent)
            sink = VideoSink(hidden_partial(output), source.fps, source.size)
        frames = []
        try:
            for frame in recognizer.frames(source, recognizer.tracker(smooth=smooth), max_frames):
                frames.append(frame.faces)
                if sink:  # no frame rate drawn, unlike test.py's: a worker's speed says nothing about the video
                    sink.write(draw_overlay(frame.image, frame.faces, recognizer.class_names, bars=bars))
        finally:
            if sink:
                sink.close()
        if sink:
            os.replace(hidden_partial(output), output)
    except USER_ERRORS as error:
        return Failure(str(error))
    return VideoFaces(recognizer.class_names, source.fps, frames, source.stopped_early)


def analyze_images(images, settings, bars, output):
    """ImageFaces of a chunk of a folder's images, each annotated into the folder output (None: none); a Failure
    where the model or an output cannot be used. Runs on a worker."""
    load_quietly(with_tensorflow=False)
    try:
        recognizer = cached_recognizer(settings)
        sink = ImageSink(seen_here(output), folder=True) if output else None
        answers = []
        for path in images:
            image = read_image(seen_here(path))
            answers.append(None if image is None else recognizer.process(image))
            if sink and image is not None:
                sink.write(draw_overlay(image, answers[-1], recognizer.class_names, bars=bars), Path(path).name)
    except USER_ERRORS as error:
        return Failure(str(error))
    return ImageFaces(recognizer.class_names, answers)


class ArchiveReport:
    """The CSV of a folder's videos, one row per video done: frames, distinct faces, face observations, each
    emotion's share of those, and the video's path; and its picture. A row is added as soon as its video is done,
    so that the file tells a run started again which videos are done; at the end it is rewritten in name order."""

    def __init__(self, log_spec, class_names):
        folder = batch_folder(log_spec)
        self.path = folder.with_name(f"{folder.name}.report.csv")
        self.picture = folder.with_name(f"{folder.name}.report.png")
        self.class_names = list(class_names)
        self.fields = ["video", "frames", "faces", "face_observations", *self.class_names, "source"]
        self.rows = self.whole_rows()

    def whole_rows(self):
        """{video name: row} of the rows already in the file, where it has this model's columns."""
        if not self.path.is_file():
            return {}
        text = self.path.read_text()
        reader = csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1]))  # a row cut off has no line end yet
        return {row["video"]: row for row in reader} if reader.fieldnames == self.fields else {}

    def keep(self, videos):
        """This run's report starts with the rows of these videos only."""
        self.rows = {video.name: self.rows[video.name] for video in videos}
        self.write(self.rows.values())

    def add(self, video, records):
        labels, faces = face_counts(records)
        observations = sum(labels.values())
        row = {"video": video.name, "frames": len(records), "faces": faces, "face_observations": observations,
               **{name: f"{labels[name] / max(observations, 1):.4f}" for name in self.class_names},
               "source": str(video.resolve())}
        with open(self.path, "a", newline="") as file:
            csv.DictWriter(file, self.fields).writerow(row)
        self.rows[video.name] = row

    def finish(self, videos):
        """The report in the folder's order, and its picture."""
        rows = [self.rows[video.name] for video in videos if video.name in self.rows]
        self.write(rows)
        plot_archive([(row["video"], int(row["face_observations"]), [float(row[name]) for name in self.class_names])
                      for row in rows], self.class_names, self.picture)

    def write(self, rows):
        partial = hidden_partial(self.path)
        with open(partial, "w", newline="") as file:
            writer = csv.DictWriter(file, self.fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, self.path)


def connect(address):
    """A distributed Client of the scheduler at address, or a ClusterError within CONNECT_TIMEOUT_S seconds."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError("--cluster needs Dask distributed: pip install -r requirements-cluster.txt") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except OSError:
        raise ClusterError(f"no Dask scheduler answered at {address} within {CONNECT_TIMEOUT_S} s: start one "
                           "(dask scheduler), or check the address") from None
    except ValueError as error:
        raise ClusterError(f"--cluster {address}: {error}; give the scheduler's address as tcp://HOST:PORT") from None


def say(text, file=None):
    """A line that leaves the progress bar whole, on file or on sys.stdout as it is now (not as it was at import:
    a caller may have redirected it since)."""
    from tqdm import tqdm
    tqdm.write(str(text), file=file or sys.stdout)


def answer_of(future, name):
    """The task's answer; a Failure for what it raised after its retries, or for KilledWorker."""
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - a task's exception comes back as whatever type it raised
        return Failure(" ".join(f"{name}: {type(error).__name__}: {error}".split()))


def write_video_log(answer, video, log, report):
    """The video's log, its timeline picture and its report row from its task's answer, the first two as test.py's
    run writes them; returns the records."""
    partial, records = hidden_partial(log), []
    with FrameLog(partial, answer.class_names) as frame_log:
        for index, faces in enumerate(answer.frames):
            time_s = index / answer.fps  # a video's Source has a frame rate (DEFAULT_FPS where the file has none)
            frame_log.write(index, time_s, faces)
            records.append(frame_record(index, time_s, faces))
    if records:
        plot_timeline(records, answer.class_names, log.with_suffix(".png"))
    report.add(video, records)
    os.replace(partial, log)  # last: a log in place means its row is in the report
    return records


def write_images_log(answers, images, log):
    """The images' log and their shares' picture from the chunks' answers, numbered as test.py's run numbers them
    (an unreadable image takes no number); returns the records."""
    partial, records = hidden_partial(log), []
    class_names = answers[0].class_names
    with FrameLog(partial, class_names, images=True) as frame_log:
        for path, faces in zip(images, chain.from_iterable(answer.images for answer in answers), strict=True):
            if faces is None:
                say(f"warning: skipped unreadable image {path}", sys.stderr)
                continue
            frame_log.write(len(records), None, faces, file=path.name)
            records.append(frame_record(len(records), None, faces, file=path.name))
    if records:
        plot_shares(records, class_names, log.with_suffix(".png"))
    os.replace(partial, log)
    return records


def videos_to_do(videos, logs, report, overwrite):
    """(videos done before, videos to do, videos refused): done is a log in place with its report row; a log
    without its row is another run's, refused unless overwrite, as test.py refuses an existing log."""
    done = [] if overwrite else [video for video in videos if logs[video].is_file() and video.name in report.rows]
    todo, refused = [], []
    for video in videos:
        if video not in done:
            try:
                check_output(logs[video], video, overwrite)
                todo.append(video)
            except SourceError as error:
                say(f"error: {error}", sys.stderr)
                refused.append(video)
    return done, todo, refused


def finish_videos(futures, logs, report):
    """Each video's log, summary and report row, as its task ends; returns the names of the videos that failed."""
    from distributed import as_completed
    from tqdm import tqdm
    failed, frames = [], 0
    with tqdm(total=len(futures), unit="video") as progress:
        for future in as_completed(futures):
            video = futures[future]
            answer = answer_of(future, video.name)
            progress.update()
            try:
                if isinstance(answer, Failure):
                    raise SourceError(answer.message)
                records = write_video_log(answer, video, logs[video], report)
            except (SourceError, OSError) as error:
                say(f"error: {error}", sys.stderr)
                failed.append(video.name)
                continue
            frames += len(records)
            progress.set_postfix(frames=frames)
            if answer.stopped_early:
                say(f"warning: {video.name}: {answer.stopped_early}", sys.stderr)
            if records:
                say(f"{video.name}: {summarise(records, answer.class_names)}")
                say(f"emotion over time: {logs[video].with_suffix('.png')}")
    return failed


def finish_images(futures, images, log, heading):
    """The images' log and summary once every chunk is done; returns False where one failed."""
    answers = [answer_of(future, heading) for future in futures]
    try:
        for answer in answers:
            if isinstance(answer, Failure):
                raise SourceError(answer.message)
        records = write_images_log(answers, images, log)
    except (SourceError, OSError) as error:
        say(f"error: {error}", sys.stderr)
        return False
    if records:
        say(f"{heading}: {summarise_images(records, answers[0].class_names)}")
        say(f"emotions of the images: {log.with_suffix('.png')}")
    return True


def run_archive(args, folder):
    """test.py's folder run (each video, then the images) on the workers of the Dask scheduler at args.cluster,
    skipping the videos done before; returns 0, or 2 when a file failed (each failure said in one line). Raises
    ClusterError where there is no scheduler to run on, and ModelFileError for a model the client cannot read."""
    from dask.base import tokenize
    settings = RecognizerSettings.from_options(args)
    report_columns = read_model_class_names(args.model) or DEFAULT_CLASS_NAMES  # the model's, without loading it
    with connect(args.cluster) as client:
        report = ArchiveReport(args.log, report_columns)
        videos, images = folder_videos(folder), folder_images(folder)
        logs = {video: batch_path(args.log, video.stem, ".jsonl") for video in videos}
        done, todo, refused = videos_to_do(videos, logs, report, args.overwrite)
        report.keep(done)
        video_futures = {}
        for video in todo:
            output = batch_path(args.output, video.stem, ".mp4")
            task = (str(video.resolve()), settings, args.max_frames, not args.no_smoothing, args.scores,
                    output and str(output.resolve()))
            video_futures[client.submit(analyze_video, *task, key=f"{video.name}-{tokenize(*task)}",
                                        retries=RETRIES)] = video
        images_log = batch_path(args.log, "images", ".jsonl")
        # The images are one run, done when their log is in place (it is written whole, once every chunk is).
        images_todo = images if args.overwrite or not images_log.is_file() else []
        if done or images and not images_todo:
            say(f"{folder}: skipped, done before: {len(done)} video(s)" + (", the images" * bool(images and not images_todo))
                + " (--overwrite does them again)")
        output = str(batch_folder(args.output).resolve()) if args.output and images_todo else None
        image_futures = []
        for start in range(0, len(images_todo), IMAGES_PER_TASK):
            task = ([str(path.resolve()) for path in images_todo[start:start + IMAGES_PER_TASK]], settings,
                    args.scores, output)
            image_futures.append(client.submit(analyze_images, *task, key=f"images-{start}-{tokenize(*task)}",
                                               retries=RETRIES))
        failed = [video.name for video in refused] + finish_videos(video_futures, logs, report)
        heading = f"images in {folder}"
        if images_todo and not finish_images(image_futures, images_todo, images_log, heading):
            failed.append(heading)
    try:
        report.finish(videos)
    except (SourceError, OSError) as error:
        say(f"error: {error}", sys.stderr)
        return 2
    say(f"archive report: {report.path}, {report.picture}")
    runs = len(videos) + bool(images)
    say(f"{folder}: {runs - len(failed)} of {runs} run(s) done" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 2 if failed else 0
