"""`pipeline create|start|status` against a moto server; the definition as the SDK built it.

What moto 5.2.5 cannot do, and how each test copes:
- It stores a pipeline and starts executions, but runs no step (an execution is Succeeded
  at once), so the condition and the FailStep are checked as written, not run; the
  evaluation step's program, the image's `gate`, is tested against the registry on its
  own (tests/launch/test_registry.py). Each step's Arguments are validated against the
  request of the API SageMaker Pipelines calls for it (CreateTrainingJob,
  CreateProcessingJob, CreateModelPackage) in SageMaker's service model, with the
  pipeline's variables standing in as strings.
- It has no ListPipelineExecutionSteps: `status` is tested with botocore's Stubber,
  which answers as SageMaker does and checks the requests against the service model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from launch.mlops import pipeline
from smvision.core import media
from smvision.core.metrics import METRIC_DEFINITIONS
from tests.support.moto_server import (
    BUCKET,
    IMAGE,
    REGION,
    ROLE,
    MotoServer,
    documented_caller_policy,
    iam_action,
    run_launcher,
)

DATA = f"s3://{BUCKET}/datasets/digits"
NAME = "digits-retrain"
# The API SageMaker Pipelines calls for each kind of step, and the name the SDK leaves out.
STEP_OPERATIONS = {
    "Training": ("CreateTrainingJob", "TrainingJobName"),
    "Processing": ("CreateProcessingJob", "ProcessingJobName"),
    "RegisterModel": ("CreateModelPackage", None),
}


def create(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    return run_launcher(
        capsys,
        "pipeline",
        "create",
        "--name",
        NAME,
        "--algorithm",
        "svm",
        "--train",
        f"{DATA}/train",
        "--validation",
        f"{DATA}/validation",
        "--test",
        f"{DATA}/test",
        "--hp",
        "C=10",
        "--group",
        "digits",
        "--threshold",
        "0.9",
        *extra,
    )


def sagemaker() -> Any:
    return boto3.session.Session(region_name=REGION).client("sagemaker")


def stored_definition() -> dict[str, Any]:
    return dict(json.loads(sagemaker().describe_pipeline(PipelineName=NAME)["PipelineDefinition"]))


def get(name: str) -> dict[str, str]:
    return {"Get": name}


def concrete(value: Any) -> Any:
    """A step's Arguments with every pipeline variable replaced by a string."""
    if isinstance(value, dict):
        if set(value) & {"Get", "Std:Join", "Std:JsonGet"}:
            return "s3://placeholder/value"
        return {key: concrete(item) for key, item in value.items()}
    if isinstance(value, list):
        return [concrete(item) for item in value]
    return value


