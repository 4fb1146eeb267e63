"""Live facial emotion recognition: faces boxed and labelled on a webcam (or stream, video, image, folder, demo).

    python test.py                                  # webcam 0; q or Esc quits
    python test.py --source demo                    # built-in clip, no camera needed
    python test.py --source rtsp://user:password@192.168.1.20/stream1   # an IP camera
    python test.py --source clip.mp4 --no-display --output annotated.mp4 --log emotions.csv
"""
import argparse
import sys
import time
from functools import partial
from pathlib import Path

from emotion.console import command_parser, load_quietly
from emotion.constants import DEFAULT_MODEL_PATH, DETECTORS, MAX_CHANGE, MIN_FACE, SCAN_EVERY
from emotion.detect import default_cascade_path

# A folder's runs each log into the --log folder; a file's suffix picks its format (emotion.records.FrameLog).
LOG_SUFFIXES = ("", ".jsonl", ".json", ".csv")


def parse_args(argv=None):
    # Each group and help line is the README's ("Options of `test.py`"), word for word; a test holds them together.
    parser = command_parser(__doc__, [("input", add_input_options), ("output", add_output_options),
                                      ("model and scores", add_scoring_options),
                                      ("finding faces", add_face_options), ("web server", add_server_options)])
    return parser.parse_args(argv)


def add_input_options(group):
    group.add_argument("--source", default="0",
                       help="camera index, stream URL (rtsp://, rtmp://, http://, https://, udp://; run like a "
                       "camera), video file, image file, folder of images and videos, or demo")
    group.add_argument("--reconnect-s", type=float, default=10.0,
                       help="streams: how many seconds to keep trying to open one, or to reopen one that dropped, "
                       "before the run ends")
    group.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    group.add_argument("--jobs", type=int, default=1,
                       help="folders holding videos: how many files to process at once, each in a process of its "
                       "own (results are the same whatever the number; needs --no-display above 1)")
    group.add_argument("--cluster", default=None, metavar="ADDRESS",
                       help="folders holding videos: run each video, and the images in chunks, on the workers of the "
                       "Dask scheduler at this address (tcp://HOST:PORT); needs --log, and the same command again "
                       "skips the videos done")


def add_output_options(group):
    group.add_argument("--no-display", action="store_true", help="open no window (servers, CI)")
    group.add_argument("--scores", action="store_true",
                       help="every class's score as a bar in its colour beside each face, for a glance at what "
                       "else a face might be (key b switches them in the window)")
    group.add_argument("--output", default=None,
                       help="annotated video (same frame rate and size as the source), image, or folder of images")
    group.add_argument("--log", default=None,
                       help="per-frame results: .jsonl (JSON Lines) or .csv (another suffix is refused; a folder "
                       "for a folder of videos)")
    group.add_argument("--overwrite", action="store_true",
                       help="replace an existing --output/--log file (otherwise refused)")


def add_scoring_options(group):
    group.add_argument("--model", default=str(DEFAULT_MODEL_PATH),
                       help="the trained model; its labels come from the file")
    group.add_argument("--runtime", choices=("litert", "keras"), default="litert",
                       help="litert: the model with 8-bit weights, derived from the .h5 at first use and cached "
                       "beside it as a hidden .tflite named after the .h5's hash (the shipped model's is "
                       "committed); keras: the .h5's float32 weights")
    group.add_argument("--no-smoothing", action="store_true",
                       help="show each frame's raw scores (smoothing is on for video and webcam, never for "
                       "images); new faces are still confirmed")
    group.add_argument("--no-flip-average", action="store_true",
                       help="score each face without its mirror image (video: 1 view instead of 2; images: 9 "
                       "instead of 18)")
    group.add_argument("--calibrate", nargs="+", metavar="IMAGE",
                       help="one or more photos of the person's neutral face: every face's scores are corrected "
                       "by how the model reads it; a photo without a face stops the run")


