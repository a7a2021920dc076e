"""The launchers without AWS: help, imports, settings, and every check made on the laptop."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from launch import cli
from launch.common.errors import AwsError, Interrupted, LaunchError
from launch.common.parsing import (
    S3Uri,
    capacity_range,
    model_package_arn,
    resource_name,
    s3_uri,
    timestamped_name,
)
from launch.common.settings import SPECS, SettingName, resolve
from launch.hosting import invocation, invoke
from launch.training import ranges, tune
from launch.training.spec import validated_hyperparameters
from smvision.core import media
from smvision.schema.hyperparameters import TuningRange, tuning_ranges
from tests.support.moto_server import SDK_CONFIG
from tests.support.photos import encode, grey_photo, photo

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (
    "train",
    "tune",
    "deploy",
    "add-model",
    "invoke",
    "transform",
    "cleanup",
    "register",
    "approve",
    "compare",
    "rekognition analyze",
    "rekognition custom-labels",
    "monitor",
    "pipeline create",
    "pipeline start",
    "pipeline status",
)
# What the launchers may load of the package: the standard-library layers, the comparison
# (its plots import matplotlib only when drawn) and the monitor's thresholds (.importlinter).
LAUNCH_MAY_LOAD = (
    "smvision.core",
    "smvision.schema",
    "smvision.comparison",
    "smvision.monitor.thresholds",
)


def subcommand_parsers(
    parser: argparse.ArgumentParser | None = None, prefix: str = ""
) -> dict[str, argparse.ArgumentParser]:
    """Every command's own parser, nested ones by their full name ("rekognition analyze")."""
    parser = parser or cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found: dict[str, argparse.ArgumentParser] = {}
    for name, child in action.choices.items():
        nested = any(isinstance(a, argparse._SubParsersAction) for a in child._actions)
        found |= (
            subcommand_parsers(child, f"{prefix}{name} ") if nested else {f"{prefix}{name}": child}
        )
    return found


