"""Answers and the request attributes that shape them: Accept negotiation, the custom
attributes (top_k, threshold) and the response bodies (JSON, JSON Lines, CSV).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from smvision.core.media import (
    ACCEPT_TYPES,
    CSV,
    JSON,
    JSON_LINES,
)
from smvision.data.bodies import InputError

_WILDCARD_ACCEPT = {"*/*": JSON, "application/*": JSON, "text/*": CSV}


TOP_K_ATTRIBUTE = "top_k"


THRESHOLD_ATTRIBUTE = "threshold"


# A multi-label model's answer names the labels at or above this probability.
DEFAULT_THRESHOLD = 0.5


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


def encode_predictions(
    probabilities: np.ndarray,
    class_names: Sequence[str],
    accept: str,
    top_k: int | None,
    multi_label: bool = False,
    threshold: float | None = None,
) -> bytes:
    """One prediction per row of probabilities, in the Accept type's format."""
    if multi_label:
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        return _encode_multi_label(probabilities, class_names, accept, top_k, threshold)
    rows: list[list[float]] = probabilities.tolist()
    best = probabilities.argmax(axis=1).tolist()
    if accept == CSV:
        text = io.StringIO()
        writer = _csv_writer(text, class_names)
        writer.writerows((class_names[i], row[i]) for row, i in zip(rows, best))
        return text.getvalue().encode()
    predictions = [
        {
            "label": class_names[i],
            "probability": row[i],
            "probabilities": _probabilities(row, class_names, top_k),
            # The flat names SageMaker's built-in classifiers answer with, which Model
            # Monitor's model-quality jobs read (inference and probability attributes).
            "predicted_label": class_names[i],
        }
        for row, i in zip(rows, best)
    ]
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
        }
        for row, picked in zip(rows, chosen)
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