def add_face_options(group):
    group.add_argument("--cascade", default=str(default_cascade_path()),
                       help="Haar cascade XML file (OpenCV's own copy when none is beside test.py)")
    group.add_argument("--detector", choices=DETECTORS, default="haar",
                       help="haar: OpenCV's Haar cascade, each new face checked by BlazeFace; blazeface: MediaPipe's "
                       "BlazeFace (short range) alone, which also finds tilted and half-turned faces, but only near "
                       "the camera; none: each image (or video frame) is one face as it is, for folders of face "
                       "crops such as FER2013's")
    group.add_argument("--min-face", type=int, default=MIN_FACE,
                       help="smallest face looked for, in pixels; smaller faces are too blurred for the 48x48 "
                       "classifier, and skipping them makes Haar several times faster")
    group.add_argument("--no-verify", action="store_true",
                       help="show every Haar box, without BlazeFace's check (faster on still images; video checks "
                       "each new face only once)")
    group.add_argument("--scan-every", type=int, default=SCAN_EVERY,
                       help="video and webcam: search the whole frame every n-th frame, and in between only around "
                       "the faces being followed")
    group.add_argument("--max-change", type=float, default=MAX_CHANGE,
                       help="video and webcam: a followed face whose crop changed less th"
                       "an this (mean grey levels) keeps its box and scores; 0: redo every face")


def add_server_options(group):
    group.add_argument("--serve", nargs="?", const="127.0.0.1:8000", default=None, metavar="[HOST:]PORT",
                       help="serve a live web page (the browser's camera) and an HTTP API instead of reading "
                       "--source (alone: 127.0.0.1:8000); any address but loopback needs a token")
    group.add_argument("--token", default=None,
                       help="the token clients must show (default: the EMOTION_TOKEN variable; off loopback, a new "
                       "random one each start, printed in the URL)")
    group.add_argument("--certfile", default=None, help="HTTPS certificate (PEM), with --keyfile: a phone's "
                       "browser opens its camera only over HTTPS or on localhost")
    group.add_argument("--keyfile", default=None, help="the certificate's private key (PEM)")


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv=None):
    args = parse_args(argv)
    if min(args.scan_every, args.min_face, args.jobs, 1 if args.max_frames is None else args.max_frames) < 1:
        return fail("--scan-every, --min-face, --jobs and --max-frames must be 1 or more")
    if not args.max_change >= 0:
        return fail("--max-change must be 0 or more")
    if args.reconnect_s <= 0:
        return fail("--reconnect-s must be more than 0")
    if args.log and Path(args.log).suffix.lower() not in LOG_SUFFIXES:
        return fail(f"--log {args.log}: name a .jsonl (JSON Lines) or .csv file, or a folder (no suffix)")
    if args.serve:
        return run_server(args)  # the browser is its display
    if args.token or args.certfile or args.keyfile:
        return fail("--token, --certfile and --keyfile go with --serve")
    if not args.no_display:
        from emotion.sources import has_display
        if not has_display():
            return fail("no display available: add --no-display (with --output or --log to keep the results)")
        if args.jobs > 1:
            return fail("--jobs runs several files at once, which one window cannot show: add --no-display")
        if args.cluster:
            return fail("--cluster runs the files on the cluster's workers, where no window shows them: add --no-display")
    if args.cluster and not args.log:
        return fail("--cluster needs --log: the logs are the archive's results, and what the same command again skips by")
    if args.cluster and args.jobs > 1:
        return fail("--cluster and --jobs: the cluster's workers set how many files run at once; leave out --jobs")
    from emotion.sources import folder_videos
    folder = Path(args.source)
    if folder.is_dir() and folder_videos(folder):
        return run_cluster(args, folder) if args.cluster else run_folder(args, folder)
    if args.cluster:
        return fail(f"--cluster runs a folder holding videos, and {args.source} is not one")
    return run(args)