def all_steps(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for step in definition["Steps"]:
        yield step
        yield from step["Arguments"].get("IfSteps", [])
        yield from step["Arguments"].get("ElseSteps", [])


def test_create_trains_evaluates_and_registers_only_a_good_enough_model(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    output = create(capsys)
    assert f"Created pipeline arn:aws:sagemaker:{REGION}:123456789012:pipeline/{NAME}" in output
    assert sagemaker().describe_model_package_group(ModelPackageGroupName="digits")
    definition = stored_definition()
    assert sagemaker().describe_pipeline(PipelineName=NAME)["RoleArn"] == ROLE

    assert {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]} == {
        "TrainData": f"{DATA}/train",
        "ValidationData": f"{DATA}/validation",
        "TestData": f"{DATA}/test",
        "C": "10.0",
        "AccuracyThreshold": 0.9,
        "ModelPackageGroup": "digits",
        "ModelApprovalStatus": "PendingManualApproval",
    }
    steps = {step["Name"]: step for step in all_steps(definition)}
    assert [s["Name"] for s in definition["Steps"]] == ["Train", "Evaluate", "CheckAccuracy"]
    assert list(steps) == ["Train", "Evaluate", "CheckAccuracy", "Register", "NotRegistered"]

    train = steps["Train"]["Arguments"]
    assert train["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert [
        {"Name": d["Name"], "Regex": d["Regex"]}
        for d in train["AlgorithmSpecification"]["MetricDefinitions"]
    ] == METRIC_DEFINITIONS
    assert train["HyperParameters"] == {"algorithm": "svm", "C": get("Parameters.C")}
    assert {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]
    } == {
        "train": get("Parameters.TrainData"),
        "validation": get("Parameters.ValidationData"),
        "test": get("Parameters.TestData"),
    }
    assert train["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/smvision/pipelines",
        "CompressionType": "GZIP",
    }

    evaluate = steps["Evaluate"]
    assert evaluate["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == ["gate"]
    assert evaluate["Arguments"]["AppSpecification"]["ContainerArguments"] == [
        "--group",
        get("Parameters.ModelPackageGroup"),
        "--region",
        REGION,
    ]
    [training_output] = evaluate["Arguments"]["ProcessingInputs"]
    assert training_output["S3Input"]["LocalPath"] == "/opt/ml/processing/input/training"
    assert training_output["S3Input"]["S3Uri"]["Std:Join"]["Values"] == [
        get("Steps.Train.OutputDataConfig.S3OutputPath"),
        get("Steps.Train.TrainingJobName"),
        "output",
        "output.tar.gz",
    ]
    assert evaluate["PropertyFiles"] == [
        {"PropertyFileName": "Gate", "OutputName": "evaluation", "FilePath": "gate.json"}
    ]

    gate_value = {"PropertyFile": get("Steps.Evaluate.PropertyFiles.Gate")}
    assert steps["CheckAccuracy"]["Arguments"]["Conditions"] == [
        {
            "Type": "GreaterThanOrEqualTo",
            "LeftValue": {"Std:JsonGet": {**gate_value, "Path": "new_accuracy"}},
            "RightValue": get("Parameters.AccuracyThreshold"),
        },
        {
            "Type": "GreaterThanOrEqualTo",
            "LeftValue": {"Std:JsonGet": {**gate_value, "Path": "new_accuracy"}},
            "RightValue": {"Std:JsonGet": {**gate_value, "Path": "approved_accuracy"}},
        },
    ]
    register = steps["Register"]["Arguments"]
    assert register["ModelPackageGroupName"] == get("Parameters.ModelPackageGroup")
    assert register["ModelApprovalStatus"] == get("Parameters.ModelApprovalStatus")
    assert register["InferenceSpecification"]["Containers"] == [
        {"Image": IMAGE, "ModelDataUrl": get("Steps.Train.ModelArtifacts.S3ModelArtifacts")}
    ]
    assert register["InferenceSpecification"]["SupportedContentTypes"] == list(media.CONTENT_TYPES)
    assert (register["Domain"], register["Task"]) == ("COMPUTER_VISION", "IMAGE_CLASSIFICATION")
    assert register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]["Std:Join"][
        "Values"
    ] == [
        get("Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"),
        "model_quality.json",
    ]
    message = steps["NotRegistered"]["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert message[0] == "The new model was not registered: its accuracy "

    model = botocore.session.get_session().get_service_model("sagemaker")
    for step in steps.values():
        if step["Type"] in STEP_OPERATIONS:
            operation, name = STEP_OPERATIONS[step["Type"]]
            request = concrete(step["Arguments"]) | ({name: "step-job"} if name else {})
            validate_parameters(request, model.operation_model(operation).input_shape)

    called = {iam_action(request) for request in aws.requests()}
    assert {"sagemaker:CreatePipeline", "sagemaker:CreateModelPackageGroup"} <= called
    assert not called - documented_caller_policy()
    assert "Updated pipeline" in create(capsys, "--hp", "gamma=0.01")
    assert {p["Name"]: p.get("DefaultValue") for p in stored_definition()["Parameters"]}[
        "gamma"
    ] == "0.01"


def test_start_overrides_the_parameters_it_is_given_and_checks_each(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    create(capsys)
    output = run_launcher(
        capsys,
        "pipeline",
        "start",
        "--name",
        NAME,
        "--test",
        f"{DATA}/test-2026",
        "--hp",
        "C=5",
        "--threshold",
        "0.95",
    )
    arn = next(line.split()[-1] for line in output.splitlines() if line.startswith("Execution "))
    parameters = sagemaker().list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)[
        "PipelineParameters"
    ]
    assert {p["Name"]: p["Value"] for p in parameters} == {
        "TestData": f"{DATA}/test-2026",
        "AccuracyThreshold": "0.95",
        "C": "5.0",
    }

    for extra, expected in (
        (["--hp", "gamma=0.5"], f"--hp gamma: pipeline {NAME} has no gamma parameter"),
        (["--pretrained", f"{DATA}/w"], f"--pretrained: pipeline {NAME} has no PretrainedData"),
        (["--hp", "C=-1"], "Hyperparameter 'C' has value '-1'"),
    ):
        assert expected in run_launcher(capsys, "pipeline", "start", "--name", NAME, *extra, code=2)
    assert "--threshold '2' is an accuracy" in run_launcher(
        capsys, "pipeline", "start", "--name", NAME, "--threshold", "2", code=2
    )


def test_create_needs_a_test_channel_and_makes_no_aws_call(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    output = run_launcher(
        capsys,
        "pipeline",
        "create",
        "--name",
        NAME,
        "--algorithm",
        "svm",
        "--train",
        f"{DATA}/train",
        "--group",
        "digits",
        code=2,
    )
    assert "pipeline create needs --test" in output
    assert aws.requests() == []


FAILED_STEPS = [
    ("Train", "Succeeded", None),
    ("Evaluate", "Succeeded", None),
    ("CheckAccuracy", "Succeeded", None),
    (
        "NotRegistered",
        "Failed",
        "The new model was not registered: its accuracy 0.85 must "
        "reach AccuracyThreshold 0.9 and the latest approved version's 0.93 (arn:aws:sagemaker:"
        "us-east-1:123456789012:model-package/digits/3).",
    ),
]


def test_status_shows_each_step_and_why_the_model_was_not_registered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = boto3.session.Session(region_name=REGION).client("sagemaker")
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{NAME}/execution/abc123"
    with Stubber(client) as stub:
        stub.add_response(
            "list_pipeline_executions",
            {"PipelineExecutionSummaries": [{"PipelineExecutionArn": arn}]},
            {
                "PipelineName": NAME,
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 1,
            },
        )
        stub.add_response(
            "describe_pipeline_execution",
            {
                "PipelineExecutionArn": arn,
                "PipelineExecutionStatus": "Failed",
                "FailureReason": "Step failure: One or multiple steps failed.",
            },
            {"PipelineExecutionArn": arn},
        )
        stub.add_response(
            "list_pipeline_execution_steps",
            {
                "PipelineExecutionSteps": [
                    {
                        "StepName": name,
                        "StepStatus": status,
                        **({"FailureReason": reason} if reason else {}),
                    }
                    for name, status, reason in FAILED_STEPS
                ]
            },
            {"PipelineExecutionArn": arn, "SortOrder": "Ascending"},
        )
        assert pipeline.show_status(client, NAME, None) == 0
        stub.assert_no_pending_responses()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"Execution {arn}: Failed: Step failure: One or multiple steps failed."
    assert printed[1:] == [
        "  Train: Succeeded",
        "  Evaluate: Succeeded",
        "  CheckAccuracy: Succeeded",
        f"  NotRegistered: Failed: {FAILED_STEPS[-1][2]}",
    ]


def test_status_names_the_version_a_successful_execution_registered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = boto3.session.Session(region_name=REGION).client("sagemaker")
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{NAME}/execution/def456"
    package = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/digits/4"
    with Stubber(client) as stub:
        stub.add_response(
            "describe_pipeline_execution",
            {"PipelineExecutionArn": arn, "PipelineExecutionStatus": "Succeeded"},
        )
        stub.add_response(
            "list_pipeline_execution_steps",
            {
                "PipelineExecutionSteps": [
                    {
                        "StepName": "Register",
                        "StepStatus": "Succeeded",
                        "Metadata": {"RegisterModel": {"Arn": package}},
                    }
                ]
            },
        )
        assert pipeline.show_status(client, NAME, arn) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"Execution {arn}: Succeeded",
        f"  Register: Succeeded ({package})",
    ]