def test_every_option_of_every_command_has_help() -> None:
    parsers = subcommand_parsers()
    assert set(parsers) == set(COMMANDS)
    for name, parser in parsers.items():
        for action in parser._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_runs_and_lists_every_option(command: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "launch", *command.split(), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    text = " ".join(completed.stdout.split())
    for action in subcommand_parsers()[command]._actions:
        for option in action.option_strings or [str(action.metavar or action.dest)]:
            assert option in text, (command, option)
    for setting in (
        "--region",
        "SMVISION_REGION",
        "--role",
        "SMVISION_ROLE",
        "--bucket",
        "SMVISION_BUCKET",
        "--image-uri",
        "SMVISION_IMAGE_URI",
        "--config",
    ):
        assert setting in text


# Third-party packages launch/ may import besides the package's stdlib-only modules: the
# SDK, its AWS clients and rich for progress. Never the training stack.
LAUNCH_THIRD_PARTY = {"boto3", "botocore", "sagemaker", "rich", "PIL"}
TRAINING_STACK = {"tensorflow", "keras", "sklearn", "cv2", "numpy"}

IMPORT_PROBE = """
import importlib, json, pkgutil, sys
import launch
from launch import cli
for argv in (["train", "--help"], ["tune", "--help"]):
    try:
        cli.main(argv)
    except SystemExit:
        pass
settings = ["--region", "us-east-1", "--role", "arn:aws:iam::123456789012:role/R",
            "--bucket", "bucket", "--image-uri", "repo/smvision:cpu"]
code = cli.main(["train", "--algorithm", "svm", "--train", "s3://data-bucket/train", "--hp", "C=-1",
                 *settings])
codes = [cli.main(["compare", "--train", "s3://data-bucket/train", "--hp", "svm:C=-1", *settings]),
         cli.main(["rekognition", "analyze", "no-such-folder", "--out", "o.jsonl", *settings])]
refused = sorted(sys.modules)
for module in pkgutil.walk_packages(launch.__path__, "launch."):
    if module.name != "launch.__main__":
        importlib.import_module(module.name)
print(json.dumps({"code": code, "codes": codes, "refused": refused,
                  "everything": sorted(sys.modules)}))
"""


def test_launchers_import_no_training_stack_and_no_sdk_before_validation() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["code"] == 2 and result["codes"] == [2, 2]
    assert completed.stderr.count("Hyperparameter 'C' has value '-1'") == 2
    assert "'no-such-folder' is neither a file, a folder nor an s3:// URI" in completed.stderr
    # A bad value is refused before the SDK or boto3 is even imported.
    refused = set(result["refused"])
    assert not {m for m in refused if m.split(".")[0] in ("sagemaker", "boto3", "botocore")}
    # Every module of launch/, imported: still nothing of the training stack.
    modules = set(result["everything"])
    assert not {m for m in modules if m.split(".")[0] in TRAINING_STACK}
    assert not {"smvision.data.images", "smvision.data.dataset", "smvision.training.main"} & modules
    loaded = {m for m in modules if m.startswith("smvision.")} - {"smvision.monitor"}
    assert all(m.startswith(LAUNCH_MAY_LOAD) for m in loaded), sorted(loaded)


def test_settings_come_from_flag_then_environment_then_config_file(tmp_path: Path) -> None:
    config = tmp_path / "smvision.toml"
    config.write_text(
        'region = "eu-west-1"\nrole = "arn:aws:iam::111122223333:role/FromFile"\n'
        'bucket = "file-bucket"\nimage_uri = "repo/smvision:file"\n'
    )
    environ = {"SMVISION_BUCKET": "env-bucket", "SMVISION_IMAGE_URI": "repo/smvision:env"}
    settings = resolve({"image_uri": "repo/smvision:flag", "region": None}, environ, config)
    assert settings.require("image_uri") == "repo/smvision:flag"
    assert settings.require("bucket") == "env-bucket"
    assert settings.require("region") == "eu-west-1"
    assert settings.require("role") == "arn:aws:iam::111122223333:role/FromFile"


def test_missing_setting_names_flag_variable_and_config_key() -> None:
    settings = resolve({}, {}, None)
    with pytest.raises(LaunchError) as error:
        settings.require("role")
    message = str(error.value)
    assert "--role" in message and "SMVISION_ROLE" in message and 'role = "arn:aws:iam::' in message


def test_malformed_setting_names_value_and_origin() -> None:
    settings = resolve({}, {"SMVISION_ROLE": "SmvisionExecution"}, None)
    expected = r"'SmvisionExecution' \(from SMVISION_ROLE\).*arn:aws:iam::"
    with pytest.raises(LaunchError, match=expected):
        settings.require("role")
    with pytest.raises(LaunchError, match="s3://my-bucket.*from --bucket"):
        resolve({"bucket": "s3://my-bucket"}, {}, None).require("bucket")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('regoin = "us-east-1"\n', "unknown key 'regoin'"),
        ("region = 1\n", "key 'region' must be a non-empty string"),
        ("region = \n", "not valid TOML"),
    ],
)
def test_bad_config_file_is_named(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(LaunchError, match=f"--config {config}: .*{expected}"):
        resolve({}, {}, config)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="cannot read it"):
        resolve({}, {}, tmp_path / "absent.toml")


def test_hyperparameters_are_sent_as_the_schema_spells_them() -> None:
    sent = validated_hyperparameters(
        "svm", ["C=5", "kernel=RBF", "features=color+hog", "grayscale=1", "image_size=32"]
    )
    assert sent == {
        "algorithm": "svm",
        "C": "5.0",
        "kernel": "rbf",
        "features": "hog+color",
        "grayscale": "true",
        "image_size": "32",
    }
    assert validated_hyperparameters("cnn", []) == {"algorithm": "cnn"}


@pytest.mark.parametrize(
    ("algorithm", "pairs", "expected"),
    [
        ("svm", ["C=lots"], "Hyperparameter 'C' has value 'lots'"),
        ("cnn", ["learning_rte=0.1"], "Did you mean 'learning_rate'"),
        ("svm", ["image_size=60"], "multiple of 8"),
        ("svm", ["C=1", "C=2"], "given twice"),
        ("svm", ["sagemaker_program=x"], "belong to SageMaker"),
        ("svm", ["algorithm=rf"], "use --algorithm"),
        ("svm", ["C"], "not KEY=VALUE"),
    ],
)
def test_bad_hyperparameters_are_refused_with_the_key_and_value(
    algorithm: str, pairs: list[str], expected: str
) -> None:
    with pytest.raises(LaunchError, match=expected):
        validated_hyperparameters(algorithm, pairs)


