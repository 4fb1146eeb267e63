"""What the scripts share at the terminal: their command lines, and native libraries' start-up chatter kept off it,
so that users see the scripts' own messages."""
import argparse
import os
from contextlib import contextmanager


def command_parser(doc, groups=()):
    """The argument parser of a script (or benchmark) described by its docstring's first line, with the defaults in
    --help and an option group for each (title, function that adds the group's options)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for title, add_options in groups:
        add_options(parser.add_argument_group(title))
    return parser


@contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null: C++ logging bypasses Python's sys.stderr."""
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def load_quietly(with_tensorflow=True):
    """Import OpenCV, and TensorFlow (when installed, and unless with_tensorflow is False), with their logging
    turned down; call before anything else imports them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if with_tensorflow:
        # TensorFlow prints CUDA and oneDNN notices while loading, before its log level applies.
        with native_stderr_silenced():
            try:
                import tensorflow  # noqa: F401
            except ImportError:  # training on another Keras backend (JAX on a GPU machine) needs none
                pass
    import cv2
    # A missing camera makes OpenCV print a dozen lines of warnings; the scripts say it in one.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def import_keras():
    """Keras, with TensorFlow under it loaded quietly. Imported only where a model is built, trained, loaded or
    converted: loading TensorFlow takes seconds, and test.py with a cached LiteRT model needs neither."""
    load_quietly()
    import keras
    return keras
