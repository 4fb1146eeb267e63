"""Facial emotion recognition: Haar face detection + a little-VGG CNN trained on FER2013.

    from emotion import EmotionRecognizer
"""


def __getattr__(name):
    # Loaded on first use, so `python test.py --help` and emotion.constants stay free of TensorFlow.
    if name == "EmotionRecognizer":
        from .console import load_quietly
        # A user's script deserves the scripts' quiet start; TensorFlow, where needed, loads as quietly.
        load_quietly(with_tensorflow=False)
        from .recognizer import EmotionRecognizer
        return EmotionRecognizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EmotionRecognizer"]
