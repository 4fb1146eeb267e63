"""Compiling, distributing and watching a training run: the pieces training.py wires together."""
import csv
import json
import os
import time
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from .batches import one_hot_targets
from .data import fold_mask
from .report import predict_scores


def choose_strategy():
    """tf.distribute strategy for what is visible: several machines (TF_CONFIG), several GPUs, or one device."""
    import tensorflow as tf  # here, not above: the other Keras backends train on one device, without TensorFlow
    if len(json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def compile_model(model, learning_rate, steps_per_epoch, epochs, label_smoothing, weight_averaging=False,
                  optimizer="adamw"):
    """AdamW, or SGD with Nesterov momentum, with one warm-up epoch then cosine decay; the schedule follows
    optimizer.iterations, so it resumes.

    SGD is what most FER2013 papers train VGG nets with (momentum 0.9, weight decay 5e-4); AdamW reaches a
    good model in fewer epochs.

    weight_averaging keeps an exponential moving average of the weights (over about 1000 steps) and puts it
    in the model at each epoch's end, so validation, checkpoints and the saved model all use the average.
    """
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10, warmup_target=learning_rate, warmup_steps=steps_per_epoch,
        decay_steps=max(1, (epochs - 1) * steps_per_epoch), alpha=0.01)
    averaging = {"use_ema": weight_averaging, "ema_momentum": 0.999,
                 "ema_overwrite_frequency": steps_per_epoch if weight_averaging else None}
    if optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4, **averaging)
    else:
        optimizer = keras.optimizers.AdamW(schedule, **averaging)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    # The optimizer's variables are made now, and the metric's by its constructor (the string "accuracy" would
    # make it lazily): a variable created while tf.function traces the first step makes it trace the whole step
    # a second time, about 10 s on a 2-core CPU.
    model.optimizer.build(model.trainable_variables)
    return model


def ensemble_answers(models, images):
    """The mean of the models' mirror-averaged softmax scores on images: what --teacher models say together."""
    return np.mean([predict_scores(model, images, flip_average=True) for model in models], axis=0)


def teacher_targets(teachers, images, targets, num_classes, teacher_weight, held_out=None):
    """Training targets for distillation: each image's own target blended with the mean of the teachers'
    mirror-averaged answers on it. targets: the images' labels (n,), taken as one-hot, or their target rows
    (n, num_classes) such as FER+'s vote shares, which are kept as they are.

    An ensemble's answers say more than a label: how sad a neutral face looks, and which labels FER2013's crowd
    got wrong. Taken once from the unaugmented images, so distilling costs no time per epoch.
    held_out: per teacher, None or the fold of these images it was trained without ({"fold", "folds"}); such a
    teacher answers for that fold only, where its answers are not memorised labels. Raises ValueError when some
    image is left without a teacher.
    """
    held_out = held_out or [None] * len(teachers)
    answers = np.zeros((len(images), num_classes), np.float32)
    answering = np.zeros(len(images))
    for teacher, fold in zip(tqdm(teachers, desc="teachers' answers", unit="model", leave=False), held_out,
                             strict=True):
        asked = fold_mask(len(images), fold["fold"], fold["folds"]) if fold else np.ones(len(images), bool)
        answers[asked] += ensemble_answers([teacher], images[asked])
        answering[asked] += 1
    if not answering.all():
        raise ValueError(f"{np.sum(answering == 0)} training images have no teacher: give a teacher for each "
                         "held-out fold, or one trained on all images")
    answers /= answering[:, None]
    return ((1 - teacher_weight) * one_hot_targets(targets, num_classes) + teacher_weight * answers).astype(np.float32)


def reestimate_batch_norm(model, images, batch_size=256):
    """Set every BatchNormalization layer's moving mean and variance to their mean over the batches of images and
    their mirror images, unaugmented, as SWA's update_bn does; returns model.

    Training leaves them as moving averages over augmented batches, and over weights that kept changing: the
    statistics of faces the network never sees at test time. Measured gains: docs/training.md.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    batches = range(0, len(images), batch_size)
    for step, start in enumerate(tqdm(batches, desc="re-estimating BatchNorm statistics", unit="batch", leave=False)):
        for layer in norms:
            layer.momentum = step / (step + 1)  # a running mean: each batch weighs as much as every earlier one
        batch = np.asarray(images[start:start + batch_size], np.float32)
        model(np.concatenate([batch, batch[:, :, ::-1]]), training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    return model


def time_input_pipeline(dataset, batches=20):
    """Milliseconds the input pipeline alone needs to produce one batch (after one warm-up batch)."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    produced = sum(1 for _, _ in zip(range(batches), iterator))
    return 1000 * (time.perf_counter() - start) / max(produced, 1)


class ThroughputLogger(keras.callbacks.Callback):
    """Adds images/s, the input pipeline's share of step time and the learning rate to each epoch's logs."""

    def __init__(self, images_per_epoch, batches_per_epoch, pipeline_ms_per_batch):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.batches_per_epoch = batches_per_epoch
        self.pipeline_ms_per_batch = pipeline_ms_per_batch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = self.train_end = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        train_seconds = max(self.train_end - self.epoch_start, 1e-9)
        step_ms = 1000 * train_seconds / self.batches_per_epoch
        logs["images_per_s"] = self.images_per_epoch / train_seconds
        logs["input_share"] = self.pipeline_ms_per_batch / step_ms
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))


def best_checkpoint(path, saving, initial_best=None):
    """Callbacks that keep the epoch of best validation accuracy at path (a .h5 file).

    Each new best is written to saving, then renamed over path: a crash or kill mid-save leaves the earlier
    best whole. initial_best: the best so far of a resumed run, which a new checkpoint must beat.
    """
    path, saving = Path(path), Path(saving)

    def drop_leftover(logs):
        # A kill mid-save leaves half a file there, which the first epoch's rename would put in the best's place.
        saving.unlink(missing_ok=True)

    def keep_saved(epoch, logs):
        if saving.exists():
            saving.replace(path)

    return [keras.callbacks.ModelCheckpoint(str(saving), monitor="val_accuracy", mode="max", save_best_only=True,
                                            initial_value_threshold=initial_best),
            keras.callbacks.LambdaCallback(on_train_begin=drop_leftover, on_epoch_end=keep_saved)]


def best_logged(history_csv, metric="val_accuracy"):
    """Best value of metric in a CSVLogger file, or None; lets a resumed run keep its earlier best."""
    if not os.path.isfile(history_csv):
        return None
    with open(history_csv, newline="") as file:
        values = [float(row[metric]) for row in csv.DictReader(file) if row.get(metric)]
    return max(values, default=None)
