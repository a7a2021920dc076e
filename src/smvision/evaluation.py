"""Evaluation of predicted probabilities: the numbers, evaluation.json and the plots.

Single-label models (labels: class indices) get accuracy, log loss, macro F1, per-class
scores and a confusion matrix; with two classes also precision, recall, F1, ROC AUC and
PR AUC of the positive (second) class and the curves behind the AUCs. Multi-label
models (labels: a 0/1 matrix) get per-label scores at a probability threshold, micro
and macro F1, Hamming loss, subset accuracy and binary cross-entropy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    log_loss,
    multilabel_confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

DEFAULT_THRESHOLD = 0.5
# Points kept of a ROC or PR curve in evaluation.json: enough to draw it.
CURVE_POINTS = 200
_EPSILON = 1e-7


def evaluate(
    proba: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    sources: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Every measure of one split; `labels` is a vector of class indices, or a 0/1 matrix
    (one column per class) for a multi-label model, whose `threshold` makes predictions."""
    if labels.ndim == 2:
        return evaluate_multi_label(proba, labels, class_names, sources, threshold)
    result = evaluate_single_label(proba, labels, class_names, sources)
    if len(class_names) == 2:
        result |= binary_measures(proba[:, 1], labels, class_names)
    return result


def evaluate_single_label(
    proba: np.ndarray, labels: np.ndarray, class_names: Sequence[str], sources: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, log loss, macro F1, per-class scores, confusion matrix and per-image results."""
    indices = list(range(len(class_names)))
    predicted = proba.argmax(axis=1)
    clipped = np.clip(proba.astype(np.float64), _EPSILON, 1.0)
    return {
        "count": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "loss": float(
            log_loss(labels, clipped / clipped.sum(axis=1, keepdims=True), labels=indices)
        ),
        "macro_f1": float(
            f1_score(labels, predicted, labels=indices, average="macro", zero_division=0)
        ),
        "per_class": _per_class(labels, predicted, class_names, indices),
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


def _per_class(
    truth: np.ndarray, predicted: np.ndarray, class_names: Sequence[str], indices: list[int] | None
) -> dict[str, dict[str, float | int]]:
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=indices, zero_division=0
    )
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }


def binary_measures(
    positive: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Precision, recall, F1 (at the argmax), ROC AUC and PR AUC of the second class.

    The AUCs are None when the split holds one class only: they are undefined there.
    """
    truth = labels == 1
    predicted = positive >= DEFAULT_THRESHOLD
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, average="binary", zero_division=0
    )
    both = bool(truth.any() and not truth.all())
    result: dict[str, Any] = {
        "positive_class": class_names[1],
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "auc": float(roc_auc_score(truth, positive)) if both else None,
        "pr_auc": float(average_precision_score(truth, positive)) if both else None,
    }
    if both:
        fpr, tpr, _ = roc_curve(truth, positive)
        curve_precision, curve_recall, _ = precision_recall_curve(truth, positive)
        result["curves"] = {
            "roc": {"false_positive_rate": _thin(fpr), "true_positive_rate": _thin(tpr)},
            "pr": {"recall": _thin(curve_recall), "precision": _thin(curve_precision)},
        }
    return result


def _thin(values: np.ndarray) -> list[float]:
    """At most CURVE_POINTS + 1 evenly spaced points of a curve, both ends kept."""
    if len(values) > CURVE_POINTS + 1:
        values = values[np.linspace(0, len(values) - 1, CURVE_POINTS + 1).round().astype(int)]
    return [round(float(v), 6) for v in values]


def evaluate_multi_label(
    proba: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    sources: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Per-label scores, micro and macro F1, Hamming loss, subset accuracy, cross-entropy."""
    truth = labels.astype(bool)
    predicted = proba >= threshold
    clipped = np.clip(proba.astype(np.float64), _EPSILON, 1.0 - _EPSILON)
    cross_entropy = -(truth * np.log(clipped) + (~truth) * np.log(1.0 - clipped)).mean()
    subset = float(accuracy_score(truth, predicted))
    confusion = multilabel_confusion_matrix(truth, predicted)
    return {
        "count": int(len(labels)),
        "threshold": threshold,
        "accuracy": subset,
        "subset_accuracy": subset,
        "loss": float(cross_entropy),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "f1_micro": float(f1_score(truth, predicted, average="micro", zero_division=0)),
        "hamming_loss": float(hamming_loss(truth, predicted)),
        "per_class": _per_class(truth, predicted, class_names, None),
        "label_confusion": {
            name: {"rows_are": "true no, yes", "matrix": confusion[i].tolist()}
            for i, name in enumerate(class_names)
        },
        "predictions": [
            {
                "source": source,
                "labels": [class_names[int(i)] for i in np.flatnonzero(truth[row])],
                "predicted": [class_names[int(i)] for i in np.flatnonzero(predicted[row])],
                "probabilities": {
                    name: round(float(p), 6) for name, p in zip(class_names, proba[row])
                },
            }
            for row, source in enumerate(sources)
        ],
    }


# Pictures ---------------------------------------------------------------------------------


def plot_results(results: Mapping[str, Mapping[str, Any]], directory: Path) -> list[Path]:
    """The pictures that fit the results (confusion matrices; per-label scores for a
    multi-label model; ROC and PR curves for two classes) in `directory`; their paths."""
    if not results:
        return []
    first = next(iter(results.values()))
    written = []
    if "label_confusion" in first:
        written.append(directory / "per_label.png")
        plot_per_label(results, written[-1])
    else:
        written.append(directory / "confusion_matrix.png")
        plot_confusion_matrices(results, written[-1])
    if any("curves" in result for result in results.values()):
        written.append(directory / "roc_pr_curves.png")
        plot_binary_curves(results, written[-1])
    return written


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


def plot_binary_curves(results: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """ROC and precision-recall curves of the positive class, one line per split."""
    plt = _pyplot()
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
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_per_label(results: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """Precision, recall and F1 of every label, one panel per split (support in the ticks)."""
    plt = _pyplot()
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
