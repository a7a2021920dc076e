"""Evaluation of predicted probabilities: the numbers of evaluation.json (pictures: explain/).

Single-label models (labels: class indices) get accuracy, log loss, macro F1, per-class
scores and a confusion matrix; with two classes also precision, recall, F1, ROC AUC and
PR AUC of the positive (second) class and the curves behind the AUCs. Multi-label
models (labels: a 0/1 matrix) get per-label scores at a probability threshold, micro
and macro F1, Hamming loss, subset accuracy and binary cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    subset = float(accuracy_score(truth, predicted))
    confusion = multilabel_confusion_matrix(truth, predicted)
    return {
        "count": int(len(labels)),
        "threshold": threshold,
        "accuracy": subset,
        "subset_accuracy": subset,
        "loss": binary_cross_entropy(proba, truth),
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


def measure(name: str, proba: np.ndarray, labels: np.ndarray) -> float | None:
    """One measure, computed alone (each epoch's validation:f1_micro or EVAL_METRIC):
    f1_micro of a multi-label 0/1 matrix, or a binary measure of two classes."""
    if name == "f1_micro":
        predicted = proba >= DEFAULT_THRESHOLD
        return float(f1_score(labels.astype(bool), predicted, average="micro", zero_division=0))
    value = binary_measures(proba[:, 1], labels, ("negative", "positive"))[name]
    return None if value is None else float(value)


def binary_cross_entropy(proba: np.ndarray, truth: np.ndarray) -> float:
    """Mean binary cross-entropy of per-label probabilities against a 0/1 matrix."""
    clipped = np.clip(proba.astype(np.float64), _EPSILON, 1.0 - _EPSILON)
    positive = truth.astype(bool)
    return float(-(positive * np.log(clipped) + ~positive * np.log(1.0 - clipped)).mean())
