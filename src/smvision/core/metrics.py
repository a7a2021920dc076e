"""Metric lines in job logs, and the regexes SageMaker uses to read them.

Every metric is printed on a line of its own as `NAME=VALUE`. `METRIC_DEFINITIONS` is
the Name/Regex list a training or tuning job is given; it is pure data, so the
launchers can import it without the training stack.

Which measures a model gets depends on its labels: every model reports MEASURES; a
model of two classes adds BINARY_MEASURES (the second class in class order is the
positive one); a multi-label model adds MULTI_LABEL_MEASURES (its `accuracy` is subset
accuracy, its `loss` binary cross-entropy, its `macro_f1` the mean of per-label F1).
"""

from __future__ import annotations

import math
import sys
from typing import Literal, TextIO

SPLITS = ("train", "validation", "test")
MEASURES = ("accuracy", "loss", "macro_f1")
BINARY_MEASURES = ("precision", "recall", "f1", "auc", "pr_auc")
MULTI_LABEL_MEASURES = ("f1_micro", "hamming_loss", "subset_accuracy")
ALL_MEASURES = MEASURES + BINARY_MEASURES + MULTI_LABEL_MEASURES
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

# svm and rf with cv_folds: the mean and spread of k-fold cross-validation.
CROSS_VALIDATION = tuple(
    f"cv:{measure}_{statistic}"
    for measure in ("accuracy", "macro_f1")
    for statistic in ("mean", "std")
)

METRIC_NAMES = (
    tuple(f"{split}:{measure}" for split in SPLITS for measure in ALL_MEASURES)
    + ("train:images_per_second",)
    + CROSS_VALIDATION
)

METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": name, "Regex": rf"(?:^|\s){name}={_NUMBER}"} for name in METRIC_NAMES
]

Direction = Literal["Maximize", "Minimize"]
_LOWER_IS_BETTER = frozenset({"loss", "hamming_loss"})


def direction(measure: str) -> Direction:
    """How a tuning job should move a measure (validation:loss down, the rest up)."""
    if measure not in ALL_MEASURES:
        raise ValueError(f"Unknown measure {measure!r}; known: {', '.join(ALL_MEASURES)}.")
    return "Minimize" if measure in _LOWER_IS_BETTER else "Maximize"


def measures_for(class_count: int, multi_label: bool) -> tuple[str, ...]:
    """The measures a model of `class_count` classes reports for each evaluated split."""
    if multi_label:
        return MEASURES + MULTI_LABEL_MEASURES
    return MEASURES + BINARY_MEASURES if class_count == 2 else MEASURES


def format_metric(name: str, value: float) -> str:
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}; add it to METRIC_NAMES so SageMaker reads it.")
    if not math.isfinite(value):
        raise ValueError(f"Metric {name} is {value}; SageMaker cannot chart it.")
    return f"{name}={value:.6g}"


def emit(name: str, value: float, stream: TextIO | None = None) -> None:
    """Print one metric on a line of its own, flushed, so CloudWatch gets it at once."""
    out = stream or sys.stdout
    out.write(format_metric(name, value) + "\n")
    out.flush()
