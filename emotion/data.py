"""Image folders -> 48x48 grey arrays -> augmented tf.data pipelines.

    images, labels, class_names = load_image_folder("train", DEFAULT_CLASS_NAMES)
    train = make_dataset(images, labels, len(class_names), batch_size=64, training=True)
"""
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf
from keras import layers
from tqdm import tqdm

from .constants import IMAGE_SIZE

# Files that operating systems and tools leave in folders; not images, not worth a warning.
IGNORED_FILES = {"thumbs.db", "desktop.ini"}


class DatasetError(ValueError):
    """A dataset folder that cannot be trained on: missing, empty, or without a requested class."""


@dataclass
class ImageFolder:
    """Decoded images of one split: uint8 (n, 48, 48, 1), int labels (n,), unreadable paths."""
    images: np.ndarray
    labels: np.ndarray
    class_names: list
    skipped: list = field(default_factory=list)

    def counts(self):
        counts = Counter(self.labels.tolist())
        return {name: counts[index] for index, name in enumerate(self.class_names)}


def read_face_image(path):
    """Any image OpenCV reads -> uint8 (48, 48) grey, or None when the file is not a readable image."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        return None
    return cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)


def find_class_folders(root, class_names):
    """{class name: [folders]}; names match case-insensitively, so Happy/ and happy/ merge."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    folders = {name: [] for name in class_names}
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and folder.name.lower() in folders:
            folders[folder.name.lower()].append(folder)
    missing = [name for name, found in folders.items() if not found]
    if missing:
        raise DatasetError(f"{root} has no folder for class(es) {', '.join(missing)}")
    return folders


def list_image_files(folder):
    """Every non-hidden file under folder, sub-folders included, in a stable order."""
    return sorted(path for path in Path(folder).rglob("*")
                  if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
                  and path.name.lower() not in IGNORED_FILES)


def load_image_folder(root, class_names, max_per_class=None, desc=None):
    """Read root/<class>/** into an ImageFolder; unreadable files are skipped and listed, never fatal."""
    class_names = [name.lower() for name in class_names]
    paths, labels = [], []
    for label, folders in enumerate(find_class_folders(root, class_names).values()):
        files = [path for folder in folders for path in list_image_files(folder)][:max_per_class]
        paths += files
        labels += [label] * len(files)
    # cv2 releases the GIL while decoding, so threads give a real speed-up here.
    with ThreadPoolExecutor() as pool:
        decoded = list(tqdm(pool.map(read_face_image, paths, chunksize=64), total=len(paths),
                            desc=desc or f"reading {root}", unit="img", leave=False))
    kept = [index for index, image in enumerate(decoded) if image is not None]
    folder = ImageFolder(
        images=np.stack([decoded[i] for i in kept])[..., None] if kept else
        np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8),
        labels=np.array([labels[i] for i in kept], dtype=np.int32),
        class_names=class_names,
        skipped=[paths[i] for i in range(len(paths)) if decoded[i] is None])
    empty = [name for name, count in folder.counts().items() if count == 0]
    if empty:
        raise DatasetError(f"{root} has no readable image for class(es) {', '.join(empty)}")
    return folder


def balanced_class_weights(labels, num_classes):
    """{class index: weight} so that every class carries the same total weight in the loss."""
    counts = np.bincount(labels, minlength=num_classes)
    return {index: len(labels) / (num_classes * count) for index, count in enumerate(counts)}


def build_augmentation(seed=None):
    """Training-only distortions of raw 0-255 pixels: what a webcam face varies by."""
    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.04, fill_mode="nearest", seed=seed),  # about +-15 degrees
        layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed),
        layers.RandomZoom(0.15, fill_mode="nearest", seed=seed),
        layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
        layers.RandomContrast(0.3, value_range=(0, 255), seed=seed),
    ], name="augmentation")


def make_dataset(images, labels, num_classes, batch_size, training=False, seed=None):
    """tf.data of (float32 raw pixels, one-hot labels); shuffled and augmented when training."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(
        lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        augment = build_augmentation(seed)
        dataset = dataset.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
