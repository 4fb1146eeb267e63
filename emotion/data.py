"""Image folders or the Kaggle CSV -> 48x48 grey arrays, labels and FER+ votes; class weights and folds. Reading
imports neither TensorFlow nor Keras: batches for training are emotion.batches'.

    split = load_image_folder("train", DEFAULT_CLASS_NAMES)      # or load_fer_csv("fer2013.csv", ...)
    split = load_folder_by_votes("test", "votes.csv", DEFAULT_CLASS_NAMES)   # labelled by FER+'s majority
"""
import csv
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .constants import IMAGE_SIZE

# Files that operating systems and tools leave in folders; not images, not worth a warning.
IGNORED_FILES = {"thumbs.db", "desktop.ini"}
# Label ids of the original fer2013.csv (Goodfellow et al. 2013).
FER_CSV_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_CSV_SPLITS = ("Training", "PublicTest", "PrivateTest")
# FER+'s ten vote columns (Barsoum et al. 2016: fer2013new.csv, and ../shared/ferplus/*.csv), and the class name
# this project gives each; unknown and NF (not a face) are no emotion.
FERPLUS_VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                        "unknown", "NF")
FERPLUS_CLASS_NAMES = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt", "unknown",
                       "not a face")


class DatasetError(ValueError):
    """A dataset folder that cannot be trained on: missing, empty, or without a requested class."""


@dataclass
class ImageFolder:
    """Decoded images of one split: uint8 (n, 48, 48, 1), int labels (n,), unreadable paths, and where each image
    came from (its file, or its data row of the CSV, counted from 0): what FER+'s votes are looked up by."""
    images: np.ndarray
    labels: np.ndarray
    class_names: list
    skipped: list = field(default_factory=list)
    sources: list = field(default_factory=list)

    def counts(self):
        counts = Counter(self.labels.tolist())
        return {name: counts[index] for index, name in enumerate(self.class_names)}

    def first_classes(self, count):
        """This split with only the images of its first count classes."""
        return self.select(self.labels < count, class_names=self.class_names[:count])

    def select(self, kept, labels=None, class_names=None):
        """This split with only the images where the boolean mask kept is true, relabelled if labels (over every
        image) and class_names are given."""
        labels = self.labels if labels is None else np.asarray(labels, np.int32)
        return ImageFolder(self.images[kept], labels[kept], class_names or self.class_names, self.skipped,
                           [source for source, keep in zip(self.sources, kept) if keep])


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
        skipped=[paths[i] for i in range(len(paths)) if decoded[i] is None],
        sources=[paths[i] for i in kept])
    check_every_class_present(folder, root)
    return folder


