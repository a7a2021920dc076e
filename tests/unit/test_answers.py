"""What the answers say besides probabilities (smvision.serving.codecs): the custom
attributes coverage=, max_set_size= and tta=, prediction sets, abstention and the
out-of-distribution flag; and how the launcher and compare show the data report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from launch.training.train import data_report_lines
from smvision.comparison.assessment import assess
from smvision.comparison.report import render_markdown
from smvision.core.media import CSV, JSON, JSON_LINES
from smvision.data.bodies import InputError
from smvision.serving.codecs import (
    Judgement,
    encode_predictions,
    parse_coverage,
    parse_max_set_size,
    parse_tta,
)

NAMES = ["cat", "dog", "fox"]
PROBABILITIES = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]], np.float32)


def test_attributes_parse_and_bad_ones_say_what_to_send() -> None:
    assert parse_coverage("top_k=2, coverage=0.9") == 0.9
    assert parse_max_set_size("max_set_size=3") == 3
    assert parse_tta("tta=FLIP") == "flip"
    assert parse_coverage(None) is None and parse_tta("top_k=1") is None
    assert parse_max_set_size("") is None
    for parse, value, hint in (
        (parse_coverage, "coverage=1", "coverage=0.9"),
        (parse_coverage, "coverage=high", "coverage=0.9"),
        (parse_max_set_size, "max_set_size=0", "max_set_size=2"),
        (parse_tta, "tta=rotate", "tta=flip"),
    ):
        with pytest.raises(InputError, match=hint):
            parse(value)


def test_answers_carry_sets_abstention_and_the_flag() -> None:
    sets = np.array([[True, False, False], [True, True, False]])
    judgement = Judgement([False, True], sets, 0.9, 1)
    first, second = json.loads(
        encode_predictions(PROBABILITIES, NAMES, JSON, None, judgement=judgement)
    )["predictions"]
    assert first["label"] == first["predicted_label"] == "cat" and not first["abstained"]
    assert first["prediction_set"] == ["cat"] and first["out_of_distribution"] is False
    assert second["label"] is None and second["predicted_label"] is None
    assert second["abstained"] and second["prediction_set"] == ["cat", "dog"]
    assert second["out_of_distribution"] is True and second["probability"] == pytest.approx(0.4)
    wider = Judgement(None, sets, 0.9, 2)
    lines = encode_predictions(PROBABILITIES, NAMES, JSON_LINES, None, judgement=wider)
    answers = [json.loads(line) for line in lines.decode().splitlines()]
    assert [a["abstained"] for a in answers] == [False, False]
    assert all(a["out_of_distribution"] is None for a in answers)
    rows = encode_predictions(PROBABILITIES, NAMES, CSV, None, judgement=judgement).decode()
    assert rows.splitlines()[1].startswith(",0.4")
    plain = json.loads(encode_predictions(PROBABILITIES, NAMES, JSON, None))["predictions"]
    assert all("prediction_set" not in p and p["out_of_distribution"] is None for p in plain)
    multi = json.loads(
        encode_predictions(PROBABILITIES, NAMES, JSON, None, True, 0.3, Judgement([True, False]))
    )["predictions"]
    assert [p["out_of_distribution"] for p in multi] == [True, False]


def test_the_launcher_prints_the_data_report_summary() -> None:
    summary = ["Data report: 10 train images inspected in 1.0 s.", "Duplicates: none."]
    lines = data_report_lines({"data_report": {"summary": summary}})
    assert lines[0] == summary[0] and lines[1] == "  " + summary[1]
    assert "data_report.json" in lines[-1]
    assert "data_report=false" in data_report_lines({"accuracy": 0.9})[0]


def test_compare_opens_with_the_data_report(tmp_path: Path) -> None:
    data = {
        "summary": ["Data report: 5 train images inspected in 0.1 s."],
        "source": "jobs/svm/opt/ml/output/data/data_report.json",
        "pictures": {"duplicates": "jobs/svm/opt/ml/output/data/data_report_duplicates.png"},
    }
    text = render_markdown(assess([], "t"), data=data)
    assert "## The data" in text and "- Data report: 5 train images" in text
    assert "![duplicates](jobs/svm/opt/ml/output/data/data_report_duplicates.png)" in text
