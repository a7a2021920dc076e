"""`train`: one SageMaker training job running the smvision image.

The job is created with `sagemaker.core.resources.TrainingJob.create` so that
`--job-name` is the job's exact name (ModelTrainer always appends a timestamp).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from launch.errors import AwsError, LaunchError
from launch.jobs import JobSpec, add_job_arguments, job_spec, multi_host_warning
from launch.parsing import positive_int, resource_name, s3_uri, timestamped_name
from launch.settings import Settings
from smvision.metrics import METRIC_DEFINITIONS

if TYPE_CHECKING:
    import boto3

    from launch.aws import SessionFactory

# Where the image reads and writes checkpoints (smvision.contract's checkpoint_dir; a test
# checks that both agree). SageMaker syncs it with the checkpoint S3 URI.
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"

HELP = "start a training job (validated here first), wait for it, print its model and metrics"


@dataclass(frozen=True)
class TrainingPlan:
    job_name: str
    spec: JobSpec
    spot: bool
    max_wait_s: int | None
    checkpoint_uri: str | None
    wait: bool

    @property
    def output_uri(self) -> str:
        return self.spec.output_uri("training")


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser("train", parents=parents, help=HELP, description=HELP + ".")
    add_job_arguments(parser)
    parser.add_argument("--spot", action="store_true",
                        help="managed spot training: cheaper, may be interrupted; cnn and "
                        "resnet50 resume from their S3 checkpoints, svm and rf restart")
    parser.add_argument("--max-wait", metavar="SECONDS",
                        help="with --spot: give up after this long including waiting for "
                        "spot capacity (default twice --max-run)")
    parser.add_argument("--checkpoint-s3-uri", metavar="S3URI",
                        help="where checkpoints sync to (default with --spot: "
                        "s3://BUCKET/smvision/checkpoints/JOB_NAME); point it at an earlier "
                        "job's checkpoints to resume from them")
    parser.add_argument("--job-name", metavar="NAME",
                        help="the job's exact name (default smvision-ALGORITHM-TIMESTAMP)")
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                        help="wait for the job, streaming its logs (default --wait)")
    parser.set_defaults(handler=run)


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> TrainingPlan:
    spec = job_spec(args, settings)
    job_name = (resource_name(args.job_name, "--job-name") if args.job_name
                else timestamped_name(f"smvision-{spec.algorithm}", now))
    max_wait_s = None
    if args.max_wait is not None and not args.spot:
        raise LaunchError(
            "--max-wait applies to managed spot training only; add --spot or drop it."
        )
    if args.spot:
        max_wait_s = (positive_int(args.max_wait, "--max-wait") if args.max_wait is not None
                      else 2 * spec.max_run_s)
        if max_wait_s < spec.max_run_s:
            raise LaunchError(
                f"--max-wait {max_wait_s} is shorter than --max-run {spec.max_run_s}; SageMaker "
                "needs max-wait >= max-run. Raise --max-wait or lower --max-run."
            )
    checkpoint_uri = None
    if args.checkpoint_s3_uri:
        checkpoint_uri = str(s3_uri(args.checkpoint_s3_uri, "--checkpoint-s3-uri"))
    elif args.spot:
        checkpoint_uri = f"{spec.output_uri('checkpoints')}/{job_name}"
    return TrainingPlan(job_name, spec, bool(args.spot), max_wait_s, checkpoint_uri,
                        bool(args.wait))


def run(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    training = plan(args, settings, datetime.now())
    warning = multi_host_warning(training.spec.algorithm, training.spec.instance_count)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return submit(training, open_session(settings.require("region")))


def submit(training: TrainingPlan, session: boto3.session.Session) -> int:
    from sagemaker.core import shapes
    from sagemaker.core.resources import TrainingJob

    from launch.aws import console_url, reporting, show_sdk_progress
    from launch.progress import follow_training_job

    spec = training.spec
    region = str(session.region_name)
    show_sdk_progress()
    print(f"Training job {training.job_name}: {spec.algorithm} on {spec.instance_count} x "
          f"{spec.instance_type}{' (spot)' if training.spot else ''}", flush=True)
    with reporting(f"Creating training job {training.job_name}"):
        TrainingJob.create(
            session=session,
            region=region,
            training_job_name=training.job_name,
            role_arn=spec.role,
            algorithm_specification=shapes.AlgorithmSpecification(
                training_image=spec.image_uri,
                training_input_mode="File",
                metric_definitions=[
                    shapes.MetricDefinition(name=d["Name"], regex=d["Regex"])
                    for d in METRIC_DEFINITIONS
                ],
            ),
            hyper_parameters=dict(spec.hyperparameters),
            input_data_config=channels(spec),
            output_data_config=shapes.OutputDataConfig(s3_output_path=training.output_uri),
            resource_config=shapes.ResourceConfig(
                instance_type=spec.instance_type,
                instance_count=spec.instance_count,
                volume_size_in_gb=30,
            ),
            stopping_condition=shapes.StoppingCondition(
                max_runtime_in_seconds=spec.max_run_s,
                max_wait_time_in_seconds=training.max_wait_s,
            ),
            enable_managed_spot_training=training.spot,
            checkpoint_config=(
                shapes.CheckpointConfig(s3_uri=training.checkpoint_uri,
                                        local_path=CHECKPOINT_LOCAL_PATH)
                if training.checkpoint_uri else None
            ),
        )
    print(f"Console: {console_url(region, 'jobs/' + training.job_name)}", flush=True)
    if training.checkpoint_uri:
        print(f"Checkpoints: {training.checkpoint_uri}", flush=True)
    if not training.wait:
        print(f"Not waiting. Status: aws sagemaker describe-training-job --region {region} "
              f"--training-job-name {training.job_name}")
        return 0
    with reporting(f"Following training job {training.job_name} (the job itself goes on)"):
        described = follow_training_job(session, training.job_name)
    return report(described)


def channels(spec: JobSpec) -> list[Any]:
    from sagemaker.core import shapes

    return [
        shapes.Channel(
            channel_name=name,
            data_source=shapes.DataSource(
                s3_data_source=shapes.S3DataSource(
                    s3_data_type="S3Prefix",
                    s3_uri=uri,
                    s3_data_distribution_type="FullyReplicated",
                )
            ),
            input_mode="File",
        )
        for name, uri in spec.channels.items()
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
