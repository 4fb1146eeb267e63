"""What a trained model is worth: accuracy, per-class precision/recall/F1, confusion matrix, pictures.

    metrics = evaluate(model, images, labels, class_names)
    write_report(metrics, "Emotion_little_vgg.h5", history_csv="Emotion_little_vgg.log.csv")
"""
import csv
import json
from pathlib import Path

import numpy as np

# Figure without pyplot: draws to files with no GUI backend, and leaves the caller's backend alone.
from matplotlib.figure import Figure


def predict_scores(model, images, flip_average=False, batch_size=256):
    """Softmax scores (n, classes) for uint8/float (n, 48, 48, 1) images; optionally mirror-averaged."""
    scores = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    if flip_average:
        mirrored = model.predict(images[:, :, ::-1].astype(np.float32), batch_size=batch_size, verbose=0)
        scores = (scores + mirrored) / 2
    return scores


def confusion_matrix(labels, predictions, num_classes):
    """(classes, classes) counts: row = true class, column = predicted class."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).reshape(num_classes, -1)


def classification_metrics(labels, scores, class_names):
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix as plain JSON types."""
    matrix = confusion_matrix(np.asarray(labels), scores.argmax(axis=1), len(class_names))
    true_positives = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(true_positives / matrix.sum(axis=0))
        recall = np.nan_to_num(true_positives / matrix.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return {
        "accuracy": float(true_positives.sum() / matrix.sum()),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(class_names, precision, recall, f1, matrix.sum(axis=1))},
        "confusion_matrix": matrix.tolist(),
    }


def evaluate(model, images, labels, class_names):
    """Metrics of model on (images, labels), plain and with mirror averaging (what the live loop may use)."""
    plain = classification_metrics(labels, predict_scores(model, images), class_names)
    mirrored = classification_metrics(labels, predict_scores(model, images, flip_average=True), class_names)
    return {"class_names": list(class_names), "images": len(labels), **plain, "flip_average": mirrored}


def plot_confusion(matrix, class_names, path):
    """PNG of the row-normalised confusion matrix, with counts."""
    matrix = np.asarray(matrix)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, f"{shares[row, column]:.0%}\n{count}", ha="center", va="center",
                  color="white" if shares[row, column] > 0.5 else "black", fontsize=8)
    axes.set(xticks=range(len(class_names)), yticks=range(len(class_names)),
             xticklabels=class_names, yticklabels=class_names, xlabel="predicted", ylabel="true",
             title="Confusion matrix (rows sum to 100 %)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def plot_curves(history_csv, path):
    """PNG of loss and accuracy per epoch, training vs validation, from Keras' CSVLogger file."""
    with open(history_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure = Figure(figsize=(10, 4))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            axes.plot(epochs, [float(row[prefix + metric]) for row in rows], label=label)
        axes.set(xlabel="epoch", ylabel=metric, title=metric)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def report_paths(model_path):
    """Where the files that go with a model live: beside it, named after it."""
    model_path = Path(model_path)
    stem = model_path.with_suffix("")
    return {"metrics": Path(f"{stem}.metrics.json"), "curves": Path(f"{stem}.curves.png"),
            "confusion": Path(f"{stem}.confusion.png"), "history": Path(f"{stem}.log.csv"),
            "best": Path(f"{stem}.best.h5"), "best_saving": Path(f"{stem}.best.saving.h5"),
            "backup": Path(f"{stem}.backup")}


def write_report(metrics, model_path):
    """Metrics JSON, confusion-matrix PNG and (if a training log exists) curves PNG beside the model."""
    paths = report_paths(model_path)
    paths["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    plot_confusion(metrics["confusion_matrix"], metrics["class_names"], paths["confusion"])
    if paths["history"].is_file():
        plot_curves(paths["history"], paths["curves"])
    return paths