def test_default_ranges_are_the_schemas() -> None:
    assert ranges.plan_ranges("svm", {}, []) == tuning_ranges("svm")
    assert "learning_rate" not in ranges.plan_ranges("cnn", {"learning_rate": "0.01"}, [])


def test_range_overrides_take_the_parameters_kind_and_scaling() -> None:
    planned = ranges.plan_ranges(
        "cnn",
        {},
        [
            "learning_rate=0.0005:0.05",
            "epochs=5:20",
            "optimizer=adam,rmsprop",
            "dropout=0.1:0.5:Linear",
        ],
    )
    assert planned["learning_rate"] == TuningRange(
        "continuous", 0.0005, 0.05, scaling="Logarithmic"
    )
    assert planned["epochs"] == TuningRange("integer", 5, 20, scaling="Auto")
    assert planned["optimizer"] == TuningRange("categorical", values=("adam", "rmsprop"))
    assert planned["dropout"] == TuningRange("continuous", 0.1, 0.5, scaling="Linear")


@pytest.mark.parametrize(
    ("algorithm", "fixed", "text", "expected"),
    [
        ("svm", {}, "C=0:100:Linear", r"includes C=0, which the image would reject"),
        ("svm", {}, "C=0:100", "Logarithmic, so LOW must be above 0"),
        ("svm", {}, "C=10:1", "LOW 10 >= HIGH 1"),
        ("svm", {}, "image_size=16:64", "image_size=17, which the image would reject"),
        ("svm", {}, "kernel=rbf,cubic", "kernel=cubic"),
        ("svm", {}, "kernel=0:1", "list the values instead"),
        ("svm", {}, "gama=0.1:1", "Did you mean 'gamma'"),
        ("cnn", {}, "epochs=1.5:3", "whole number"),
        ("cnn", {}, "dropout=0:0.5:Logarithmic", "LOW must be above 0"),
        ("cnn", {}, "dropout=0.1:0.5:cubic", "scaling 'cubic'"),
        ("cnn", {}, "optimizer=adam", "two or more distinct values"),
        ("cnn", {"dropout": "0.2"}, "dropout=0.1:0.5", "also fixed with --hp dropout=0.2"),
        (
            "svm",
            {"C": "1", "kernel": "rbf", "features": "hog", "class_weight": "none"},
            "",
            "Nothing to tune",
        ),
    ],
)
def test_bad_ranges_are_refused(
    algorithm: str, fixed: dict[str, str], text: str, expected: str
) -> None:
    with pytest.raises(LaunchError, match=expected):
        ranges.plan_ranges(algorithm, fixed, [text] if text else [])


def test_values_users_type_are_checked() -> None:
    assert s3_uri("s3://bucket/a/b", "--train") == S3Uri("bucket", "a/b")
    assert S3Uri("bucket", "a/b/out").is_under(S3Uri("bucket", "a/b"))
    assert not S3Uri("bucket", "a/bc").is_under(S3Uri("bucket", "a/b"))
    with pytest.raises(LaunchError, match="not an S3 URI; upload the data first"):
        s3_uri("data/train", "--train")
    with pytest.raises(LaunchError, match="not a valid S3 bucket"):
        s3_uri("s3://My_Bucket/x", "--train")
    assert capacity_range("1:4", "--autoscale") == (1, 4)
    for bad in ("4:1", "0:2", "2", "a:b"):
        with pytest.raises(LaunchError, match="MIN:MAX"):
            capacity_range(bad, "--autoscale")
    with pytest.raises(LaunchError, match="not a valid SageMaker name"):
        resource_name("my_job", "--job-name")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/digits/3"
    assert model_package_arn(arn, "--package") == arn
    for bad in ("digits/3", arn.replace("model-package", "model"), arn + " "):
        with pytest.raises(LaunchError, match="is not a model package ARN"):
            model_package_arn(bad, "--package")


