"""`register`, `approve`, `deploy --model-package` and the image's `gate` (the retraining
pipeline's evaluation step, which reads the registry) against a moto server.

The model is real: an svm trained on the digits by the image's own `train`, its model/
and output/data/ packed as SageMaker packs them and put where a training job of the
same name (created in moto with the image and hyperparameters) would have put them.
moto 5.2.5 stores model package groups and packages with every field it is given and
implements UpdateModelPackage; what it does not do is check that a container can serve
the package, which SageMaker does at CreateModel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from launch import cli
from smvision.core import contract, media, model_quality
from smvision.monitor import gate
from smvision.schema import specs
from tests.support.archives import model_archive, output_archive
from tests.support.moto_server import (
    BUCKET,
    IMAGE,
    REGION,
    ROLE,
    MotoServer,
    clean_aws,
    documented_caller_policy,
    iam_action,
    moto_session,
    settings_flags,
)
from tests.support.serving import JobDirs

JOB = "digits-svm-1"
OUTPUT = f"smvision/training/{JOB}/output"
MODEL_DATA = f"s3://{BUCKET}/{OUTPUT}/model.tar.gz"


@pytest.fixture
def trained(serving_jobs: JobDirs) -> Path:
    return serving_jobs("svm")


@pytest.fixture
def aws(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: Path
) -> MotoServer:
    """A training job in moto, and its model.tar.gz and output.tar.gz where it wrote them."""
    server = clean_aws(moto_server, tmp_path, monkeypatch)
    client("s3").put_object(
        Bucket=BUCKET, Key=f"{OUTPUT}/model.tar.gz", Body=model_archive(trained)
    )
    client("s3").put_object(
        Bucket=BUCKET, Key=f"{OUTPUT}/output.tar.gz", Body=output_archive(trained)
    )
    client("sagemaker").create_training_job(
        TrainingJobName=JOB,
        RoleArn=ROLE,
        HyperParameters={"algorithm": "svm"},
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/smvision/training"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    server.forget_requests()
    return server


def client(name: str) -> Any:
    return boto3.session.Session(region_name=REGION).client(name)


def launch(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main([*args, *settings_flags()], open_session=moto_session)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def register(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code, output = launch(
        capsys, "register", "--model-data", MODEL_DATA, "--group", "digits", *extra
    )
    assert code == 0, output
    return next(
        line.split()[-1] for line in output.splitlines() if line.startswith("Model package: ")
    )


def test_register_creates_the_group_and_a_pending_version_with_its_test_metrics(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], trained: Path
) -> None:
    arn = register(capsys, "--description", "first digits model")

    assert (
        client("sagemaker").describe_model_package_group(ModelPackageGroupName="digits")[
            "ModelPackageGroupName"
        ]
        == "digits"
    )
    package = client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert package["ModelPackageGroupName"] == "digits"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert (package["Domain"], package["Task"]) == ("COMPUTER_VISION", "IMAGE_CLASSIFICATION")
    specification = package["InferenceSpecification"]
    assert specification["Containers"] == [{"Image": IMAGE, "ModelDataUrl": MODEL_DATA}]
    assert specification["SupportedContentTypes"] == list(media.CONTENT_TYPES)
    assert specification["SupportedResponseMIMETypes"] == [
        "application/json",
        "application/jsonlines",
        "text/csv",
    ]
    serving = specs.get("svm").serving_instance_type
    assert specification["SupportedRealtimeInferenceInstanceTypes"] == [serving]
    assert specification["SupportedTransformInstanceTypes"] == [serving]

    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    bucket, _, key = statistics["S3Uri"][len("s3://") :].partition("/")
    document = json.loads(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    evaluation = json.loads((trained / "opt/ml/output/data/evaluation.json").read_text())
    metrics = document["multiclass_classification_metrics"]
    assert document["dataset"] == {"split": "test", "item_count": evaluation["test"]["count"]}
    assert metrics["accuracy"]["value"] == evaluation["test"]["accuracy"]
    assert (
        sum(sum(row.values()) for row in metrics["confusion_matrix"].values())
        == (evaluation["test"]["count"])
    )
    assert package["CustomerMetadataProperties"]["algorithm"] == "svm"
    assert package["CustomerMetadataProperties"]["training_job"] == JOB


def test_only_an_approved_version_is_deployed_and_deploy_says_why_otherwise(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = register(capsys)
    aws.forget_requests()
    code, output = launch(capsys, "deploy", "--model-package", arn, "--endpoint-name", "digits")
    assert code == 1
    assert (
        f"Model package {arn} is PendingManualApproval: deploy serves Approved packages "
        "only" in output
    )
    assert f"python -m launch approve --package {arn}" in output
    assert not [op for op in aws.operations() if op.startswith("SageMaker.Create")]

    code, output = launch(capsys, "approve", "--package", arn, "--description", "checked")
    assert code == 0, output
    assert (
        client("sagemaker").describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
        == "Approved"
    )

    code, output = launch(capsys, "deploy", "--model-package", arn, "--endpoint-name", "digits")
    assert code == 0, output
    model = client("sagemaker").describe_model(ModelName="digits")
    assert model["PrimaryContainer"]["ModelPackageName"] == arn
    assert "Image" not in model["PrimaryContainer"]  # the package names its own image
    assert (
        client("sagemaker").describe_endpoint(EndpointName="digits")["EndpointStatus"]
        == "InService"
    )


def test_register_approve_adds_an_approved_version(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = register(capsys), register(capsys, "--approve")
    assert first != second
    versions = client("sagemaker").list_model_packages(
        ModelPackageGroupName="digits", SortBy="CreationTime"
    )["ModelPackageSummaryList"]
    assert [(v["ModelPackageArn"], v["ModelApprovalStatus"]) for v in versions] == [
        (first, "PendingManualApproval"),
        (second, "Approved"),
    ]


def test_register_refuses_a_model_without_evaluation_results(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client("s3").delete_object(Bucket=BUCKET, Key=f"{OUTPUT}/output.tar.gz")
    code, output = launch(capsys, "register", "--model-data", MODEL_DATA, "--group", "digits")
    assert code == 1
    assert (
        f"s3://{BUCKET}/{OUTPUT}/output.tar.gz: no such object. register reads the test "
        "results from the evaluation.json"
    ) in output
    assert not [op for op in aws.operations() if "ModelPackage" in op]


def test_register_needs_the_algorithm_when_no_training_job_says_it(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], trained: Path
) -> None:
    elsewhere = f"s3://{BUCKET}/models/digits/model.tar.gz"
    client("s3").put_object(
        Bucket=BUCKET, Key="models/digits/model.tar.gz", Body=model_archive(trained)
    )
    code, output = launch(capsys, "register", "--model-data", elsewhere, "--group", "digits")
    assert code == 2
    assert "does not say the model's algorithm and image; pass --algorithm." in output


def test_the_documented_caller_policy_covers_register_approve_and_deploy(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = register(capsys)
    assert launch(capsys, "approve", "--package", arn)[0] == 0
    assert launch(capsys, "deploy", "--model-package", arn, "--endpoint-name", "digits")[0] == 0
    called = {iam_action(request) for request in aws.requests()}
    assert {
        "sagemaker:CreateModelPackage",
        "sagemaker:UpdateModelPackage",
        "s3:PutObject",
    } <= called
    assert not called - documented_caller_policy()


# The retraining pipeline's gate (the image's side of the registry) -------------------------


def run_gate(trained: Path, folder: Path) -> dict[str, Any]:
    """The image's `gate` over the training job's output.tar.gz, in this process."""
    training = folder / "training"
    training.mkdir(parents=True)
    (training / "output.tar.gz").write_bytes(output_archive(trained))
    args = gate.build_parser().parse_args(
        [
            "--group",
            "digits",
            "--region",
            REGION,
            "--training",
            str(training),
            "--output",
            str(folder / "out"),
        ]
    )
    base = contract.load({contract.BASE_DIR_ENV: str(folder / "opt" / "ml")})
    assert gate.run(args, base, boto3.session.Session(region_name=REGION)) == 0
    return dict(json.loads((folder / "out" / model_quality.GATE_FILE).read_text()))


def test_the_gate_compares_with_the_latest_approved_version_only(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], trained: Path, tmp_path: Path
) -> None:
    evaluation = json.loads((trained / "opt/ml/output/data/evaluation.json").read_text())
    accuracy = evaluation["test"]["accuracy"]
    first = run_gate(trained, tmp_path / "first")
    assert first == {
        "new_accuracy": accuracy,
        "approved_accuracy": 0.0,
        "approved_package": "none",
        "split": "test",
    }
    assert json.loads((tmp_path / "first/out" / model_quality.FILE).read_text()) == (
        model_quality.from_evaluation(evaluation)
    )

    approved = register(capsys, "--approve")
    register(capsys)  # a newer version still pending: not what the gate compares with
    second = run_gate(trained, tmp_path / "second")
    assert (second["approved_package"], second["approved_accuracy"]) == (approved, accuracy)


def test_a_gate_that_cannot_compare_says_why_in_the_jobs_exit_message(
    aws: MotoServer, trained: Path, tmp_path: Path
) -> None:
    client("sagemaker").create_model_package_group(ModelPackageGroupName="digits")
    client("sagemaker").create_model_package(
        ModelPackageGroupName="digits",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_DATA}],
            "SupportedContentTypes": ["image/png"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "output.tar.gz").write_bytes(output_archive(trained))
    base = tmp_path / "opt" / "ml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "smvision.monitor.gate",
            "--group",
            "digits",
            "--region",
            REGION,
            "--training",
            str(tmp_path / "training"),
            "--output",
            str(tmp_path / "out"),
        ],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    message = (base / "output" / "message").read_text()
    assert message.startswith("The latest approved version arn:aws:sagemaker:")
    assert "has no model-quality statistics to compare with" in message
