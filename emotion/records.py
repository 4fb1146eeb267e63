"""Per-frame results on disk (JSON Lines or CSV), a run summary, and a picture of emotion over time.

    with FrameLog("emotions.jsonl", class_names) as log:
        log.write(frame_index, time_s, faces)
    with FrameLog("photos.csv", class_names, images=True) as log:   # images: by file name, no time
        log.write(frame_index, None, faces, file="party.jpg")
    print(summarise(records, class_names)); plot_timeline(records, class_names, "emotions.png")
    print(summarise_images(records, class_names)); plot_shares(records, class_names, "photos.png")  # images
    plot_archive([("clip1.mp4", 120, [0.1, 0.6, 0.3, 0.0, 0.0])], class_names, "archive.png")  # folders of videos
"""
import csv
import io
import json
from collections import Counter
from pathlib import Path

# Figure without pyplot: draws to files with no GUI backend, and leaves the caller's backend alone.
from matplotlib.figure import Figure

from .draw import label_colour
from .sources import write_or_undo


def frame_record(frame, time_s, faces, file=None):
    """The plain-JSON record of one frame: {"frame", "time_s", "faces": [box, label, scores, face_id]}. An image's
    record names its file instead of a time, which means nothing for an image: {"frame", "file", "faces"}."""
    stamp = {"file": file} if file is not None else {"time_s": round(time_s, 3)}
    return {"frame": frame, **stamp, "faces": [{**face.to_json(), "face_id": face.face_id} for face in faces]}


class FrameLog:
    """One JSON object per frame (.jsonl/.json) or one CSV row per face (.csv), on disk as soon as written.

    Each frame goes straight to the file, unbuffered, so a crash or a killed run still leaves every processed
    frame on disk; a write that fails (a full disk) is cut back to the last whole frame, so the log stays
    parseable, and raises a SourceError.
    """

    def __init__(self, path, class_names, images=False):
        """images: the frames are image files (an image or a folder), logged by file name instead of time."""
        self.path, self.class_names, self.images = Path(path), list(class_names), images
        self.csv = self.path.suffix.lower() == ".csv"
        self.file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed by close()/__exit__
        self.size = 0  # bytes of whole frames in the file
        if self.csv:
            self.append(csv_text([["frame", "file" if images else "time_s", "face_id", "x", "y", "w", "h", "label",
                                   *self.class_names]]))

    def write(self, frame, time_s, faces, file=None):
        """file: the image's file name, logged instead of time_s in an images log."""
        if self.csv:
            stamp = file if self.images else f"{time_s:.3f}"
            self.append(csv_text([[frame, stamp, face.face_id, *face.box, face.label,
                                   *(f"{face.scores[name]:.4f}" for name in self.class_names)] for face in faces]))
        else:
            self.append(json.dumps(frame_record(frame, time_s, faces, file if self.images else None)) + "\n")

    def append(self, text):
        data = text.encode()
        with write_or_undo(self.path, self.cut_back):
            written = 0
            while written < len(data):  # an unbuffered write may take only part of the data
                written += self.file.write(data[written:])
        self.size += len(data)

    def cut_back(self):
        self.file.truncate(self.size)
        self.file.seek(self.size)

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def csv_text(rows):
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue()


def face_counts(records):
    """(Counter of the labels of all face observations, number of distinct faces) of a video's records."""
    labels = Counter(face["label"] for record in records for face in record["faces"])
    return labels, len({face.get("face_id") for record in records for face in record["faces"]})


def summarise(records, class_names):
    """Text: frames, faces seen, and each emotion's share of all face observations."""
    labels, faces = face_counts(records)
    total = sum(labels.values())
    lines = [f"{len(records)} frames, {total} face observations, {faces} distinct face(s)"]
    lines += [f"  {name:>9}: {labels[name] / total:6.1%}" for name in class_names if total]
    return "\n".join(lines)


def largest_face(record):
    return max(record["faces"], key=lambda face: face["box"][2] * face["box"][3])


def summarise_images(records, class_names):
    """Text for an image or folder run: per label, the images whose largest face has it, and all faces that have it."""
    images = Counter(largest_face(record)["label"] for record in records if record["faces"])
    faces = Counter(face["label"] for record in records for face in record["faces"])
    without = len(records) - sum(images.values())
    lines = [f"{len(records)} image(s), {sum(faces.values())} face(s), {without} image(s) without a face",
             f"  {'label':>9}  images  faces"]
    lines += [f"  {name:>9}  {images[name]:6d}  {faces[name]:5d}" for name in class_names]
    return "\n".join(lines)