def class_folder_names(root):
    """The class sub-folders of root, lower-cased and sorted (case variants merge, as find_class_folders does)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    return sorted({folder.name.lower() for folder in root.iterdir()
                   if folder.is_dir() and not folder.name.startswith(".")})


def fold_mask(count, fold, folds):
    """Which of count images are in fold (1 to folds) of folds: every folds-th image from the fold-th, so that each
    fold draws alike from every class folder (images are read class by class, in file-name order)."""
    return np.arange(count) % folds == fold - 1


def check_every_class_present(split, where):
    empty = [name for name, count in split.counts().items() if count == 0]
    if empty:
        raise DatasetError(f"{where} has no readable image for class(es) {', '.join(empty)}")


def parse_fer_row(row, class_names):
    """(48x48 uint8 image, label index) for one fer2013.csv row; raises ValueError saying what is wrong."""
    try:
        index = int(row["emotion"])
    except (ValueError, TypeError):
        index = -1
    if not 0 <= index < len(FER_CSV_LABELS):  # a negative id would otherwise count from the end: -1 as neutral
        raise ValueError(f"unknown emotion {row.get('emotion')!r}")
    name = FER_CSV_LABELS[index]
    pixels = (row.get("pixels") or "").split()
    if len(pixels) != IMAGE_SIZE * IMAGE_SIZE:
        raise ValueError(f"{len(pixels)} pixels instead of {IMAGE_SIZE * IMAGE_SIZE}")
    try:
        values = np.array(pixels).astype(np.int64)
    except (ValueError, OverflowError):  # OverflowError: a number too long for 64 bits
        raise ValueError("pixels that are not whole numbers") from None
    if values.min() < 0 or values.max() > 255:
        raise ValueError("pixels outside 0-255")
    label = class_names.index(name) if name in class_names else None
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE), label


def load_fer_csv(path, class_names, max_per_class=None):
    """{"Training"|"PublicTest"|"PrivateTest": ImageFolder} from the Kaggle fer2013.csv (emotion,pixels,Usage).

    Rows of classes not asked for are left out; malformed rows are skipped and listed as "line N: reason".
    """
    class_names = [name.lower() for name in class_names]
    images = {split: [] for split in FER_CSV_SPLITS}
    labels = {split: [] for split in FER_CSV_SPLITS}
    rows = {split: [] for split in FER_CSV_SPLITS}
    counts = {split: Counter() for split in FER_CSV_SPLITS}
    skipped = {split: [] for split in FER_CSV_SPLITS}
    try:
        # utf-8-sig: spreadsheet programs start a saved CSV with a byte-order mark, which would hide "emotion".
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            if not {"emotion", "pixels", "Usage"} <= set(reader.fieldnames or ()):
                raise DatasetError(f"{path} is not a fer2013 CSV (needs columns emotion, pixels, Usage)")
            for line, row in enumerate(tqdm(reader, desc=f"reading {path}", unit="row", leave=False), start=2):
                split = row.get("Usage")
                if split not in images:
                    skipped["Training"].append(f"line {line}: unknown Usage {split!r}")
                    continue
                try:
                    image, label = parse_fer_row(row, class_names)
                except ValueError as reason:
                    skipped[split].append(f"line {line}: {reason}")
                    continue
                if label is not None and (max_per_class is None or counts[split][label] < max_per_class):
                    images[split].append(image)
                    labels[split].append(label)
                    rows[split].append(line - 2)
                    counts[split][label] += 1
    # csv.Error: a line the csv module refuses, such as a field over its 128 KiB limit (a stray quote swallows
    # the rest of the file into one field).
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"cannot read {path}: {error}") from None
    return {split: ImageFolder(
        images=np.array(images[split], np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1),
        labels=np.array(labels[split], np.int32), class_names=class_names, skipped=skipped[split],
        sources=rows[split])
        for split in FER_CSV_SPLITS}


def parse_votes(row, where):
    """FER+'s ten vote counts of one CSV row, as int (10,); raises DatasetError naming where."""
    try:
        votes = np.array([int(row[column]) for column in FERPLUS_VOTE_COLUMNS])
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: vote counts that are not whole numbers") from None
    if votes.min() < 0:
        raise DatasetError(f"{where}: a negative vote count")
    return votes


