"""Answers and the request attributes that shape them: Accept negotiation, the custom
attributes (top_k, threshold, coverage, max_set_size, tta) and the response bodies (JSON,
JSON Lines, CSV).

Every JSON answer carries `out_of_distribution` (true, false, or null for a model trained
without the score). With `coverage=` it also carries the split-conformal `prediction_set`
and `abstained`; an abstaining answer has `"label": null` (and `predicted_label` null).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from smvision.core.media import (
    ACCEPT_TYPES,
    CSV,
    JSON,
    JSON_LINES,
)
from smvision.data.bodies import InputError
from smvision.schema.params import TTA_MODES

_WILDCARD_ACCEPT = {"*/*": JSON, "application/*": JSON, "text/*": CSV}


TOP_K_ATTRIBUTE = "top_k"


THRESHOLD_ATTRIBUTE = "threshold"


# A multi-label model's answer names the labels at or above this probability.
DEFAULT_THRESHOLD = 0.5

COVERAGE_ATTRIBUTE = "coverage"
MAX_SET_SIZE_ATTRIBUTE = "max_set_size"
TTA_ATTRIBUTE = "tta"


@dataclass(frozen=True)
class Judgement:
    """What the answers say besides the probabilities: per image, whether it looks unlike
    the training images (None: the model has no score), and with a coverage asked for, the
    prediction sets (a boolean per class) and the largest set the model answers with."""

    out_of_distribution: Sequence[bool] | None = None
    sets: np.ndarray | None = None
    coverage: float | None = None
    max_set_size: int = 1

    def abstained(self, row: int) -> bool:
        if self.sets is None:
            return False
        size = int(self.sets[row].sum())
        return size == 0 or size > self.max_set_size

    def flag(self, row: int) -> bool | None:
        return None if self.out_of_distribution is None else bool(self.out_of_distribution[row])


class UnsupportedAcceptError(ValueError):
    """An Accept header that names no type /invocations can answer in."""


def choose_accept(header: str | None) -> str:
    """The response type for an Accept header: its most preferred type that we can write."""
    if not header or not header.strip():
        return JSON
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        kind, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, kind.lower()))
    for negative_quality, _, kind in sorted(ranked):
        if negative_quality >= 0:
            break
        if kind in ACCEPT_TYPES:
            return kind
        if kind in _WILDCARD_ACCEPT:
            return _WILDCARD_ACCEPT[kind]
    raise UnsupportedAcceptError(
        f"Accept '{header}' names no type this server writes; accept one of "
        f"{', '.join(ACCEPT_TYPES)}."
    )


def _custom_attribute(custom_attributes: str | None, wanted: str) -> str | None:
    """One `name=value` of X-Amzn-SageMaker-Custom-Attributes (others are ignored)."""
    for attribute in (custom_attributes or "").replace(";", ",").split(","):
        name, separator, value = attribute.partition("=")
        if separator and name.strip().lower() == wanted:
            return value.strip()
    return None


def parse_top_k(custom_attributes: str | None) -> int | None:
    """`top_k=N` from the custom attributes: the N most likely classes' probabilities."""
    value = _custom_attribute(custom_attributes, TOP_K_ATTRIBUTE)
    if value is None:
        return None
    try:
        top_k = int(value)
    except ValueError:
        top_k = 0
    if top_k < 1:
        raise InputError(
            f"X-Amzn-SageMaker-Custom-Attributes has top_k={value!r}; "
            "use a whole number >= 1, such as top_k=3."
        )
    return top_k


def parse_threshold(custom_attributes: str | None) -> float | None:
    """`threshold=P` from the custom attributes: a multi-label model's answer names the
    labels whose probability is at least P (default 0.5); other models ignore it."""
    value = _custom_attribute(custom_attributes, THRESHOLD_ATTRIBUTE)
    if value is None:
        return None
    try:
        threshold = float(value)
    except ValueError:
        threshold = -1.0
    if not 0.0 <= threshold <= 1.0:
        raise InputError(
            f"X-Amzn-SageMaker-Custom-Attributes has threshold={value!r}; use a probability "
            "from 0 to 1, such as threshold=0.7."
        )
    return threshold


def parse_coverage(custom_attributes: str | None) -> float | None:
    """`coverage=P` from the custom attributes: answer a split-conformal prediction set that
    holds the true class with probability P, and abstain when it is not one class."""
    value = _custom_attribute(custom_attributes, COVERAGE_ATTRIBUTE)
    if value is None:
        return None
    try:
        coverage = float(value)
    except ValueError:
        coverage = -1.0
    if not 0.0 < coverage < 1.0:
        raise InputError(
            f"X-Amzn-SageMaker-Custom-Attributes has coverage={value!r}; use a probability "
            "between 0 and 1 (exclusive), such as coverage=0.9."
        )
    return coverage