def test_monitor_since_is_an_iso_time_or_an_age() -> None:
    from datetime import UTC, datetime

    from launch.mlops.monitoring import parse_since

    now = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert parse_since("90m", now) == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    assert parse_since("2d", now) == datetime(2026, 2, 27, 12, 30, tzinfo=UTC)
    assert parse_since("2026-03-01T09:00Z", now) == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert parse_since("2026-03-01T09:00", now) == datetime(2026, 3, 1, 9, tzinfo=UTC)
    with pytest.raises(LaunchError, match="neither an ISO time such as 2026-01-31T14:00 nor"):
        parse_since("6 hours", now)


def test_invoke_sends_a_new_inference_id_per_file_unless_one_is_given(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(encode(grey_photo("camera"), ".png"))
    parser = cli.build_parser()
    both = invoke.plan(parser.parse_args(["invoke", "--endpoint-name", "e", str(tmp_path)]))
    ids = both.inference_ids()
    assert len(set(ids)) == 2 and all(str(uuid.UUID(i)) == i for i in ids)
    one = invoke.plan(
        parser.parse_args(
            [
                "invoke",
                "--endpoint-name",
                "e",
                "--inference-id",
                "order-17",
                str(tmp_path / "a.png"),
            ]
        )
    )
    assert one.inference_ids() == ["order-17"]
    with pytest.raises(LaunchError, match="--inference-id names one request, but 2 files"):
        invoke.plan(
            parser.parse_args(
                ["invoke", "--endpoint-name", "e", "--inference-id", "x", str(tmp_path)]
            )
        )
    with pytest.raises(LaunchError, match="must be 1 to 64 printable characters"):
        invoke.plan(
            parser.parse_args(
                [
                    "invoke",
                    "--endpoint-name",
                    "e",
                    "--inference-id",
                    "x" * 65,
                    str(tmp_path / "a.png"),
                ]
            )
        )


def test_default_names_are_unique_per_millisecond_and_fit_the_limits() -> None:
    from datetime import datetime

    now = datetime(2026, 11, 25, 22, 1, 32, 123456)
    assert timestamped_name("smvision-svm", now) == "smvision-svm-20261125-220132-123"
    short = timestamped_name("smvision-resnet50", now, 32)
    assert short == "smvision-resnet50-261125-220132" and len(short) <= 32
    resource_name(short, "--job-name", 32)


def test_image_files_get_the_content_type_of_their_format(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for name, image in (
        ("china.jpg", photo("china")),
        ("coffee.png", photo("coffee")),
        ("nested/camera.tiff", grey_photo("camera")),
        ("nested/chelsea.webp", photo("chelsea")),
        ("moon.bmp", grey_photo("moon")),
    ):
        (folder / name).write_bytes(encode(image, Path(name).suffix))
    (folder / "notes.txt").write_text("not an image")
    found = invoke.image_files([str(folder)])
    assert [(f.path.relative_to(folder).as_posix(), f.content_type) for f in found] == [
        ("china.jpg", "image/jpeg"),
        ("coffee.png", "image/png"),
        ("moon.bmp", "image/bmp"),
        ("nested/camera.tiff", "image/tiff"),
        ("nested/chelsea.webp", "image/webp"),
    ]
    with pytest.raises(LaunchError, match="notes.txt: not an image file by its suffix"):
        invoke.image_files([str(folder / "notes.txt")])
    with pytest.raises(LaunchError, match="no such file or folder"):
        invoke.image_files([str(tmp_path / "absent.png")])
    assert media.image_content_type("s3://b/x/Y.JPEG") == "image/jpeg"


SERVER_ANSWER = {
    "predictions": [
        {
            "label": "cat",
            "probability": 0.8125,
            "probabilities": {"dog": 0.125, "cat": 0.8125, "bird": 0.0625},
        }
    ]
}


def test_the_servers_prediction_json_is_read() -> None:
    prediction = invocation.parse_response(json.dumps(SERVER_ANSWER).encode(), "cat.jpg")
    assert prediction.label == "cat" and prediction.probability == 0.8125
    assert prediction.probabilities == (("cat", 0.8125), ("dog", 0.125), ("bird", 0.0625))


TWO_PREDICTIONS = json.dumps({"predictions": SERVER_ANSWER["predictions"] * 2}).encode()


@pytest.mark.parametrize(
    "body", [b"Dummy body", b'{"error": "bad image"}', b'{"predictions": []}', TWO_PREDICTIONS]
)
def test_an_answer_that_is_not_a_prediction_is_an_error(body: bytes) -> None:
    with pytest.raises(LaunchError, match="cat.jpg is not smvision's prediction JSON"):
        invocation.parse_response(body, "cat.jpg")


def test_a_failed_or_interrupted_step_is_one_sentence_that_names_it() -> None:
    from botocore.exceptions import ClientError

    from launch.common.aws import reporting

    refused = ClientError(
        {"Error": {"Code": "ResourceLimitExceeded", "Message": "quota 0"}}, "CreateTrainingJob"
    )
    failed = "Creating training job x failed: .*ResourceLimitExceeded"
    with pytest.raises(AwsError, match=failed), reporting("Creating training job x"):
        raise refused
    interrupted = (
        "Interrupted during: Training job x. Whatever SageMaker had already started keeps running"
    )
    with pytest.raises(Interrupted, match=interrupted), reporting("Training job x"):
        raise KeyboardInterrupt


def tuning_plan(*argv: str) -> tune.TuningPlan:
    from datetime import datetime

    settings = [
        "--region",
        "us-east-1",
        "--role",
        "arn:aws:iam::123456789012:role/R",
        "--bucket",
        "data-bucket",
        "--image-uri",
        "repo/smvision:gpu",
    ]
    args = cli.build_parser().parse_args(
        ["tune", *settings, "--train", "s3://data-bucket/t", *argv]
    )
    flags: dict[SettingName, str | None] = {name: getattr(args, name) for name in SPECS}
    return tune.plan(args, resolve(flags, {}, None), datetime(2026, 11, 25, 22, 1, 32))


def test_hyperband_budgets_every_epoch_that_reports_validation_accuracy() -> None:
    assert tune.reported_epochs(tuning_plan("--algorithm", "cnn").definition.spec) == 30
    resnet = tuning_plan("--algorithm", "resnet50", "--hp", "epochs=6", "--strategy", "Hyperband")
    assert tune.reported_epochs(resnet.definition.spec) == 6 + 5
    assert resnet.early_stopping == "Off"
    assert tuning_plan("--algorithm", "cnn").early_stopping == "Auto"
    with pytest.raises(LaunchError, match="drop --range fine_tune_epochs"):
        tuning_plan(
            "--algorithm", "resnet50", "--strategy", "Hyperband", "--range", "fine_tune_epochs=1:5"
        )


def test_a_local_run_gives_the_sdk_the_jobs_image_hyperparameters_channels_and_compute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What `train --local` hands to the SDK's local mode, as the SDK's public ModelTrainer
    holds it, and the SDK's own dry run of the job (running it needs Docker:
    tests/container/test_launch_local.py)."""
    from sagemaker.train.model_trainer import Mode

    from launch.training.definition import local_trainer
    from launch.training.spec import ChannelSource, JobSpec

    sdk_config = tmp_path / "sagemaker-config.yaml"
    sdk_config.write_text(SDK_CONFIG)  # no telemetry, as a user would set it
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(sdk_config))
    (tmp_path / "train").mkdir()
    spec = JobSpec(
        "svm",
        {"algorithm": "svm", "C": "5.0"},
        {"train": ChannelSource(str(tmp_path / "train"))},
        "smvision:cpu",
        "local_cpu",
        2,
        86400,
    )
    trainer = local_trainer(spec, tmp_path / "job", "digits-local")
    assert trainer.training_mode == Mode.LOCAL_CONTAINER
    assert trainer.local_container_root == str(tmp_path / "job")
    assert trainer.training_image == "smvision:cpu"
    assert trainer.hyperparameters == {"algorithm": "svm", "C": "5.0"}
    assert (trainer.compute.instance_type, trainer.compute.instance_count) == ("local_cpu", 2)
    [data] = trainer.input_data_config
    # The channel as the SDK turns it into the job's input: the folder, mounted as is.
    channel = trainer.create_input_data_channel(data.channel_name, data.data_source)
    assert channel.channel_name == "train"
    assert channel.data_source.file_system_data_source.directory_path == str(tmp_path / "train")
    caplog.set_level(logging.INFO)
    assert trainer.train(dry_run=True) is None  # the SDK validates all it would run
    assert "Training Job Name: digits-local-" in caplog.text
    assert "Dry-run validation passed" in caplog.text
