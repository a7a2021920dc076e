"""Metric lines in job logs, and the regexes SageMaker uses to read them.

Every metric is printed on a line of its own as `NAME=VALUE`. `METRIC_DEFINITIONS` is
the Name/Regex list a training or tuning job is given; it is pure data, so the
launchers can import it without the training stack.
"""

from __future__ import annotations

import math
import sys
from typing import TextIO

SPLITS = ("train", "validation", "test")
MEASURES = ("accuracy", "loss", "macro_f1")
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

METRIC_NAMES = tuple(f"{split}:{measure}" for split in SPLITS for measure in MEASURES) + (
    "train:images_per_second",
)

METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": name, "Regex": rf"(?:^|\s){name}={_NUMBER}"} for name in METRIC_NAMES
]


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
