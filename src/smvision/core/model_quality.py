"""A trained model's test results as Model Monitor's model-quality statistics (stdlib only).

`register` attaches this document to a model package (ModelMetrics.ModelQuality.Statistics)
and the retraining pipeline's `gate` writes it for the package it registers; both build
it from the evaluation.json that `train` writes, and `gate` reads the accuracy of the
latest approved package back from it. The schema is Model Monitor's for multiclass
classification: {"multiclass_classification_metrics": {NAME: {"value": ...}, ...}}.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

FILE = "model_quality.json"
METRICS = "multiclass_classification_metrics"
EVALUATION_FILE = "evaluation.json"
# The retraining pipeline's property file, written by the image's `gate`: the new model's
# accuracy and that of the latest approved version (0 when there is none).
GATE_FILE = "gate.json"
NEW_ACCURACY = "new_accuracy"
APPROVED_ACCURACY = "approved_accuracy"
APPROVED_PACKAGE = "approved_package"
# The split that judges a model: test when the job had one, else validation.
SPLITS = ("test", "validation")


class EvaluationError(ValueError):
    """evaluation.json or a statistics document without what it must hold."""


def split_of(evaluation: Mapping[str, Any]) -> str:
    for split in SPLITS:
        if isinstance(evaluation.get(split), Mapping):
            return split
    raise EvaluationError(
        f"{EVALUATION_FILE} holds no test or validation results (it has "
        f"{sorted(evaluation) or 'nothing'}); train with a test channel."
    )


def from_evaluation(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The statistics document of evaluation.json's test (else validation) results."""
    split = split_of(evaluation)
    result = evaluation[split]
    if "label_confusion" in result:
        raise EvaluationError(
            f"{EVALUATION_FILE}: the {split} results are a multi-label model's, which Model "
            "Monitor's model-quality statistics (multiclass or binary) do not describe."
        )
    try:
        count = int(result["count"])
        accuracy = float(result["accuracy"])
        per_class = result["per_class"]
        matrix = result["confusion_matrix"]
        labels = [str(label) for label in matrix["labels"]]
        rows = matrix["matrix"]
        supports = {name: int(scores["support"]) for name, scores in per_class.items()}
        total = sum(supports.values()) or 1
        weighted = {
            measure: sum(float(per_class[n][measure]) * supports[n] for n in per_class) / total
            for measure in ("precision", "recall", "f1")
        }
    except (KeyError, TypeError, ValueError) as error:
        raise EvaluationError(
            f"{EVALUATION_FILE}: the {split} results lack {error}; it must be what smvision's "
            "train wrote."
        ) from error
    return {
        "version": 0.0,
        "dataset": {"split": split, "item_count": count},
        METRICS: {
            # The binomial standard error of the accuracy over the split's images.
            "accuracy": {
                "value": accuracy,
                "standard_deviation": math.sqrt(accuracy * (1 - accuracy) / max(count, 1)),
            },
            "weighted_precision": {"value": weighted["precision"]},
            "weighted_recall": {"value": weighted["recall"]},
            "weighted_f1": {"value": weighted["f1"]},
            "accuracy_best_constant_classifier": {"value": max(supports.values()) / total},
            "confusion_matrix": {
                truth: {guess: int(count) for guess, count in zip(labels, row)}
                for truth, row in zip(labels, rows)
            },
        },
    }


def accuracy_of(statistics: Mapping[str, Any], source: str) -> float:
    try:
        return float(statistics[METRICS]["accuracy"]["value"])
    except (KeyError, TypeError, ValueError) as error:
        raise EvaluationError(
            f"{source} has no {METRICS}.accuracy.value; it is not a model-quality statistics "
            "document."
        ) from error
