"""Generated request attributes and answers (hypothesis) against smvision.serving.codecs.

Any X-Amzn-SageMaker-Custom-Attributes (SageMaker forwards up to 1024 visible ASCII
characters) gives top_k and threshold or an InputError with a sentence, and a well-formed
attribute is read whatever surrounds it; any Accept gives an answer type or an
UnsupportedAcceptError; and any probabilities and class names encode to answers that
parse back to what was encoded, in JSON, JSON Lines and CSV. The number of examples is the
hypothesis profile's (tests/support/hypothesis_profiles.py).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smvision.core.media import ACCEPT_TYPES, CSV, JSON, JSON_LINES
from smvision.data.bodies import InputError
from smvision.serving.codecs import (
    UnsupportedAcceptError,
    choose_accept,
    encode_predictions,
    parse_threshold,
    parse_top_k,
)

VISIBLE_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
ATTRIBUTES = st.text(VISIBLE_ASCII, max_size=1024)
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
OTHER_ATTRIBUTE = st.tuples(
    st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=8),
    st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7A), max_size=8),
).filter(lambda pair: pair[0] not in ("top_k", "threshold"))


def refused_with_a_sentence(error: InputError) -> None:
    message = str(error)
    assert message.startswith("X-Amzn-SageMaker-Custom-Attributes has "), message


@given(attributes=ATTRIBUTES | st.text(max_size=64))
def test_any_custom_attributes_give_top_k_and_threshold_or_a_sentence(attributes: str) -> None:
    try:
        top_k = parse_top_k(attributes)
        assert top_k is None or top_k >= 1
    except InputError as error:
        refused_with_a_sentence(error)
    try:
        threshold = parse_threshold(attributes)
        assert threshold is None or 0.0 <= threshold <= 1.0
    except InputError as error:
        refused_with_a_sentence(error)


@given(
    top_k=st.integers(1, 10**6),
    threshold=st.floats(0.0, 1.0),
    others=st.lists(OTHER_ATTRIBUTE, max_size=4),
    separator=st.sampled_from([",", ";", ", ", " ; "]),
    upper=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_a_well_formed_top_k_and_threshold_are_read_among_any_others(
    top_k: int,
    threshold: float,
    others: list[tuple[str, str]],
    separator: str,
    upper: bool,
    order: Any,
) -> None:
    names = ("TOP_K", "Threshold") if upper else ("top_k", "threshold")
    attributes = [f"{names[0]}={top_k}", f" {names[1]} = {threshold!r}"]
    attributes += [f"{name}={value}" for name, value in others]
    order.shuffle(attributes)
    header = separator.join(attributes)
    assert parse_top_k(header) == top_k
    assert parse_threshold(header) == threshold


@given(header=st.text(max_size=200) | st.just("") | st.none())
def test_any_accept_header_gives_an_answer_type_or_a_sentence(header: str | None) -> None:
    try:
        assert choose_accept(header) in ACCEPT_TYPES
    except UnsupportedAcceptError as error:
        assert str(error).startswith("Accept '"), error


@given(
    offered=st.lists(
        st.tuples(
            st.sampled_from([*ACCEPT_TYPES, "image/png", "application/xml"]),
            st.sampled_from([None, "1", "0.9", "0.5", "0.1", "0"]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_accept_picks_the_most_preferred_type_it_writes(
    offered: list[tuple[str, str | None]],
) -> None:
    header = ", ".join(kind if q is None else f"{kind};q={q}" for kind, q in offered)
    preference = sorted(  # by quality, then by position; q=0 is "not acceptable"
        (-(1.0 if q is None else float(q)), position, kind)
        for position, (kind, q) in enumerate(offered)
    )
    wanted = next((k for minus_q, _, k in preference if minus_q < 0 and k in ACCEPT_TYPES), None)
    if wanted is None:
        with pytest.raises(UnsupportedAcceptError):
            choose_accept(header)
    else:
        assert choose_accept(header) == wanted


@st.composite
def predictions(draw: st.DrawFn) -> tuple[np.ndarray, list[str]]:
    """Probabilities (rows summing to 1) over distinct class names of any text."""
    classes = draw(st.lists(NAMES, min_size=2, max_size=6, unique=True))
    rows = draw(st.integers(1, 5))
    weights = draw(hnp.arrays(np.float64, (rows, len(classes)), elements=st.floats(0.001, 1000.0)))
    probabilities = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    return probabilities, classes


# Found by the thorough profile: a class name holding a carriage return, unquoted in CSV.
CARRIAGE_RETURN = (np.array([[0.75, 0.25]], np.float32), ["cat\rdog", "bird"])


@example(case=CARRIAGE_RETURN, top_k=None)
@given(case=predictions(), top_k=st.none() | st.integers(1, 8))
def test_answers_parse_back_to_the_probabilities_in_every_type(
    case: tuple[np.ndarray, list[str]], top_k: int | None
) -> None:
    probabilities, classes = case
    best = probabilities.argmax(axis=1)

    document = json.loads(encode_predictions(probabilities, classes, JSON, top_k))
    lines = encode_predictions(probabilities, classes, JSON_LINES, top_k).decode()
    assert [json.loads(line) for line in lines.splitlines()] == document["predictions"]
    for prediction, row, index in zip(document["predictions"], probabilities, best):
        assert prediction["label"] == prediction["predicted_label"] == classes[index]
        assert prediction["probability"] == float(row[index])
        kept = list(prediction["probabilities"].items())
        if top_k is None:
            assert kept == [(name, float(p)) for name, p in zip(classes, row)]
        else:
            assert len(kept) == min(top_k, len(classes))
            assert [p for _, p in kept] == sorted((p for _, p in kept), reverse=True)
            assert kept[0] == (classes[index], float(row[index]))
    if len(probabilities) == 1:
        assert document["predicted_label"] == classes[best[0]]

    text = encode_predictions(probabilities, classes, CSV, top_k).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert [(label, float(p)) for label, p in rows] == [
        (classes[index], float(row[index])) for row, index in zip(probabilities, best)
    ]


@example(case=CARRIAGE_RETURN, threshold=0.5)
@given(case=predictions(), threshold=st.floats(0.0, 1.0))
def test_a_multi_label_answer_names_the_labels_at_or_over_the_threshold(
    case: tuple[np.ndarray, list[str]], threshold: float
) -> None:
    probabilities, classes = case
    document = json.loads(
        encode_predictions(
            probabilities, classes, JSON, None, multi_label=True, threshold=threshold
        )
    )
    for prediction, row in zip(document["predictions"], probabilities):
        expected = [classes[i] for i in np.argsort(-row, kind="stable") if row[i] >= threshold]
        assert sorted(prediction["labels"]) == sorted(expected)
        chances = [float(row[classes.index(label)]) for label in prediction["labels"]]
        assert chances == sorted(chances, reverse=True)
        assert prediction["threshold"] == threshold
    text = encode_predictions(
        probabilities, classes, CSV, None, multi_label=True, threshold=threshold
    ).decode()
    for line, prediction in zip(csv.reader(io.StringIO(text)), document["predictions"]):
        assert line[0::2] == prediction["labels"]
