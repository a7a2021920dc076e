"""The numbers as pictures: confusion matrices beside per-class precision and recall,
ROC and precision-recall curves (two classes), per-label scores (multi-label), and
training curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smvision.training.explain.plotting import pyplot, save

MAX_ANNOTATED_CLASSES = 20


def results(results: Mapping[str, Mapping[str, Any]], directory: Path) -> list[Path]:
    """The pictures that fit the results in `directory`, and their paths: per-label scores
    for a multi-label model, else confusion matrices beside per-class precision and recall;
    ROC and PR curves for two classes."""
    if not results:
        return []
    first = next(iter(results.values()))
    written = []
    if "label_confusion" in first:
        written.append(directory / "per_label.png")
        per_label(results, written[-1])
    else:
        written.append(directory / "confusion_matrix.png")
        confusion_and_per_class(results, written[-1])
    if any("curves" in result for result in results.values()):
        written.append(directory / "roc_pr_curves.png")
        binary_curves(results, written[-1])
    return written


def confusion_and_per_class(results: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """A row per evaluated split: its confusion matrix, then each class's precision and
    recall with its support (n), so that a class the model neglects or a rare class shows."""
    plt = pyplot()
    splits = list(results)
    classes = len(next(iter(results.values()))["per_class"])
    height = max(5.0, 0.3 * classes + 1.5)
    figure, axes = plt.subplots(len(splits), 2, figsize=(12, height * len(splits)), squeeze=False)
    for row, split in zip(axes, splits):
        _confusion(row[0], split, results[split])
        _per_class(row[1], split, results[split])
    figure.tight_layout()
    save(figure, path)


def _confusion(axis: Any, split: str, result: Mapping[str, Any]) -> None:
    matrix = np.array(result["confusion_matrix"]["matrix"])
    names = result["confusion_matrix"]["labels"]
    axis.imshow(matrix, cmap="Blues")
    axis.set_title(f"{split}: accuracy {result['accuracy']:.4f}")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    ticks = range(len(names))
    axis.set_xticks(ticks, names, rotation=90 if len(names) > 10 else 0)
    axis.set_yticks(ticks, names)
    if len(names) <= MAX_ANNOTATED_CLASSES:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (r, c), count in np.ndenumerate(matrix):
            colour = "white" if count > threshold else "black"
            axis.text(c, r, str(count), ha="center", va="center", color=colour, fontsize=8)


def _per_class(axis: Any, split: str, result: Mapping[str, Any]) -> None:
    names = list(result["per_class"])
    scores = result["per_class"]
    rows = np.arange(len(names))
    bar = 0.4
    precision = [scores[name]["precision"] for name in names]
    recall = [scores[name]["recall"] for name in names]
    axis.barh(rows - bar / 2, precision, bar, label="precision", color="tab:blue")
    axis.barh(rows + bar / 2, recall, bar, label="recall", color="tab:orange")
    axis.set_yticks(rows, [f"{name} (n={scores[name]['support']})" for name in names])
    axis.invert_yaxis()
    # Scores near 1 differ in the second decimal: start the axis below the lowest one.
    low = max(0.0, min(0.9, math.floor(min(precision + recall) * 10) / 10 - 0.1))
    axis.set_xlim(low, 1.0)
    axis.set_xlabel("score" if low == 0 else f"score (the axis starts at {low:.1f})")
    axis.set_title(f"{split}: per class (n: support), macro F1 {result['macro_f1']:.4f}")
    axis.grid(axis="x", alpha=0.3)
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8)


def binary_curves(results: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """ROC and precision-recall curves of the positive class, one line per split."""
    plt = pyplot()
    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(11, 4.8))
    positive = ""
    for split, result in results.items():
        curves = result.get("curves")
        if not curves:
            continue
        positive = result["positive_class"]
        roc, pr = curves["roc"], curves["pr"]
        roc_axis.plot(
            roc["false_positive_rate"],
            roc["true_positive_rate"],
            label=f"{split} (AUC {result['auc']:.3f})",
        )
        pr_axis.plot(
            pr["recall"], pr["precision"], label=f"{split} (PR AUC {result['pr_auc']:.3f})"
        )
    roc_axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    roc_axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr_axis.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    for axis in (roc_axis, pr_axis):
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right" if axis is roc_axis else "lower left")
    figure.suptitle(f"positive class: {positive}")
    figure.tight_layout()
    save(figure, path)


def per_label(results: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """Precision, recall and F1 of every label, one panel per split (support in the ticks)."""
    plt = pyplot()
    splits = list(results)
    names = list(next(iter(results.values()))["per_class"])
    height = max(3.0, 0.45 * len(names) + 2.0)
    figure, axes = plt.subplots(
        1, len(splits), figsize=(6 * len(splits), height), squeeze=False, sharey=True
    )
    rows = np.arange(len(names))
    for axis, split in zip(axes[0], splits):
        scores = results[split]["per_class"]
        for offset, measure in zip((-0.27, 0.0, 0.27), ("precision", "recall", "f1")):
            values = [scores[name][measure] for name in names]
            axis.barh(rows + offset, values, height=0.26, label=measure)
        axis.set_yticks(rows, [f"{name} ({scores[name]['support']})" for name in names])
        axis.invert_yaxis()
        axis.set_xlim(0, 1)
        axis.set_title(
            f"{split}: micro F1 {results[split]['f1_micro']:.3f}, "
            f"Hamming loss {results[split]['hamming_loss']:.3f}"
        )
        axis.grid(axis="x", alpha=0.3)
    handles, legend_labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, legend_labels, loc="lower center", ncol=3)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    save(figure, path)


def training_curves(history: Mapping[str, Sequence[float]], path: Path) -> None:
    """Loss and accuracy per epoch, train against validation."""
    plt = pyplot()
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
    save(figure, path)
