"""48x48 grey arrays -> augmented training batches: tf.data on the TensorFlow backend, a keras.utils.PyDataset on
the others (JAX, as a GPU machine without TensorFlow runs it).

    train = make_dataset(split.images, split.labels, len(split.class_names), batch_size=64, training=True)
    train = FaceBatches(split.images, split.labels, len(split.class_names), batch_size=64, training=True)
"""
import math

import keras
import numpy as np
from keras import layers


def build_augmentation(seed=None, camera_artefacts=False):
    """Training-only distortions of raw 0-255 pixels: what a webcam face varies by."""
    blur = [layers.RandomGaussianBlur(factor=0.3, kernel_size=3, sigma=(0.1, 0.8), value_range=(0, 255), seed=seed)]
    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.03, fill_mode="nearest", seed=seed),  # about +-11 degrees
        layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed),
        layers.RandomZoom(0.1, fill_mode="nearest", seed=seed),
        layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
        layers.RandomContrast(0.2, value_range=(0, 255), seed=seed),
        # Hands, glasses and hair hide parts of real faces; erasing patches teaches the net not to rely on one part.
        layers.RandomErasing(factor=0.5, scale=(0.02, 0.15), value_range=(0, 255), seed=seed),
        # Webcam and phone faces are softer than FER2013's scans.
        *(blur if camera_artefacts else []),
    ], name="augmentation")


def random_exposure_and_noise(pixels, max_log_gamma=0.4, max_noise=6.0):
    """Under- or over-exposure (pixels ** gamma) and sensor noise, as cheap cameras give; drawn per image."""
    import tensorflow as tf
    pixels = tf.cast(pixels, tf.float32)  # augmentation layers hand over bfloat16 under mixed precision
    per_image = (tf.shape(pixels)[0], 1, 1, 1)
    gamma = tf.exp(tf.random.uniform(per_image, -max_log_gamma, max_log_gamma))
    exposed = 255.0 * tf.pow(tf.clip_by_value(pixels, 0.0, 255.0) / 255.0, gamma)
    noise = tf.random.normal(tf.shape(pixels)) * tf.random.uniform(per_image, 0.0, max_noise)
    return tf.clip_by_value(exposed + noise, 0.0, 255.0)


def random_jpeg(image, probability=0.5):
    """Re-encode one uint8 image at a random low JPEG quality, as streamed and uploaded faces are."""
    import tensorflow as tf
    compressed = tf.cond(tf.random.uniform(()) < probability,
                         lambda: tf.image.random_jpeg_quality(image, 20, 90), lambda: image)
    return tf.ensure_shape(compressed, image.shape)  # the JPEG round trip forgets the static shape


def build_mixup(alpha, seed=None):
    """(pixels, targets) batch -> each image blended with another of the batch, and their targets alike, by a weight
    drawn per image from Beta(alpha, alpha) (mixup, Zhang et al. 2018): the net learns the space between faces, not
    FER2013's noisy labels by heart."""
    mix = layers.MixUp(alpha=alpha, seed=seed, dtype="float32")  # its weights are float32, so targets must be too

    def blend(pixels, targets):
        mixed = mix({"images": pixels, "labels": targets}, training=True)
        return mixed["images"], mixed["labels"]
    return blend


def one_hot_targets(labels, num_classes):
    """(images, classes) float32 targets: one-hot for class indices, as they are for soft (teacher) targets."""
    return np.eye(num_classes, dtype=np.float32)[labels] if np.ndim(labels) == 1 else labels.astype(np.float32)


def make_dataset(images, labels, num_classes, batch_size, training=False, seed=None, camera_artefacts=False,
                 mixup=0.0):
    """tf.data of (float32 raw pixels, one-hot targets); shuffled and augmented when training.

    labels are class indices, or already (images, classes) targets (soft ones, from teacher models).
    camera_artefacts adds JPEG recompression, blur, exposure and sensor noise to the augmentation; mixup > 0 then
    blends pairs of augmented images with Beta(mixup, mixup) weights.
    """
    import tensorflow as tf  # here, not above: the other backends train without TensorFlow
    dataset = tf.data.Dataset.from_tensor_slices((images, one_hot_targets(labels, num_classes)))
    if training:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if training and camera_artefacts:
        dataset = dataset.map(lambda x, y: (random_jpeg(x), y))
    dataset = dataset.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y))
    if training:
        augment = build_augmentation(seed, camera_artefacts)
        artefacts = random_exposure_and_noise if camera_artefacts else tf.identity
        dataset = dataset.map(lambda x, y: (artefacts(augment(x, training=True)), y))
    if training and mixup > 0:
        dataset = dataset.map(build_mixup(mixup, seed))
    # One thread a few batches ahead: augmenting makes 4,000 images/s on one core and the step uses about 200, so
    # tf.data's autotuner and its parallel maps only take cores from the step; on 2 cores they cost up to a third
    # of the step's speed, worst where oneDNN is on (docs/speed.md, benchmarks/training_speed.py).
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    return dataset.prefetch(2).with_options(options)


class FaceBatches(keras.utils.PyDataset):
    """What make_dataset gives, for the Keras backends without tf.data: batches of (float32 raw pixels, one-hot
    targets), reshuffled each epoch and augmented (and mixed up, if asked) when training. Camera artefacts need
    TensorFlow."""

    def __init__(self, images, labels, num_classes, batch_size, training=False, seed=None, mixup=0.0,
                 **pydataset_options):
        super().__init__(**pydataset_options)
        self.images, self.targets = images, one_hot_targets(labels, num_classes)
        self.batch_size, self.training = batch_size, training
        self.order = np.arange(len(images))
        self.random = np.random.default_rng(seed)
        self.augment = build_augmentation(seed) if training else None
        self.mixup = build_mixup(mixup, seed) if training and mixup > 0 else None
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        chosen = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        pixels = self.images[chosen].astype(np.float32)
        if self.training:
            pixels = self.augment(pixels, training=True)
        if self.mixup:
            return self.mixup(pixels, self.targets[chosen])
        return pixels, self.targets[chosen]

    def on_epoch_end(self):
        if self.training:
            self.random.shuffle(self.order)
