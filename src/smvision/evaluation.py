"""Evaluation of predicted probabilities: the numbers, evaluation.json and the plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)


def evaluate(
    proba: np.ndarray, labels: np.ndarray, class_names: Sequence[str], sources: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, log loss, macro F1, per-class scores, confusion matrix and per-image results."""
    indices = list(range(len(class_names)))
    predicted = proba.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0
    )
    clipped = np.clip(proba.astype(np.float64), 1e-7, 1.0)
    return {
        "count": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "loss": float(
            log_loss(labels, clipped / clipped.sum(axis=1, keepdims=True), labels=indices)
        ),
        "macro_f1": float(
            f1_score(labels, predicted, labels=indices, average="macro", zero_division=0)
        ),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": {
            "labels": list(class_names),
            "rows_are": "true class",
            "matrix": confusion_matrix(labels, predicted, labels=indices).tolist(),
        },
        "predictions": [
            {
                "source": source,
                "label": class_names[int(truth)],
                "predicted": class_names[int(guess)],
                "probability": float(proba[row, guess]),
            }
            for row, (source, truth, guess) in enumerate(zip(sources, labels, predicted))
        ],
    }


def plot_confusion_matrices(results: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """One confusion matrix per evaluated split, side by side."""
    plt = _pyplot()
    splits = list(results)
    figure, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 5.5), squeeze=False)
    for axis, split in zip(axes[0], splits):
        matrix = np.array(results[split]["confusion_matrix"]["matrix"])
        names = results[split]["confusion_matrix"]["labels"]
        axis.imshow(matrix, cmap="Blues")
        axis.set_title(f"{split}: accuracy {results[split]['accuracy']:.4f}")
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        ticks = range(len(names))
        axis.set_xticks(ticks, names, rotation=90 if len(names) > 10 else 0)
        axis.set_yticks(ticks, names)
        if len(names) <= 20:
            threshold = matrix.max() / 2 if matrix.size else 0
            for (row, col), count in np.ndenumerate(matrix):
                colour = "white" if count > threshold else "black"
                axis.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_training_curves(history: Mapping[str, Sequence[float]], path: Path) -> None:
    """Loss and accuracy per epoch, train against validation."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, measure in zip(axes, ("loss", "accuracy")):
        for split in ("train", "validation"):
            values = history.get(f"{split}:{measure}", [])
            if values:
                axis.plot(range(1, len(values) + 1), values, marker="o", label=split)
        axis.set_xlabel("epoch")
        axis.set_ylabel(measure)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