def read_vote_rows(path, key_columns):
    """The csv.DictReader rows of a FER+ votes file, once its columns are checked; DatasetError on a bad file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            missing = [column for column in (*key_columns, *FERPLUS_VOTE_COLUMNS)
                       if column not in (reader.fieldnames or ())]
            if missing:
                raise DatasetError(f"{path} is not a FER+ votes file: it lacks the column(s) {', '.join(missing)}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"cannot read {path}: {error}") from None


def vote_key(path):
    """How a votes file names an image: class folder / file name (FER2013 reuses a few file names across classes)."""
    path = Path(path)
    return f"{path.parent.name.lower()}/{path.name}"


def load_votes_by_file(path):
    """{vote_key: FER+ vote counts (10,)} from a CSV with columns file, class (its folder) and the ten vote columns
    (the layout of ../shared/ferplus/*.csv); an image given two different counts is refused."""
    votes = {}
    for line, row in enumerate(read_vote_rows(path, ("file", "class")), start=2):
        counts = parse_votes(row, f"{path} line {line}")
        key = vote_key(Path(row["class"]) / row["file"])
        if key in votes and not np.array_equal(votes[key], counts):
            raise DatasetError(f"{path} line {line}: {key} has other votes in an earlier row")
        votes[key] = counts
    return votes


def votes_of_files(split, votes_by_file, where):
    """(images, 10) vote counts of a folder split's images, looked up by vote_key; DatasetError if any lack one."""
    missing = [vote_key(source) for source in split.sources if vote_key(source) not in votes_by_file]
    if missing:
        raise DatasetError(f"{len(missing)} of {len(split.sources)} images of {where} have no votes, "
                           f"e.g. {', '.join(missing[:3])}: give the votes file made for these images")
    return np.array([votes_by_file[vote_key(source)] for source in split.sources]).reshape(-1, 10)


def load_ferplus_csv(path, splits):
    """(rows, 10) vote counts of FER+'s fer2013new.csv as published, whose row i is row i of the Kaggle fer2013.csv
    that splits were read from ({Usage: ImageFolder}, each image's source its row); DatasetError when the two files
    do not match (other row counts, or a row of another Usage)."""
    rows = read_vote_rows(path, ("Usage",))
    votes = np.array([parse_votes(row, f"{path} line {line}") for line, row in enumerate(rows, start=2)])
    votes = votes.reshape(-1, 10)
    usage = [row["Usage"] for row in rows]
    for name, split in splits.items():
        if split.sources and max(split.sources) >= len(rows):
            raise DatasetError(f"{path} has {len(rows)} rows but the fer2013 CSV has more (row "
                               f"{max(split.sources) + 1} is {name}): give the fer2013new.csv of that CSV")
        wrong = [row for row in split.sources if usage[row] != name]
        if wrong:
            raise DatasetError(f"{path} does not match the fer2013 CSV: row {wrong[0] + 1} is {name} there but "
                               f"{usage[wrong[0]] or 'empty'} here ({len(wrong)} such rows)")
    return votes


def vote_targets(votes, class_names):
    """(soft targets (n, classes), majority labels (n,)) from FER+ vote counts (n, 10).

    As FER+'s own code does, a single vote for a category is dropped as one annotator's slip. The target is the
    share of the remaining votes that each of class_names got. A face whose most-voted category is none of
    class_names (fear, disgust, contempt, unknown, not a face) gets an all-zero row: it is not trained on, since
    spreading its few inside votes would teach a confident answer for a face most annotators did not see so.
    The majority label is the index of the class with the most votes, or -1 where none has more votes than every
    other category (an outside one won, or two tie at the top): such faces are left out of majority scoring.
    """
    unknown = [name for name in class_names if name not in FERPLUS_CLASS_NAMES]
    if unknown:
        raise DatasetError(f"FER+ has no votes for class(es) {', '.join(unknown)}; its categories are "
                           f"{', '.join(FERPLUS_CLASS_NAMES[:8])}")
    columns = [FERPLUS_CLASS_NAMES.index(name) for name in class_names]
    counted = np.where(votes > 1, votes, 0).astype(np.float32)
    inside = counted[:, columns]
    top_inside = inside.max(axis=1)
    top_outside = np.delete(counted, columns, axis=1).max(axis=1)
    trained = (top_inside > 0) & (top_inside >= top_outside)
    targets = np.where(trained[:, None], inside / np.maximum(inside.sum(axis=1, keepdims=True), 1), 0)
    single_top = (inside == top_inside[:, None]).sum(axis=1) == 1
    majority = np.where(trained & single_top & (top_inside > top_outside), inside.argmax(axis=1), -1)
    return targets.astype(np.float32), majority.astype(np.int32)


def class_weights(labels, num_classes, power=0.5):
    """{class index: weight} against class imbalance, averaging 1 per image.

    power 1 gives every class the same total weight, power 0 weighs images alike; in between,
    rare classes gain recall without the frequent ones losing as much accuracy.
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = (counts.mean() / counts) ** power
    weights *= len(labels) / np.sum(weights * counts)
    return dict(enumerate(weights.tolist()))


def relabel(split, class_names):
    """This split with only the images of class_names (in any order of its own), labelled by their index there."""
    class_names = list(class_names)
    index = np.array([class_names.index(name) if name in class_names else -1 for name in split.class_names])
    labels = index[split.labels] if len(split.labels) else split.labels
    return split.select(labels >= 0, labels, class_names)


def train_on_votes(split, votes, class_names):
    """(the faces of split that are trained on, their soft vote targets over class_names): see vote_targets. Their
    labels become the class with the most votes (for class weights and counts)."""
    targets, _ = vote_targets(votes, class_names)
    trained = targets.sum(axis=1) > 0
    return split.select(trained, targets.argmax(axis=1), list(class_names)), targets[trained]


def score_on_votes(split, votes, class_names):
    """The faces of split that FER+'s majority gives one of class_names, labelled by it (see vote_targets)."""
    _, majority = vote_targets(votes, class_names)
    return split.select(majority >= 0, majority, list(class_names))


def load_folder_by_votes(root, votes_path, class_names):
    """score_on_votes of every class folder under root, with the votes file at votes_path (file, class, ten counts):
    FER+'s crowd calls some faces of other folders (fear, disgust) one of class_names."""
    split = load_image_folder(root, class_folder_names(root))
    return score_on_votes(split, votes_of_files(split, load_votes_by_file(votes_path), root), class_names)


@dataclass
class TrainingData:
    """What training.py trains and validates on: the training split and its targets (labels, or soft vote shares),
    the validation split, the validation images with their folder (or CSV) labels where the validation split is
    labelled by FER+'s majority instead (else None), the classes learnt, and how many training images were left out
    for having most votes outside them (None without votes)."""
    train: ImageFolder
    targets: np.ndarray
    val: ImageFolder
    val_fer2013: ImageFolder | None
    learnt: list
    votes_left_out: int | None


def load_training_data(train_dir, val_dir, classes, extra_classes=None, csv_path=None, votes=None, val_votes=None,
                       ferplus=None, max_per_class=None):
    """TrainingData from image folders, or from the Kaggle CSV (csv_path: its Training rows train, its PublicTest rows
    validate); with votes (folders) or ferplus (CSV), trained on FER+'s vote shares over classes + extra_classes, and
    with val_votes (or ferplus) validated on FER+'s majority. DatasetError for data that cannot be used."""
    learnt = list(classes) + list(extra_classes or [])
    voting, val_voting = bool(votes or ferplus), bool(val_votes or ferplus)
    if csv_path:
        # With votes every row is read: a face FER2013 filed under fear may be neutral to FER+'s crowd.
        splits = load_fer_csv(csv_path, list(FER_CSV_LABELS) if voting else learnt, max_per_class)
        train, val = splits["Training"], splits["PublicTest"]
        if voting:
            counts = load_ferplus_csv(ferplus, splits)
            train_votes, val_vote_counts = counts[train.sources], counts[val.sources]
        else:
            for split, name in ((train, "Training"), (relabel(val, classes), "PublicTest")):
                check_every_class_present(split, f"{csv_path} ({name} rows)")
    else:
        train = load_image_folder(train_dir, class_folder_names(train_dir) if voting else learnt, max_per_class,
                                  desc="reading training images")
        val = load_image_folder(val_dir, class_folder_names(val_dir) if val_voting else classes, max_per_class,
                                desc="reading validation images")
        if voting:
            train_votes = votes_of_files(train, load_votes_by_file(votes), train_dir)
        if val_voting:
            val_vote_counts = votes_of_files(val, load_votes_by_file(val_votes), val_dir)
    val_fer2013 = relabel(val, classes)  # the folder (or CSV) labels, scored beside FER+'s
    left_out, targets = None, train.labels
    if voting:
        read = len(train.labels)
        train, targets = train_on_votes(train, train_votes, learnt)
        left_out = read - len(train.labels)
        check_every_class_present(train, f"{csv_path or train_dir} (by FER+ votes)")
    if not val_voting:
        return TrainingData(train, targets, val_fer2013, None, learnt, left_out)
    val = score_on_votes(val, val_vote_counts, classes)
    check_every_class_present(val, f"{csv_path or val_dir} (by FER+ majority)")
    return TrainingData(train, targets, val, val_fer2013, learnt, left_out)