def parse_max_set_size(custom_attributes: str | None) -> int | None:
    """`max_set_size=N`: with coverage=, answer sets of up to N classes (default 1)."""
    value = _custom_attribute(custom_attributes, MAX_SET_SIZE_ATTRIBUTE)
    if value is None:
        return None
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise InputError(
            f"X-Amzn-SageMaker-Custom-Attributes has max_set_size={value!r}; use a whole "
            "number >= 1, such as max_set_size=2."
        )
    return size


def parse_tta(custom_attributes: str | None) -> str | None:
    """`tta=flip|crops|none`: average the prediction over views of each image."""
    value = _custom_attribute(custom_attributes, TTA_ATTRIBUTE)
    if value is None:
        return None
    if value.lower() not in TTA_MODES:
        raise InputError(
            f"X-Amzn-SageMaker-Custom-Attributes has tta={value!r}; use one of "
            f"{', '.join(TTA_MODES)}, such as tta=flip."
        )
    return value.lower()


def encode_predictions(
    probabilities: np.ndarray,
    class_names: Sequence[str],
    accept: str,
    top_k: int | None,
    multi_label: bool = False,
    threshold: float | None = None,
    judgement: Judgement = Judgement(),
) -> bytes:
    """One prediction per row of probabilities, in the Accept type's format."""
    if multi_label:
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        return _encode_multi_label(probabilities, class_names, accept, top_k, threshold, judgement)
    rows: list[list[float]] = probabilities.tolist()
    best = probabilities.argmax(axis=1).tolist()
    labels = [None if judgement.abstained(row) else class_names[i] for row, i in enumerate(best)]
    if accept == CSV:  # an abstaining row has an empty label
        text = io.StringIO()
        writer = _csv_writer(text, class_names)
        writer.writerows((label or "", row[i]) for row, i, label in zip(rows, best, labels))
        return text.getvalue().encode()
    predictions = []
    for index, (row, i, label) in enumerate(zip(rows, best, labels)):
        prediction: dict[str, Any] = {
            "label": label,
            "probability": row[i],
            "probabilities": _probabilities(row, class_names, top_k),
            # The flat names SageMaker's built-in classifiers answer with, which Model
            # Monitor's model-quality jobs read (inference and probability attributes).
            "predicted_label": label,
            "out_of_distribution": judgement.flag(index),
        }
        if judgement.sets is not None:
            members = np.flatnonzero(judgement.sets[index]).tolist()
            prediction["prediction_set"] = [
                class_names[m] for m in sorted(members, key=lambda m: -row[m])
            ]
            prediction["abstained"] = judgement.abstained(index)
            prediction["coverage"] = judgement.coverage
        predictions.append(prediction)
    if accept == JSON_LINES:
        return "".join(json.dumps(p) + "\n" for p in predictions).encode()
    document: dict[str, Any] = {"predictions": predictions}
    if len(predictions) == 1:  # one image: its answer is also flat, at the top level
        document |= {
            "predicted_label": predictions[0]["label"],
            "probability": predictions[0]["probability"],
        }
    return json.dumps(document).encode()


def _encode_multi_label(
    probabilities: np.ndarray,
    class_names: Sequence[str],
    accept: str,
    top_k: int | None,
    threshold: float,
    judgement: Judgement = Judgement(),
) -> bytes:
    """Per image: the labels at or above the threshold, most likely first, and every
    label's probability (the top_k most likely with top_k). CSV: label,probability pairs."""
    rows: list[list[float]] = probabilities.tolist()
    chosen = [
        sorted((i for i, p in enumerate(row) if p >= threshold), key=lambda i: -row[i])
        for row in rows
    ]
    if accept == CSV:
        text = io.StringIO()
        writer = _csv_writer(text, class_names)
        writer.writerows(
            [value for i in picked for value in (class_names[i], row[i])]
            for row, picked in zip(rows, chosen)
        )
        return text.getvalue().encode()
    predictions = [
        {
            "labels": [class_names[i] for i in picked],
            "threshold": threshold,
            "probabilities": _probabilities(row, class_names, top_k),
            "out_of_distribution": judgement.flag(index),
        }
        for index, (row, picked) in enumerate(zip(rows, chosen))
    ]
    if accept == JSON_LINES:
        return "".join(json.dumps(p) + "\n" for p in predictions).encode()
    return json.dumps({"predictions": predictions}).encode()


def _csv_writer(text: io.StringIO, class_names: Sequence[str]) -> Any:
    """A CSV writer of `label,probability` lines. Python's quotes a field that holds the
    delimiter, a quote or "\n", not one that holds "\r", which readers take for a line
    break: when a class name holds one, every label is quoted."""
    if any("\r" in name for name in class_names):
        return csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    return csv.writer(text, lineterminator="\n")


def _probabilities(
    row: list[float], class_names: Sequence[str], top_k: int | None
) -> dict[str, float]:
    if top_k is None:
        return dict(zip(class_names, row))
    order = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:top_k]
    return {class_names[i]: row[i] for i in order}
