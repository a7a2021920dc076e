"""Every wait of the launchers has a deadline and a sentence when it passes (issue 22).

moto finishes every job at once, so a job that is still running when its deadline passes
is driven by botocore's Stubber (each answer checked against SageMaker's service model),
and time by a clock that the test's `sleep` moves on.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from rich.console import Console
from sagemaker.core.utils.exceptions import TimeoutExceededError

from launch import cli
from launch.common.progress import follow
from launch.common.waits import WaitExpired, sdk_deadline
from launch.training.follow_many import follow_jobs

REGION = "us-east-1"
START = datetime(2026, 11, 29, 10, 0, 0)


class Clock:
    """Seconds that pass only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += 1000.0  # a poll interval that is long, to reach the deadline in a few


def described(name: str, status: str, secondary: str, max_runtime: int) -> dict[str, Any]:
    """A DescribeTrainingJob answer with the fields SageMaker's model requires."""
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/{name}/output/model.tar.gz"},
        "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "CreationTime": START,
    }


def clients() -> tuple[Any, Any]:
    session = boto3.session.Session(region_name=REGION)
    return session.client("sagemaker"), session.client("logs")


def test_following_a_training_job_stops_at_its_limit_and_an_hour_and_says_so() -> None:
    sagemaker, logs = clients()
    job = "smvision-svm-20261129-100000-000"
    with Stubber(sagemaker) as describe, Stubber(logs) as log_streams:
        for _ in range(7):  # at 0, 1000, ... 6000 s
            describe.add_response(
                "describe_training_job",
                described(job, "InProgress", "Training", 1800),
                {"TrainingJobName": job},
            )
            log_streams.add_response("describe_log_streams", {"logStreams": []})
        clock = Clock()
        shown: list[str] = []
        with pytest.raises(WaitExpired) as expired:
            follow(sagemaker, logs, job, REGION, 10, shown.append, clock.sleep, clock)
    assert str(expired.value) == (
        f"Stopped waiting for training job {job} after 5400 s (its MaxRuntimeInSeconds of "
        "1800 s and 3600 s to start and finish); it is still InProgress / Training, and goes "
        f"on in SageMaker. Look at it: aws sagemaker describe-training-job --region {REGION} "
        f"--training-job-name {job}; stop it: aws sagemaker stop-training-job --region "
        f"{REGION} --training-job-name {job}"
    )
    assert clock.sleeps == [10] * 6  # polled until 5000 s, gave up at 6000 s
    assert shown == ["Status: InProgress / Training"]


def test_following_several_jobs_stops_at_the_first_deadline_and_names_what_runs() -> None:
    sagemaker, _ = clients()
    jobs = {"svm": "job-svm", "cnn": "job-cnn"}
    with Stubber(sagemaker) as describe:
        describe.add_response(
            "describe_training_job",
            described("job-svm", "Completed", "Completed", 600),
            {"TrainingJobName": "job-svm"},
        )
        for _ in range(6):  # at 0, 1000, ... 5000 s
            describe.add_response(
                "describe_training_job",
                described("job-cnn", "InProgress", "Training", 600),
                {"TrainingJobName": "job-cnn"},
            )
        clock = Clock()
        with pytest.raises(WaitExpired) as expired:
            follow_jobs(
                sagemaker, jobs, REGION, 30, clock.sleep, Console(file=io.StringIO()), clock
            )
    message = str(expired.value)
    assert message.startswith(
        "Stopped waiting for cnn's training job after 4200 s (its MaxRuntimeInSeconds of 600 s "
        "and 3600 s to start and finish); it is still InProgress / Training"
    )
    assert f"aws sagemaker stop-training-job --region {REGION} --training-job-name job-cnn" in (
        message
    )
    assert "job-svm" not in message


def test_an_sdk_wait_that_times_out_ends_in_the_sentence() -> None:
    with (
        pytest.raises(WaitExpired) as expired,
        sdk_deadline(
            "endpoint e to be InService", 600, "--wait-timeout", "Look at it.", lambda: "Creating"
        ),
    ):
        raise TimeoutExceededError(resource_type="Endpoint", status="Creating")
    assert str(expired.value) == (
        "Stopped waiting for endpoint e to be InService after 600 s (--wait-timeout); it is "
        "still Creating, and goes on in SageMaker. Look at it."
    )


@pytest.mark.parametrize("command", ["deploy", "transform"])
def test_a_wait_timeout_that_is_no_number_of_seconds_is_refused_before_aws(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = {
        "deploy": ["--model-data", "s3://my-bucket/model.tar.gz"],
        "transform": [
            "--model-data",
            "s3://my-bucket/model.tar.gz",
            "--input",
            "s3://my-bucket/in/",
        ]
        + ["--output", "s3://my-bucket/out/"],
    }[command]
    settings = ["--region", REGION, "--role", "arn:aws:iam::123456789012:role/r"]
    settings += [
        "--bucket",
        "my-bucket",
        "--image-uri",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/i",
    ]

    def no_aws(region: str) -> Any:
        raise AssertionError("an AWS session was opened")

    code = cli.main([command, *settings, *arguments, "--wait-timeout", "0"], open_session=no_aws)
    assert code == 2
    assert "--wait-timeout" in capsys.readouterr().err