def run_folder(args, folder):
    """Each video of folder in turn (--jobs at once), then its images as one run; each writes into the --output
    and --log folders, under its own name. Returns 0, or 2 when a file failed (each failure said on its own line)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from emotion.sources import batch_folder, batch_path, folder_images, folder_videos
    runs = [argparse.Namespace(**{**vars(args), "source": str(video), "heading": video.name,
                                  "output": batch_path(args.output, video.stem, ".mp4"),
                                  "log": batch_path(args.log, video.stem, ".jsonl")})
            for video in folder_videos(folder)]
    if folder_images(folder):
        runs.append(argparse.Namespace(**{**vars(args), "heading": f"images in {folder}",
                                          "output": batch_folder(args.output) if args.output else None,
                                          "log": batch_path(args.log, "images", ".jsonl")}))
    if args.jobs > 1:
        runs = [argparse.Namespace(**{**vars(one), "progress": False}) for one in runs]  # bars at once garble
        # spawn, not fork: a forked TensorFlow is not safe to use.
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            codes = list(pool.map(run, runs))
    else:
        codes = [run(one) for one in runs]
    failed = [one.heading for one, code in zip(runs, codes) if code]
    print(f"{folder}: {len(runs) - len(failed)} of {len(runs)} run(s) done"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 2 if failed else 0


def run_cluster(args, folder):
    """run_folder's work on the workers of the Dask scheduler at --cluster (emotion.cluster)."""
    from emotion.cluster import ClusterError, run_archive
    from emotion.model import ModelFileError
    try:
        return run_archive(args, folder)
    except (ClusterError, ModelFileError) as error:
        return fail(error)


def run_server(args):
    """--serve: the web page and the HTTP API (emotion.serve) until Ctrl-C."""
    import os
    import socket

    from emotion.serve import choose_token, parse_address
    try:
        host, port = parse_address(args.serve)
    except ValueError as error:
        return fail(error)
    if bool(args.certfile) != bool(args.keyfile):
        return fail("--certfile and --keyfile go together")
    for path in (args.certfile, args.keyfile):
        if path and not Path(path).is_file():
            return fail(f"{path} does not exist")
    token = choose_token(host, args.token or os.environ.get("EMOTION_TOKEN"))
    try:  # a port in use is said now, not after the model has loaded
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        return fail(f"cannot serve on {args.serve}: {error.strerror or error}")
    load_quietly(with_tensorflow=False)
    from emotion.detect import CascadeError, DetectorError
    from emotion.model import ModelFileError
    from emotion.serve import serve
    try:
        serve(make_recognizer(args), host, port, token, args.certfile, args.keyfile)
    except (ModelFileError, CascadeError, DetectorError, ValueError) as error:
        return fail(error)
    except OSError as error:  # the certificate cannot be read, say
        return fail(f"cannot serve on {args.serve}: {error.strerror or error}")
    except KeyboardInterrupt:
        pass
    return 0


def make_recognizer(args):
    """The EmotionRecognizer that the options describe."""
    from emotion.recognizer import EmotionRecognizer
    return EmotionRecognizer(args.model, args.cascade, min_face=args.min_face, detector=args.detector,
                             verify=not args.no_verify, scan_every=args.scan_every, max_change=args.max_change,
                             flip_average=not args.no_flip_average, runtime=args.runtime)


def open_run(args):
    """(source, recognizer, sink or None) of one run, its outputs checked first and --calibrate applied."""
    from emotion.sources import check_output, open_sink, open_source
    for output in (args.output, args.log):
        if output:
            check_output(output, args.source, args.overwrite)
    source = open_source(args.source, reconnect_s=args.reconnect_s)
    recognizer = make_recognizer(args)
    if args.calibrate:
        profile = recognizer.calibrate(args.calibrate).neutral_profile
        print("calibrated to a neutral face that reads as "
              + ", ".join(f"{name} {share:.2f}" for name, share in zip(recognizer.class_names, profile)))
    return source, recognizer, open_sink(args.output, source) if args.output else None


