"""The data report and the abstention files of a real training job (`smvision.local
train` as a subprocess over the digits), and `smvision.local inspect`."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import betabinom

from smvision.local import cli
from tests.support.pictures import assert_picture
from tests.support.training_jobs import TrainJob

SPLITS = ("train", "validation", "test")


@pytest.fixture
def leaky_digits(digits: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """The digits with 30 test images copied into train (under other names)."""
    root = tmp_path / "leaky"
    shutil.copytree(digits, root)
    copied = sorted((root / "test").rglob("*.png"))[::12][:30]
    for path in copied:
        shutil.copy(path, root / "train" / path.parent.name / f"copy-{path.name}")
    return root, [f"{p.parent.name}/{p.name}" for p in copied]


def test_a_job_reports_its_data_and_calibrates_abstention(
    train_job: TrainJob, leaky_digits: tuple[Path, list[str]]
) -> None:
    root, copied = leaky_digits
    job = train_job("svm", {s: root / s for s in SPLITS}, {"image_size": "32"})
    assert job.returncode == 0, job.output[-3000:]
    out = job.ml / "output" / "data"
    report = json.loads((out / "data_report.json").read_text())
    leaked = {
        path
        for entry in report["duplicates"]
        if entry["across_splits"]
        for path, split in zip(entry["paths"], entry["splits"])
        if split == "test"
    }
    assert set(copied) <= leaked
    assert report["leakage"]["test"]["images"] >= len(copied)
    without = report["accuracy_without_duplicates"]["test"]
    assert without["duplicates_removed"] >= len(copied) and without["model"] == "svm"
    assert all({"path", "given_label", "suggested_label"} <= set(e) for e in report["label_issues"])
    for picture in report["pictures"].values():
        assert_picture(out / picture)
    assert "Data report:" in job.output and "inspected in" in job.output
    evaluation = job.evaluation
    assert evaluation["data_report"]["summary"] == report["summary"]
    assert {"conformal.json", "ood.npz"} <= {p.name for p in (job.ml / "model").iterdir()}
    conformal = evaluation["conformal"]
    test_images, validation_images = conformal["test_images"], conformal["validation_images"]
    # Coverage 0.9 on 360 test images calibrated on 359: outside 0.9 +/- 0.12 with
    # probability 3.3e-6 (beta-binomial, as tests/unit/test_conformal.py computes it).
    outside = math.floor((validation_images + 1) * 0.1)
    law = betabinom(test_images, validation_images + 1 - outside, outside)
    low, high = math.ceil(test_images * 0.78), math.floor(test_images * 1.02)
    assert law.cdf(low - 1) + law.sf(high) < 1e-5
    assert abs(conformal["coverage"] - 0.9) <= 0.12
    assert conformal["abstention_rate"] + conformal["answered"] / test_images == pytest.approx(1)
    assert 0 <= evaluation["out_of_distribution"]["test_flagged_rate"] <= 0.1


def test_leakage_past_max_leakage_fails_the_job_before_training(
    train_job: TrainJob, leaky_digits: tuple[Path, list[str]]
) -> None:
    root, copied = leaky_digits
    job = train_job(
        "svm", {s: root / s for s in SPLITS}, {"image_size": "32", "max_leakage": "0.01"}
    )
    assert job.returncode != 0
    assert "max_leakage=0.01" in job.failure and "test images" in job.failure
    assert "Training took" not in job.output
    report = json.loads((job.ml / "output" / "data" / "data_report.json").read_text())
    assert report["leakage"]["test"]["share"] > 0.01


def test_data_report_false_writes_none(train_job: TrainJob, digits: Path) -> None:
    job = train_job(
        "svm",
        {"train": digits / "train", "test": digits / "test"},
        {"image_size": "16", "data_report": "false", "tta": "flip"},
    )
    assert job.returncode == 0, job.output[-3000:]
    assert not (job.ml / "output" / "data" / "data_report.json").exists()
    tta = job.evaluation["tta"]
    assert tta["mode"] == "flip" and 0 <= tta["test"]["accuracy"] <= 1
    assert "accuracy_without" in tta["test"]


def test_inspect_writes_the_report_alone(
    leaky_digits: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, copied = leaky_digits
    out = tmp_path / "report"
    arguments = ["inspect", "--out", str(out), "--hp", "image_size=16", "--hp", "max_leakage=0.05"]
    for split in ("train", "test"):
        arguments += ["--channel", f"{split}={root / split}"]
    status = cli.main(arguments)
    printed = capsys.readouterr().out
    assert status == 1 and "passes max_leakage=0.05" in printed
    report = json.loads((out / "data_report.json").read_text())
    assert report["images"] == {"train": len(list((root / "train").rglob("*.png"))), "test": 360}
    probe = report["accuracy_without_duplicates"]["test"]
    assert probe["duplicates_removed"] >= len(copied) and "probe" in probe["model"]
    assert np.isfinite(probe["accuracy_without_duplicates"])
