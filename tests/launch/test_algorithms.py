"""The launchers read the algorithm table (smvision.schema.specs) and nothing else about algorithms:
a toy entry registered for one test gets its --algorithm choice, its default instance
types, its channel rules and its multi-host warning with no change to launch/.

In process and without AWS: every check here is made before a session is opened. That
`deploy` and `transform` serve on the table's serving instance type is tested against
the moto server (tests/launch/test_endpoints.py).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from launch import cli
from launch.common.errors import LaunchError
from launch.common.settings import SPECS, SettingName, Settings, resolve
from launch.local import cli as local_cli
from launch.training import train, tune
from smvision.schema import specs

NOW = datetime(2026, 11, 25, 22, 1, 32)
SETTINGS = [
    "--region",
    "us-east-1",
    "--role",
    "arn:aws:iam::123456789012:role/R",
    "--bucket",
    "data-bucket",
    "--image-uri",
    "repo/smvision:cpu",
]
TRAIN = ["--train", "s3://data-bucket/train"]
VALIDATION = ["--validation", "s3://data-bucket/validation"]
PRETRAINED = ["--pretrained", "s3://data-bucket/weights"]
TOY = replace(
    specs.get("svm"),
    name="toy",
    summary="a toy for the launchers' tests",
    training_instance_type="ml.c5.9xlarge",
    serving_instance_type="ml.c5.2xlarge",
    spans_hosts=False,
    required_channels=("train", "validation"),
    optional_channels=("test", "pretrained"),
)


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> dict[str, specs.AlgorithmSpec]:
    """The algorithm table with TOY added, for this test only."""
    with_toy = {**specs.table(), TOY.name: TOY}
    monkeypatch.setattr(specs, "table", lambda: with_toy)
    return with_toy


def parsed(*argv: str) -> tuple[argparse.Namespace, Settings]:
    args = cli.build_parser().parse_args(list(argv))
    flags: dict[SettingName, str | None] = {name: getattr(args, name) for name in SPECS}
    return args, resolve(flags, {}, None)


def train_plan(*argv: str) -> train.TrainingPlan:
    return train.plan(*parsed("train", *SETTINGS, *argv), NOW)


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`python -m launch COMMAND --help` as the user reads it, its lines joined."""
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.usefixtures("table")
@pytest.mark.parametrize("command", ["train", "tune"])
def test_algorithm_choices_and_help_come_from_the_table(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(command, capsys)
    assert "--algorithm {svm,rf,cnn,resnet50,toy}" in text
    assert f"{TOY.training_instance_type} for toy" in text
    assert "svm, rf, resnet50, toy" in text  # --pretrained: the algorithms that take weights
    assert parsed(command, *SETTINGS, "--algorithm", "toy")[0].algorithm == "toy"
    with pytest.raises(SystemExit):
        parsed(command, *SETTINGS, "--algorithm", "knn")
    refused = capsys.readouterr().err
    assert "argument --algorithm: invalid choice: 'knn'" in refused
    assert "toy" in refused.partition("choose from")[2]  # argparse's own list of the choices


@pytest.mark.usefixtures("table")
@pytest.mark.parametrize("command", ["deploy", "transform"])
def test_serving_help_names_each_algorithms_serving_type(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"{TOY.serving_instance_type} for toy" in help_of(command, capsys)


@pytest.mark.usefixtures("table")
def test_default_training_instance_type_is_the_algorithms() -> None:
    assert (
        train_plan("--algorithm", "toy", *TRAIN, *VALIDATION).definition.spec.instance_type
        == "ml.c5.9xlarge"
    )
    svm = train_plan("--algorithm", "svm", *TRAIN).definition.spec
    assert svm.instance_type == specs.get("svm").training_instance_type
    chosen = train_plan(
        "--algorithm", "toy", *TRAIN, *VALIDATION, "--instance-type", "ml.g5.xlarge"
    )
    assert chosen.definition.spec.instance_type == "ml.g5.xlarge"
    tuned = tune.plan(*parsed("tune", *SETTINGS, "--algorithm", "toy", *TRAIN, *VALIDATION), NOW)
    assert tuned.definition.spec.instance_type == "ml.c5.9xlarge"


@pytest.mark.usefixtures("table")
def test_channel_rules_come_from_the_table() -> None:
    needs = r"^--algorithm toy needs --validation \(or --validation-manifest\).$"
    with pytest.raises(LaunchError, match=needs):
        train_plan("--algorithm", "toy", *TRAIN)
    accepted = train_plan("--algorithm", "toy", *TRAIN, *VALIDATION, *PRETRAINED)
    assert accepted.definition.spec.channels["pretrained"].uri == "s3://data-bucket/weights"
    with pytest.raises(
        LaunchError,
        match="^--pretrained is read by svm, rf, resnet50, toy only; drop it for --algorithm cnn.$",
    ):
        train_plan("--algorithm", "cnn", *TRAIN, *PRETRAINED)


@pytest.mark.usefixtures("table")
def test_local_runs_apply_the_same_channel_rules(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    args, settings = parsed(
        "train",
        "--local",
        "--image-uri",
        "smvision:cpu",
        "--algorithm",
        "toy",
        "--train",
        str(tmp_path / "train"),
        "--output-dir",
        str(tmp_path / "job"),
    )
    needs = r"^--algorithm toy needs --validation \(or --validation-manifest\).$"
    with pytest.raises(LaunchError, match=needs):
        local_cli.plan_train(args, settings, NOW)


def test_the_multi_host_warning_follows_spans_hosts(
    table: dict[str, specs.AlgorithmSpec],
    capsys: pytest.CaptureFixture[str],
) -> None:
    train_plan("--algorithm", "toy", *TRAIN, *VALIDATION, "--instance-count", "2")
    assert "warning: toy trains on the first host only" in capsys.readouterr().err
    table["toy"] = replace(TOY, spans_hosts=True)
    train_plan("--algorithm", "toy", *TRAIN, *VALIDATION, "--instance-count", "2")
    assert capsys.readouterr().err == ""
