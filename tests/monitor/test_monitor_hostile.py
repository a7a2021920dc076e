"""The monitor over capture files a hostile world writes (issue 22): a malformed record is
skipped with its reason, answers that name classes the model lacks are a finding, and the
report is always written (exit status 0).

The baseline is the one a real `train` writes (svm on the validation digits); the captured
requests are real digit scans, recorded with answers as `serve`'s own encoder writes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smvision.core.media import JSON
from smvision.monitor.drift_report import REPORT_FILE, VIOLATIONS_FILE
from smvision.monitor.main import main
from smvision.serving.codecs import encode_predictions
from tests.support.capture import Exchange, record
from tests.support.training_jobs import run_local_train

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    job_dir = tmp_path_factory.mktemp("monitored-job")
    job = run_local_train("svm", {"train": digits / "validation"}, job_dir, {"image_size": "16"})
    assert job.returncode == 0, job.output[-2000:]
    return job_dir / "opt" / "ml" / "model"


def scans(digits: Path, count: int) -> list[tuple[str, bytes]]:
    """(digit, PNG bytes) of the first `count` test scans, every digit in turn."""
    by_digit = [sorted((digits / "test" / str(d)).glob("*.png")) for d in range(10)]
    return [(str(i % 10), by_digit[i % 10][i // 10].read_bytes()) for i in range(count)]


def records(digits: Path, count: int, label: Any = None) -> list[dict[str, Any]]:
    """Capture records of `count` scans, each answered with its own digit (or `label`)."""
    found = []
    for index, (digit, body) in enumerate(scans(digits, count)):
        names = [label(digit) if callable(label) else digit]
        answer = encode_predictions(np.array([[0.9]]), names, JSON, None)
        exchange = Exchange(
            body, "image/png", answer, JSON, f"id-{index}", START + timedelta(seconds=index)
        )
        found.append(record(exchange))
    return found


def write_records(folder: Path, lines: list[dict[str, Any] | str]) -> Path:
    path = folder / "endpoint" / "AllTraffic" / "2026" / "03" / "01" / "09" / "capture.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return folder


def run_monitor(
    model: Path, captured: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *options: str
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(out.parent / "opt-ml"))
    status = main(
        ["--baseline", str(model), "--captured", str(captured), "--output", str(out), *options]
    )
    report = json.loads((out / REPORT_FILE).read_text()) if (out / REPORT_FILE).exists() else {}
    violations = (
        json.loads((out / VIOLATIONS_FILE).read_text()) if (out / VIOLATIONS_FILE).exists() else {}
    )
    return status, report, violations


def test_malformed_records_are_skipped_with_their_reasons(
    trained: Path, digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = records(digits, 40)
    bad: list[dict[str, Any] | str] = [
        {**good[0], "eventMetadata": "2026-03-01T09:00:00Z"},
        {**good[1], "eventMetadata": ["2026-03-01T09:00:00Z"]},
        {**good[2], "captureData": {"endpointInput": ["not", "an", "object"]}},
        {**good[3], "eventMetadata": {"inferenceTime": 1772355600}},
        "[1, 2, 3]",
    ]
    captured = write_records(tmp_path / "captured", [*bad, *good[5:]])
    status, report, _ = run_monitor(
        trained, captured, tmp_path / "out", monkeypatch, "--since", "2026-03-01T08:00:00Z"
    )
    assert status == 0
    reasons = {
        entry["where"].rsplit(":", 1)[1]: entry["why"] for entry in report["captured"]["skipped"]
    }
    assert reasons["1"] == "eventMetadata is a JSON string, not an object"
    assert reasons["2"] == "eventMetadata is a JSON list, not an object"
    assert reasons["3"].startswith("the record has no captureData.endpointInput.data")
    assert reasons["4"] == (
        "eventMetadata.inferenceTime is 1772355600, not an ISO time such as 2026-03-01T09:00:00Z"
    )
    assert reasons["5"] == "not a capture record: it has no 'captureData' object"
    assert report["captured"]["images"] == 35


def test_an_inference_time_without_a_zone_is_utc_as_the_window_is(
    trained: Path, digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[dict[str, Any] | str] = []
    for entry in records(digits, 40):
        time = entry["eventMetadata"]["inferenceTime"]
        lines.append(
            {**entry, "eventMetadata": {**entry["eventMetadata"], "inferenceTime": time[:-1]}}
        )
    captured = write_records(tmp_path / "captured", lines)
    status, report, _ = run_monitor(
        trained,
        captured,
        tmp_path / "out",
        monkeypatch,
        "--since",
        "2026-03-01T09:00:10",
        "--until",
        "2026-03-01T09:00:30Z",
    )
    assert status == 0
    assert report["captured"]["records"] == 20 and report["captured"]["skipped_records"] == 0


@pytest.mark.parametrize(
    ("rename", "named"),
    [
        (lambda digit: "cat" if digit in "012" else digit, "['cat'] (18 of 60 answers)"),
        (lambda digit: "dog" if int(digit) % 2 else "cat", "['cat', 'dog'] (60 of 60 answers)"),
    ],
    ids=["some", "all"],
)
def test_answers_with_classes_the_model_lacks_are_a_finding(
    rename: Callable[[str], str],
    named: str,
    trained: Path,
    digits: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured = write_records(tmp_path / "captured", list(records(digits, 60, label=rename)))
    status, report, violations = run_monitor(trained, captured, tmp_path / "out", monkeypatch)
    assert status == 0
    [finding] = [v for v in violations["violations"] if v["feature_name"] == "predicted_class"]
    assert f"The answers name classes the model does not have: {named}" in finding["description"]
    assert report["violations"] == len(violations["violations"])
    assert (tmp_path / "out" / "predictions.png").exists()
