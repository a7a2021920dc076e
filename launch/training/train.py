"""`train`: one SageMaker training job running the smvision image.

The job is created from its `launch.training.definition.JobDefinition` with
`sagemaker.core.resources.TrainingJob.create`, so that `--job-name` is the job's exact
name (ModelTrainer always appends a timestamp).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from launch.common import options
from launch.common.errors import AwsError, LaunchError
from launch.common.parsing import positive_int, s3_uri
from launch.common.settings import Settings
from launch.training import spec as jobs
from launch.training.definition import JobDefinition

if TYPE_CHECKING:
    import boto3

HELP = "start a training job (validated here first), wait for it, print its model and metrics"


@dataclass(frozen=True)
class TrainingPlan:
    job_name: str
    definition: JobDefinition
    wait: bool


def add_parser(commands: options.Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = options.command_parser(commands, "train", parents, HELP)
    jobs.add_job_arguments(parser)
    parser.add_argument(
        "--spot",
        action="store_true",
        help="managed spot training: cheaper, may be interrupted; cnn and "
        "resnet50 resume from their S3 checkpoints, svm and rf restart",
    )
    parser.add_argument(
        "--max-wait",
        metavar="SECONDS",
        help="with --spot: give up after this long including waiting for "
        "spot capacity (default twice --max-run)",
    )
    parser.add_argument(
        "--checkpoint-s3-uri",
        metavar="S3URI",
        help="where checkpoints sync to (default with --spot: "
        "s3://BUCKET/smvision/checkpoints/JOB_NAME); point it at an earlier "
        "job's checkpoints to resume from them",
    )
    options.add_name_argument(parser, "the job's exact name", "smvision-ALGORITHM")
    options.add_wait_argument(parser, "the job, streaming its logs")
    parser.set_defaults(handler=options.planned(plan, submit))


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> TrainingPlan:
    spec = jobs.sagemaker_job_spec(args, settings)
    job_name = options.chosen_name(args.job_name, "--job-name", f"smvision-{spec.algorithm}", now)
    definition = job_definition(
        spec, settings, job_name, bool(args.spot), args.max_wait, args.checkpoint_s3_uri
    )
    return TrainingPlan(job_name, definition, bool(args.wait))


def job_definition(
    spec: jobs.JobSpec,
    settings: Settings,
    job_name: str,
    spot: bool,
    max_wait: str | None = None,
    checkpoint_s3_uri: str | None = None,
) -> JobDefinition:
    """The job `train` starts (and `compare`, once per algorithm): output, spot, checkpoints."""
    bucket = settings.require("bucket")
    checkpoint_uri = None
    if checkpoint_s3_uri:
        checkpoint_uri = str(s3_uri(checkpoint_s3_uri, "--checkpoint-s3-uri"))
    elif spot:
        checkpoint_uri = f"{jobs.output_prefix(bucket, 'checkpoints')}/{job_name}"
    return JobDefinition(
        spec=spec,
        role=settings.require("role"),
        output_uri=jobs.output_prefix(bucket, "training"),
        spot=spot,
        max_wait_s=_max_wait_s(spot, max_wait, spec.max_run_s),
        checkpoint_uri=checkpoint_uri,
    )


def _max_wait_s(spot: bool, max_wait: str | None, max_run_s: int) -> int | None:
    if not spot:
        if max_wait is not None:
            raise LaunchError(
                "--max-wait applies to managed spot training only; add --spot or drop it."
            )
        return None
    max_wait_s = positive_int(max_wait, "--max-wait") if max_wait is not None else 2 * max_run_s
    if max_wait_s < max_run_s:
        raise LaunchError(
            f"--max-wait {max_wait_s} is shorter than --max-run {max_run_s}; SageMaker "
            "needs max-wait >= max-run. Raise --max-wait or lower --max-run."
        )
    return max_wait_s


def submit(training: TrainingPlan, session: boto3.session.Session) -> int:
    from launch.common.aws import console_url, print_status_command, reporting
    from launch.common.progress import follow_training_job

    spec, definition = training.definition.spec, training.definition
    region = str(session.region_name)
    print(
        f"Training job {training.job_name}: {spec.algorithm} on {spec.instance_count} x "
        f"{spec.instance_type}{' (spot)' if definition.spot else ''}",
        flush=True,
    )
    with reporting(f"Creating training job {training.job_name}"):
        definition.create_training_job(session, training.job_name)
    print(f"Console: {console_url(region, 'jobs/' + training.job_name)}", flush=True)
    if definition.checkpoint_uri:
        print(f"Checkpoints: {definition.checkpoint_uri}", flush=True)
    if not training.wait:
        print_status_command("training-job", training.job_name, region)
        return 0
    with reporting(f"Following training job {training.job_name} (the job itself goes on)"):
        described = follow_training_job(session, training.job_name)
    status = report(described)
    print_data_report(session, described)
    return status


def print_data_report(session: boto3.session.Session, described: Mapping[str, Any]) -> None:
    """The data report's summary, from evaluation.json in the job's output.tar.gz."""
    from launch.training.outputs import OutputMissing, read_evaluation

    try:
        evaluation = read_evaluation(session.client("s3"), described)
    except OutputMissing as error:
        print(f"Data report: not read ({error})")
        return
    for line in data_report_lines(evaluation):
        print(line)


def data_report_lines(evaluation: Mapping[str, Any]) -> list[str]:
    """What `train` prints of the data report: its summary, or why there is none."""
    found = evaluation.get("data_report")
    if not isinstance(found, Mapping) or not found.get("summary"):
        return ["Data report: none (the job ran with data_report=false, or an older image)."]
    lines = [str(line) for line in found["summary"]]
    return [
        lines[0],
        *(f"  {line}" for line in lines[1:]),
        "  (output.tar.gz holds data_report.json and its pictures)",
    ]


def report(described: Mapping[str, Any]) -> int:
    """Print how a finished job ended: its model and final metrics, or why it did not."""
    name, status = described["TrainingJobName"], described["TrainingJobStatus"]
    if status != "Completed":
        reason = described.get("FailureReason")
        raise AwsError(f"Training job {name} ended {status}{': ' + reason if reason else ''}")
    print(f"Model artifact: {described['ModelArtifacts']['S3ModelArtifacts']}")
    metrics = described.get("FinalMetricDataList") or []
    print("Final metrics:" if metrics else "Final metrics: none reported")
    for metric in metrics:
        print(f"  {metric['MetricName']} = {metric['Value']:g}")
    return 0
