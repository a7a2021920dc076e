"""`train` and `tune` with the built-in algorithms' inputs: augmented manifests in Pipe mode,
FastFile, an incremental-training `model` channel, and the tuning objective.

The launcher's `main` runs in this process against the moto server (test_launch_training
runs it as a subprocess, as a user does); the assertions read the CreateTrainingJob and
CreateHyperParameterTuningJob requests as sent (moto does not keep every channel field).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from launch import cli
from tests.support.moto_server import BUCKET, MotoServer, create_moto_best_job, settings_flags
from tests.support.photos import encode, grey_photo

DATA = f"s3://{BUCKET}/datasets/digits"
MODEL = f"s3://{BUCKET}/smvision/training/earlier/output/model.tar.gz"


def channels(sent: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.pop("ChannelName"): c for c in sent["InputDataConfig"]}


def test_manifests_stream_in_pipe_mode_with_their_attributes(aws: MotoServer) -> None:
    code = cli.main(
        [
            "train",
            *settings_flags(),
            "--algorithm",
            "cnn",
            "--manifest",
            f"{DATA}/train.manifest",
            "--validation-manifest",
            f"{DATA}/validation.manifest",
            "--test",
            f"{DATA}/test",
            "--model",
            MODEL,
            "--attribute-names",
            "source-ref,class,class-metadata",
            "--hp",
            "multi_label=true",
            "--job-name",
            "from-manifests",
            "--no-wait",
        ]
    )

    assert code == 0
    [sent] = aws.calls("CreateTrainingJob")
    manifest = {
        "S3DataType": "AugmentedManifestFile",
        "S3DataDistributionType": "FullyReplicated",
        "AttributeNames": ["source-ref", "class", "class-metadata"],
    }
    assert channels(sent) == {
        "train": {
            "DataSource": {"S3DataSource": manifest | {"S3Uri": f"{DATA}/train.manifest"}},
            "InputMode": "Pipe",
            "RecordWrapperType": "RecordIO",
            "ContentType": "application/x-recordio",
        },
        "validation": {
            "DataSource": {"S3DataSource": manifest | {"S3Uri": f"{DATA}/validation.manifest"}},
            "InputMode": "Pipe",
            "RecordWrapperType": "RecordIO",
            "ContentType": "application/x-recordio",
        },
        "test": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"{DATA}/test",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "InputMode": "File",
        },
        "model": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": MODEL,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "InputMode": "File",
            "ContentType": "application/x-sagemaker-model",
        },
    }
    assert sent["HyperParameters"] == {"algorithm": "cnn", "multi_label": "true"}


def test_fastfile_mounts_the_data_channels_and_copies_the_model(aws: MotoServer) -> None:
    code = cli.main(
        [
            "train",
            *settings_flags(),
            "--algorithm",
            "rf",
            "--train",
            f"{DATA}/train",
            "--validation",
            f"{DATA}/validation",
            "--model",
            MODEL,
            "--input-mode",
            "FastFile",
            "--no-wait",
        ]
    )

    assert code == 0
    [sent] = aws.calls("CreateTrainingJob")
    modes = {name: c["InputMode"] for name, c in channels(sent).items()}
    assert modes == {"train": "FastFile", "validation": "FastFile", "model": "File"}


@pytest.mark.parametrize(
    ("extra", "objective"),
    [
        (["--hp", "multi_label=true"], {"Type": "Maximize", "MetricName": "validation:f1_micro"}),
        (["--hp", "eval_metric=auc"], {"Type": "Maximize", "MetricName": "validation:auc"}),
        (
            ["--objective", "validation:hamming_loss"],
            {"Type": "Minimize", "MetricName": "validation:hamming_loss"},
        ),
    ],
)
def test_tune_optimises_the_objective_asked_for(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], extra: list[str], objective: dict[str, str]
) -> None:
    create_moto_best_job()
    code = cli.main(
        [
            "tune",
            *settings_flags(),
            "--algorithm",
            "svm",
            "--train",
            f"{DATA}/train",
            "--max-jobs",
            "2",
            *extra,
            "--no-wait",
        ]
    )

    assert code == 0
    [sent] = aws.calls("CreateHyperParameterTuningJob")
    assert sent["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"] == objective
    assert objective["MetricName"] in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--manifest", f"{DATA}/train.manifest"],
            "A manifest needs --attribute-names IMAGE,LABEL",
        ),
        (
            ["--manifest", f"{DATA}/train.manifest", "--attribute-names", "class,source-ref"],
            "must list the image attribute first",
        ),
        (
            [
                "--manifest",
                f"{DATA}/m",
                "--train",
                f"{DATA}/train",
                "--attribute-names",
                "source-ref,c",
            ],
            "--train and --manifest both give the train channel",
        ),
        (
            [
                "--manifest",
                f"{DATA}/m",
                "--attribute-names",
                "source-ref,c",
                "--input-mode",
                "FastFile",
            ],
            "a manifest always streams in Pipe mode",
        ),
        (
            ["--train", f"{DATA}/train", "--attribute-names", "source-ref,class"],
            "--attribute-names applies to --manifest",
        ),
        (
            ["--train", f"{DATA}/train", "--hp", "multi_label=true", "--hp", "eval_metric=auc"],
            "a multi-label model reports f1_micro",
        ),
        ([], "--algorithm svm needs --train (or --manifest)"),
        (
            ["--train", "build/digits/train", "--local", "--input-mode", "Pipe"],
            "--input-mode Pipe does not apply to --local",
        ),
        (
            ["--manifest", "build/m.manifest", "--attribute-names", "source-ref,c", "--local"],
            "--manifest streams in Pipe mode, which the SDK's local mode does not run",
        ),
    ],
)
def test_a_bad_input_is_refused_before_any_aws_call(
    capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    def no_session(region: str) -> Any:
        raise AssertionError(f"a session to {region} was opened")

    code = cli.main(["train", *settings_flags(), "--algorithm", "svm", *extra], no_session)

    assert code == 2
    assert expected in capsys.readouterr().err


def test_invoke_reads_a_multi_label_answer_and_sends_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from launch.hosting import invocation, invoke

    answer = {
        "predictions": [
            {
                "labels": ["even", "prime"],
                "threshold": 0.7,
                "probabilities": {"even": 0.9, "prime": 0.75, "large": 0.1},
            }
        ]
    }
    prediction = invocation.parse_response(json.dumps(answer).encode(), "two.png")
    assert prediction.line() == "even,prime\t-"
    assert prediction.probabilities[0] == ("even", 0.9)
    none = {"predictions": [{"labels": [], "threshold": 0.5, "probabilities": {"even": 0.1}}]}
    assert invocation.parse_response(json.dumps(none).encode(), "one.png").line() == "-\t-"
    image = tmp_path / "two.png"
    image.write_bytes(encode(grey_photo("camera"), ".png"))
    command = ["invoke", "--endpoint-name", "endpoint", "--top-k", "3", str(image)]
    plan = invoke.plan(cli.build_parser().parse_args([*command, "--threshold", "0.7"]))
    assert plan.custom_attributes() == "top_k=3,threshold=0.7"

    def no_session(region: str) -> Any:
        raise AssertionError(f"a session to {region} was opened")

    for refused in ("2", "-0.1", "high"):
        assert cli.main([*command, "--threshold", refused, *settings_flags()], no_session) == 2
        assert f"--threshold '{refused}' is not a probability; use 0 to 1" in (
            capsys.readouterr().err
        )