def progress_bar(args, source):
    """A bar for files and folders run without a window (a window shows the progress itself)."""
    from tqdm import tqdm
    expected_frames = source.expected_frames
    if args.max_frames is not None:
        expected_frames = min(args.max_frames, expected_frames or args.max_frames)
    return tqdm(total=expected_frames, unit="frame",
                disable=source.live or not args.no_display or not getattr(args, "progress", True))


def summarise_run(args, records, class_names, images):
    """The run's summary line and, with --log, its picture; returns the exit code."""
    from emotion.records import plot_shares, plot_timeline, summarise, summarise_images
    from emotion.sources import SourceError
    summary = (summarise_images if images else summarise)(records, class_names)
    print(f"{args.heading}: {summary}" if getattr(args, "heading", None) else summary)
    if args.log:
        picture = Path(args.log).with_suffix(".png")
        try:
            (plot_shares if images else plot_timeline)(records, class_names, picture)
        except SourceError as error:
            return fail(error)
        print(f"{'emotions of the images' if images else 'emotion over time'}: {picture}")
    return 0


def run(args):
    """One source, as the options say: recognised, shown, written and logged; returns the exit code."""
    load_quietly(with_tensorflow=False)  # a model's LiteRT cache needs none; emotion.model loads it if needed
    from emotion.detect import CascadeError, DetectorError
    from emotion.draw import draw_overlay
    from emotion.model import ModelFileError
    from emotion.records import FrameLog, frame_record
    from emotion.sources import SourceError
    from emotion.window import Player, WindowError, calibrate_largest_face
    try:
        source, recognizer, sink = open_run(args)
    except (SourceError, ModelFileError, CascadeError, DetectorError, ValueError) as error:
        return fail(error)
    class_names, images = recognizer.class_names, source.kind in ("image", "folder")
    tracker = None if images else recognizer.tracker(smooth=not args.no_smoothing)
    log, unwritable, records = None, None, []
    progress = progress_bar(args, source)
    player = None if args.no_display else Player(source, args.output, bars=args.scores)
    fps, last = 0.0, time.perf_counter()
    try:
        if args.log:
            log = FrameLog(args.log, class_names, images=images)
        for frame in recognizer.frames(source, tracker, args.max_frames):
            if log:
                log.write(frame.index, frame.time_s, frame.faces, file=frame.name)
            if not source.live:  # a webcam or a stream can run for hours: keep nothing per frame
                records.append(frame_record(frame.index, frame.time_s, frame.faces, file=frame.name if images else None))
            now = time.perf_counter()
            fps, last = 0.9 * fps + 0.1 / max(now - last, 1e-6) if fps else 1 / max(now - last, 1e-6), now
            draw = partial(draw_overlay, faces=frame.faces, class_names=class_names, fps=None if images else fps,
                           notice=tracker.calibration_status() if tracker else None)
            if player:
                annotated = player.show(frame.image, draw)
                if player.calibrate_requested:
                    player.calibrate_requested = False
                    print(calibrate_largest_face(tracker, frame.faces, source.fps or fps))
            elif sink:  # drawn only where something shows or writes it
                annotated = draw(frame.image, bars=args.scores)
            if sink:
                sink.write(annotated, frame.name)
            progress.update()
            if player and player.stopped:
                break
    except KeyboardInterrupt:
        pass
    except WindowError as error:
        return fail(error)
    except SourceError as error:  # an output that cannot be written (a full disk): closed below, it stays readable
        unwritable = error
    finally:
        for closing in (progress, sink, log, player):
            if closing is not None:
                closing.close()
    if unwritable:  # said once the progress bar is closed, as its last refresh would come after it
        return fail(unwritable)
    if source.stopped_early:
        print(f"warning: {source.stopped_early}", file=sys.stderr)
    return summarise_run(args, records, class_names, images) if records else 0


if __name__ == "__main__":
    sys.exit(main())
