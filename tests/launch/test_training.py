"""`train` and `tune` end to end: `python -m launch ...` subprocesses against a moto server.

Each test reads back from the server what the real SDK created (DescribeTrainingJob,
DescribeHyperParameterTuningJob) and, where moto replaces what it was given, what was
sent, from moto's request recorder. What moto 5.2.5 cannot do, and how each test copes:
- Every job is Completed at once and moto has no way to drive it to Failed, so the
  in-progress and failure paths (a Failed or Stopped job reported with its reason and
  exit code 1) are not exercised against the server.
- DescribeTrainingJob answers moto's own MetricDefinitions, not the ones sent: the
  tests assert the CreateTrainingJob request body.
- A tuning job's BestTrainingJob is a placeholder named 'FakeTrainingJobName' that moto
  never created; one test creates a training job of that name first so the launcher's
  DescribeTrainingJob of the best job has something real to read, another shows the
  launcher failing loudly when it is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from smvision.core.metrics import METRIC_DEFINITIONS
from smvision.schema.hyperparameters import tuning_ranges
from tests.support.moto_server import (
    BUCKET,
    IMAGE,
    REGION,
    ROLE,
    MotoServer,
    create_moto_best_job,
    settings_flags,
)

ROOT = Path(__file__).resolve().parents[2]
TRAIN = f"s3://{BUCKET}/datasets/digits/train"
VALIDATION = f"s3://{BUCKET}/datasets/digits/validation"
TEST = f"s3://{BUCKET}/datasets/digits/test"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m launch ARGS` as a user runs it, stderr folded into stdout in order."""
    return subprocess.run(
        [sys.executable, "-m", "launch", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def sagemaker() -> Any:
    return boto3.session.Session(region_name=REGION).client("sagemaker")


def channel_uris(described: dict[str, Any]) -> dict[str, str]:
    return {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in described["InputDataConfig"]
    }


def test_train_creates_the_job_sagemaker_runs(aws: MotoServer) -> None:
    job = "digits-svm-1"
    logs = boto3.session.Session(region_name=REGION).client("logs")
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=f"{job}/algo-1-1764108000")
    lines = ["Loaded 1078 images in 10 classes from train", "validation:accuracy=0.9861"]
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=f"{job}/algo-1-1764108000",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": m} for m in lines],
    )
    aws.forget_requests()

    run = launch(
        "train",
        *settings_flags(),
        "--algorithm",
        "svm",
        "--train",
        TRAIN,
        "--validation",
        VALIDATION,
        "--test",
        TEST,
        "--hp",
        "C=5",
        "--hp",
        "kernel=RBF",
        "--hp",
        "features=color+hog",
        "--job-name",
        job,
    )

    assert run.returncode == 0, run.stdout
    described = sagemaker().describe_training_job(TrainingJobName=job)
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert described["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert described["HyperParameters"] == {
        "algorithm": "svm",
        "C": "5.0",
        "kernel": "rbf",
        "features": "hog+color",
    }
    assert channel_uris(described) == {"train": TRAIN, "validation": VALIDATION, "test": TEST}
    assert described["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert described["EnableManagedSpotTraining"] is False
    assert "CheckpointConfig" not in described
    assert described["RoleArn"] == ROLE
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/smvision/training"
    [sent] = aws.calls("CreateTrainingJob")
    assert sent["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert sent["HyperParameters"] == described["HyperParameters"]

    output = run.stdout
    assert f"Training job {job}: svm on 1 x ml.m5.xlarge" in output
    assert (
        f"https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}#/jobs/{job}"
    ) in output
    assert "[algo-1] Loaded 1078 images in 10 classes from train" in output
    assert "[algo-1] validation:accuracy=0.9861" in output
    artifact = described["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{BUCKET}/smvision/training/{job}/output/model.tar.gz"
    assert f"Model artifact: {artifact}" in output
    for metric in described["FinalMetricDataList"]:
        assert f"  {metric['MetricName']} = {metric['Value']:g}" in output


def test_spot_training_gets_max_wait_and_checkpoints(aws: MotoServer) -> None:
    run = launch(
        "train",
        *settings_flags(),
        "--algorithm",
        "cnn",
        "--train",
        TRAIN,
        "--hp",
        "epochs=12",
        "--spot",
        "--max-run",
        "3600",
        "--instance-count",
        "2",
    )

    assert run.returncode == 0, run.stdout
    [sent] = aws.calls("CreateTrainingJob")
    job = sent["TrainingJobName"]
    assert job.startswith("smvision-cnn-")
    assert "warning" not in run.stdout
    described = sagemaker().describe_training_job(TrainingJobName=job)
    assert described["ResourceConfig"]["InstanceType"] == "ml.p3.2xlarge"
    assert described["ResourceConfig"]["InstanceCount"] == 2
    assert described["EnableManagedSpotTraining"] is True
    assert described["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 3600,
        "MaxWaitTimeInSeconds": 7200,
    }
    checkpoints = f"s3://{BUCKET}/smvision/checkpoints/{job}"
    assert described["CheckpointConfig"]["S3Uri"] == checkpoints
    assert described["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert described["HyperParameters"] == {"algorithm": "cnn", "epochs": "12"}
    assert f"Checkpoints: {checkpoints}" in run.stdout


def test_multi_host_svm_warns_before_the_job_starts(aws: MotoServer) -> None:
    run = launch(
        "train",
        *settings_flags(),
        "--algorithm",
        "rf",
        "--train",
        TRAIN,
        "--instance-count",
        "3",
        "--job-name",
        "rf-three-hosts",
        "--no-wait",
    )

    assert run.returncode == 0, run.stdout
    warning = run.stdout.index(
        "warning: rf trains on the first host only; with "
        "--instance-count 3 the other 2 instances stay idle"
    )
    assert warning < run.stdout.index("Training job rf-three-hosts")
    # Created (the SDK reads it back once), not followed.
    assert aws.operations() == ["SageMaker.CreateTrainingJob", "SageMaker.DescribeTrainingJob"]
    assert "Not waiting" in run.stdout
    described = sagemaker().describe_training_job(TrainingJobName="rf-three-hosts")
    assert described["ResourceConfig"]["InstanceCount"] == 3


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--hp", "C=-3"], "error: Hyperparameter 'C' has value '-3'; use a number >= 1e-06"),
        (["--hp", "kernal=rbf"], "Did you mean 'kernel'?"),
        (["--hp", "image_size=100"], "use a multiple of 8"),
        (["--max-wait", "100"], "--max-wait applies to managed spot training only"),
    ],
)
def test_a_bad_value_makes_no_aws_call(aws: MotoServer, extra: list[str], expected: str) -> None:
    run = launch("train", *settings_flags(), "--algorithm", "svm", "--train", TRAIN, *extra)

    assert run.returncode == 2
    assert expected in run.stdout
    assert aws.requests() == []
    assert "Nothing was sent to AWS." in run.stdout or "--max-wait" in expected


def test_settings_from_config_file_and_environment(aws: MotoServer, tmp_path: Path) -> None:
    config = tmp_path / "smvision.toml"
    config.write_text(
        f'region = "{REGION}"\nrole = "{ROLE}"\nbucket = "wrong-bucket"\n'
        'image_uri = "repo/smvision:from-file"\n'
    )
    run = launch(
        "train",
        "--config",
        str(config),
        "--bucket",
        BUCKET,
        "--algorithm",
        "svm",
        "--train",
        TRAIN,
        "--job-name",
        "configured",
        "--no-wait",
        env={"SMVISION_IMAGE_URI": IMAGE},
    )

    assert run.returncode == 0, run.stdout
    described = sagemaker().describe_training_job(TrainingJobName="configured")
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/smvision/training"
    assert described["RoleArn"] == ROLE


def test_a_missing_setting_says_how_to_set_it(aws: MotoServer) -> None:
    run = launch(
        "train",
        "--region",
        REGION,
        "--bucket",
        BUCKET,
        "--image-uri",
        IMAGE,
        "--algorithm",
        "svm",
        "--train",
        TRAIN,
    )
    assert run.returncode == 2
    assert "pass --role, set SMVISION_ROLE, or put role = " in run.stdout
    assert aws.requests() == []


def expected_ranges(algorithm: str) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = {
        "ContinuousParameterRanges": [],
        "IntegerParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, r in tuning_ranges(algorithm).items():
        if r.kind == "categorical":
            found["CategoricalParameterRanges"].append({"Name": name, "Values": list(r.values)})
        else:
            assert r.low is not None and r.high is not None
            kind = "Integer" if r.kind == "integer" else "Continuous"
            low, high = (int(r.low), int(r.high)) if r.kind == "integer" else (r.low, r.high)
            found[f"{kind}ParameterRanges"].append(
                {
                    "Name": name,
                    "MinValue": str(low),
                    "MaxValue": str(high),
                    "ScalingType": r.scaling,
                }
            )
    return found


def sorted_ranges(ranges: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: sorted(items, key=lambda item: item["Name"])
        for kind, items in ranges.items()
        if items
    }


def test_tune_searches_the_schemas_ranges_for_validation_accuracy(aws: MotoServer) -> None:
    best_artifact = create_moto_best_job()
    aws.forget_requests()

    run = launch(
        "tune",
        *settings_flags(),
        "--algorithm",
        "svm",
        "--train",
        TRAIN,
        "--validation",
        VALIDATION,
        "--hp",
        "image_size=32",
        "--max-jobs",
        "6",
        "--max-parallel-jobs",
        "3",
        "--job-name",
        "svm-tuning",
    )

    assert run.returncode == 0, run.stdout
    described = sagemaker().describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="svm-tuning"
    )
    config = described["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "validation:accuracy",
    }
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3}
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert sorted_ranges(config["ParameterRanges"]) == sorted_ranges(expected_ranges("svm"))
    definition = described["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {"algorithm": "svm", "image_size": "32"}
    assert definition["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert channel_uris(definition) == {"train": TRAIN, "validation": VALIDATION}
    assert definition["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert definition["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/smvision/tuning"
    assert definition["RoleArn"] == ROLE
    [sent] = aws.calls("CreateHyperParameterTuningJob")
    assert sent["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"] == (
        METRIC_DEFINITIONS
    )

    best = described["BestTrainingJob"]
    assert f"Best training job: {best['TrainingJobName']}" in run.stdout
    for key, value in best["TunedHyperParameters"].items():
        assert f"  {key} = {value}" in run.stdout
    assert "  image_size = 32" in run.stdout
    assert f"Model artifact: {best_artifact}" in run.stdout
    assert "hyper-tuning-jobs/svm-tuning" in run.stdout


def test_tune_with_overrides_and_hyperband(aws: MotoServer) -> None:
    create_moto_best_job()
    run = launch(
        "tune",
        *settings_flags(),
        "--algorithm",
        "cnn",
        "--train",
        TRAIN,
        "--hp",
        "learning_rate=0.002",
        "--hp",
        "epochs=40",
        "--range",
        "dropout=0.1:0.4",
        "--range",
        "batch_size=16,32",
        "--strategy",
        "Hyperband",
        "--instance-type",
        "ml.g5.xlarge",
        "--job-name",
        "cnn-hyperband",
    )

    assert run.returncode == 0, run.stdout
    described = sagemaker().describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="cnn-hyperband"
    )
    config = described["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Hyperband"
    # Hyperband stops jobs itself; SageMaker requires early stopping Off with it.
    assert config["TrainingJobEarlyStoppingType"] == "Off"
    [sent] = aws.calls("CreateHyperParameterTuningJob")
    assert sent["HyperParameterTuningJobConfig"]["StrategyConfig"] == {
        "HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 40}
    }
    assert sorted_ranges(config["ParameterRanges"]) == {
        # dropout and batch_size as asked; label_smoothing and optimizer from cnn's defaults.
        "ContinuousParameterRanges": [
            {"Name": "dropout", "MinValue": "0.1", "MaxValue": "0.4", "ScalingType": "Auto"},
            {
                "Name": "label_smoothing",
                "MinValue": "0.0",
                "MaxValue": "0.2",
                "ScalingType": "Auto",
            },
        ],
        "CategoricalParameterRanges": [
            {"Name": "batch_size", "Values": ["16", "32"]},
            {"Name": "optimizer", "Values": ["adam", "sgd"]},
        ],
    }
    definition = described["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {
        "algorithm": "cnn",
        "learning_rate": "0.002",
        "epochs": "40",
    }
    assert definition["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"


def test_train_and_tune_define_their_training_jobs_alike(aws: MotoServer) -> None:
    """One definition: a tuning job's training jobs are the job `train` would start."""
    common = [
        "--algorithm",
        "cnn",
        "--train",
        TRAIN,
        "--validation",
        VALIDATION,
        "--hp",
        "epochs=5",
        "--hp",
        "augment=false",
        "--instance-type",
        "ml.g5.xlarge",
        "--max-run",
        "7200",
        "--no-wait",
    ]
    trained = launch("train", *settings_flags(), *common, "--job-name", "alike")
    tuned = launch("tune", *settings_flags(), *common, "--job-name", "alike-tuning")

    assert trained.returncode == 0, trained.stdout
    assert tuned.returncode == 0, tuned.stdout
    [job] = aws.calls("CreateTrainingJob")
    [tuning] = aws.calls("CreateHyperParameterTuningJob")
    definition = tuning["TrainingJobDefinition"]
    assert (
        definition["StaticHyperParameters"]
        == job["HyperParameters"]
        == {"algorithm": "cnn", "epochs": "5", "augment": "false"}
    )
    for part in (
        "AlgorithmSpecification",
        "InputDataConfig",
        "ResourceConfig",
        "StoppingCondition",
        "RoleArn",
    ):
        assert definition[part] == job[part], part
    # The SDK leaves False out of a tuning job's definition: SageMaker's default.
    assert definition.get("EnableManagedSpotTraining", False) is job["EnableManagedSpotTraining"]
    # Both write model.tar.gz: the archive `deploy` and `transform` take.
    assert job["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/smvision/training",
        "CompressionType": "GZIP",
    }
    assert definition["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/smvision/tuning",
        "CompressionType": "GZIP",
    }


def test_tune_fails_loudly_when_the_best_job_cannot_be_read(aws: MotoServer) -> None:
    run = launch(
        "tune", *settings_flags(), "--algorithm", "rf", "--train", TRAIN, "--job-name", "rf-tuning"
    )
    assert run.returncode == 1
    assert "error: Describing the best training job FakeTrainingJobName failed" in run.stdout
    assert "Model artifact" not in run.stdout


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--range", "n_estimators=0:100"], "n_estimators=0, which the image would reject"),
        (["--strategy", "Hyperband"], "rf trains in one step"),
        (["--hp", "validation_fraction=0"], "needs validation data"),
        (["--max-jobs", "2", "--max-parallel-jobs", "4"], "more than --max-jobs 2"),
    ],
)
def test_a_bad_tuning_request_makes_no_aws_call(
    aws: MotoServer, extra: list[str], expected: str
) -> None:
    run = launch("tune", *settings_flags(), "--algorithm", "rf", "--train", TRAIN, *extra)
    assert run.returncode == 2
    assert expected in run.stdout
    assert aws.requests() == []