def plot_shares(records, class_names, path):
    """PNG for an image or folder run: each emotion's share of the images (by their largest face), one bar each."""
    counts = Counter(largest_face(record)["label"] for record in records if record["faces"])
    total = max(sum(counts.values()), 1)
    shares = [counts[name] / total for name in class_names]
    figure = Figure(figsize=(7, 0.5 * len(class_names) + 1.2))
    axes = figure.subplots()
    positions = range(len(class_names))[::-1]  # the model's first class on top
    axes.barh(positions, shares, color=[matplotlib_colour(label_colour(name, class_names)) for name in class_names])
    for position, share, name in zip(positions, shares, class_names):
        axes.text(share + 0.01, position, f"{share:.0%} ({counts[name]})", va="center")
    axes.set(yticks=list(positions), yticklabels=class_names, xlim=(0, 1.15), xlabel="share of images",
             title=f"{len(records)} image(s), {sum(counts.values())} with a face")
    figure.tight_layout()
    with write_or_undo(path, lambda: Path(path).unlink(missing_ok=True)):
        figure.savefig(path, dpi=110)


def plot_archive(videos, class_names, path):
    """PNG for a folder of videos: one bar per video, and one for them all on top, each split into the emotions'
    shares of its face observations. videos: [(name, face observations, [share of each class])]."""
    total = sum(observations for _, observations, _ in videos)
    overall = [sum(observations * shares[column] for _, observations, shares in videos) / max(total, 1)
               for column in range(len(class_names))]
    bars = [(f"all {len(videos)} videos", overall), *((name, shares) for name, _, shares in videos)]
    # A bar a line high keeps a few hundred videos readable; a longer archive is better read in the CSV.
    figure = Figure(figsize=(9, min(1.8 + 0.28 * len(bars), 80)), layout="constrained")
    axes = figure.subplots()
    positions = range(len(bars))[::-1]  # the archive's bar on top, then the videos in name order
    left = [0.0] * len(bars)
    for column, name in enumerate(class_names):
        widths = [shares[column] for _, shares in bars]
        axes.barh(positions, widths, left=left, label=name,
                  color=matplotlib_colour(label_colour(name, class_names)))
        left = [start + width for start, width in zip(left, widths)]
    axes.set(yticks=list(positions), yticklabels=[name for name, _ in bars], xlim=(0, 1),
             xlabel="share of the face observations", title=f"{len(videos)} videos, {total} face observations")
    figure.legend(loc="outside upper center", ncol=len(class_names), fontsize=8, frameon=False)
    with write_or_undo(path, lambda: Path(path).unlink(missing_ok=True)):
        figure.savefig(path, dpi=110)


def matplotlib_colour(bgr):
    """The overlay's BGR 0-255 colour as matplotlib's RGB 0-1, so an emotion has one colour everywhere."""
    return tuple(channel / 255 for channel in reversed(bgr))


def plot_timeline(records, class_names, path):
    """PNG: each emotion's score over time, one panel per tracked face (the longest-seen faces first)."""
    series = {}
    for record in records:
        for face in record["faces"]:
            times, scores = series.setdefault(face.get("face_id", 0), ([], []))
            times.append(record["time_s"])
            scores.append([face["scores"][name] for name in class_names])
    face_ids = sorted(series, key=lambda face_id: -len(series[face_id][0]))[:4]
    figure = Figure(figsize=(9, 2.6 * max(len(face_ids), 1)))
    axes_list = figure.subplots(max(len(face_ids), 1), 1, squeeze=False, sharex=True)
    for axes, face_id in zip(axes_list[:, 0], face_ids):
        times, scores = series[face_id]
        for column, name in enumerate(class_names):
            axes.plot(times, [row[column] for row in scores], label=name, linewidth=1.5,
                      color=matplotlib_colour(label_colour(name, class_names)))
        axes.set(ylabel="score", ylim=(0, 1), title=f"face {face_id}")
        axes.grid(alpha=0.3)
    if face_ids:
        axes_list[0, 0].legend(loc="upper right", ncol=len(class_names), fontsize=8)
    else:
        axes_list[0, 0].set_title("no faces found")
    axes_list[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    with write_or_undo(path, lambda: Path(path).unlink(missing_ok=True)):
        figure.savefig(path, dpi=110)
