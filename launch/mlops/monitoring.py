"""`monitor`: the image's drift monitor over an endpoint's captured requests.

Once: a processing job running the image's `monitor` over what data capture recorded
(all of it, or the hours since --since, listed in a manifest) with the baseline of the
model the endpoint serves (its model.tar.gz); it prints the violations the job found.
With --schedule: a monitoring schedule that runs the same container every hour (or
day) over the hour's capture, with the baseline as the schedule's statistics resource
(baseline.json, taken out of model.tar.gz and put beside the reports).

Reports land in s3://BUCKET/smvision/monitoring/ENDPOINT/: JOB_NAME/ for a processing
job, schedule/ for the schedule's runs (SageMaker adds the date path).
"""

from __future__ import annotations

import argparse
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError, LaunchError
from launch.common.options import (
    Commands,
    add_wait_argument,
    chosen_name,
    command_parser,
    planned,
    sagemaker_instance_type,
)
from launch.common.parsing import S3Uri, resource_name, s3_uri
from launch.common.progress import TERMINAL
from launch.common.settings import Settings
from launch.training.spec import OUTPUT_ROOT
from smvision.core import contract
from smvision.monitor import thresholds

if TYPE_CHECKING:
    import boto3

HELP = "compare an endpoint's captured requests with its model's baseline (drift)"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
MAX_RUNTIME_S = 3600
# Model Monitor's own cron expressions (CronExpressionGenerator.hourly and .daily).
SCHEDULES = {"hourly": "cron(0 * ? * * *)", "daily": "cron(0 0 ? * * *)"}
ENTRYPOINT = ["monitor"]
VIOLATIONS_FILE = "constraint_violations.json"
REPORT_FILE = "drift_report.json"
_RELATIVE = {"m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class MonitorPlan:
    endpoint_name: str
    since: datetime | None
    schedule: str | None
    job_name: str
    image_uri: str | None
    role: str
    bucket: str
    instance_type: str
    arguments: tuple[str, ...]
    wait: bool

    @property
    def output_prefix(self) -> str:
        return f"s3://{self.bucket}/{OUTPUT_ROOT}/monitoring/{self.endpoint_name}"


@dataclass(frozen=True)
class EndpointFacts:
    """What monitoring an endpoint needs to know about it."""

    capture_prefix: S3Uri
    model_data: str
    image: str


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = command_parser(commands, "monitor", parents, HELP, description=__doc__)
    parser.add_argument(
        "--endpoint", required=True, metavar="NAME", help="an endpoint deployed with --data-capture"
    )
    parser.add_argument(
        "--since",
        metavar="TIME",
        help="only requests since TIME: an ISO time (UTC unless it says) or an "
        "age such as 30m, 6h or 2d (default: everything captured)",
    )
    parser.add_argument(
        "--schedule",
        choices=sorted(SCHEDULES),
        help="instead of one job now, a monitoring schedule that runs the "
        "monitor over each hour's (or day's) capture",
    )
    parser.add_argument(
        "--instance-type",
        metavar="TYPE",
        help=f"ml.* instance type (default {DEFAULT_INSTANCE_TYPE})",
    )
    parser.add_argument(
        "--job-name",
        metavar="NAME",
        help="the processing job's exact name (default ENDPOINT-monitor-"
        "TIMESTAMP), or the schedule's (default ENDPOINT-drift)",
    )
    add_wait_argument(parser, "the job, then print its violations")
    thresholds.add_arguments(parser, with_defaults=False)
    parser.set_defaults(handler=planned(plan, submit))


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> MonitorPlan:
    endpoint = resource_name(args.endpoint, "--endpoint")
    if args.schedule and args.since:
        raise LaunchError(
            "--since applies to one job; a --schedule monitors each hour's "
            "requests as they come. Drop one of them."
        )
    try:
        forwarded = thresholds.as_arguments(args)
    except ValueError as error:
        raise LaunchError(str(error)) from error
    since = parse_since(args.since, now) if args.since else None
    return MonitorPlan(
        endpoint_name=endpoint,
        since=since,
        schedule=args.schedule,
        job_name=(
            resource_name(args.job_name or f"{endpoint}-drift", "--job-name")
            if args.schedule
            else chosen_name(args.job_name, "--job-name", f"{endpoint}-monitor", now)
        ),
        image_uri=settings.get("image_uri"),
        role=settings.require("role"),
        bucket=settings.require("bucket"),
        instance_type=sagemaker_instance_type(args.instance_type or DEFAULT_INSTANCE_TYPE),
        arguments=tuple(forwarded + (["--since", since.isoformat()] if since else [])),
        wait=bool(args.wait),
    )


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO time (UTC when it names no zone), or an age such as 90m, 6h or 2d."""
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit in _RELATIVE and value.isdigit():
        local = now if now.tzinfo else now.astimezone()
        return (local - timedelta(**{_RELATIVE[unit]: int(value)})).astimezone(UTC)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise LaunchError(
            f"--since '{text}' is neither an ISO time such as "
            "2026-01-31T14:00 nor an age such as 6h, 30m or 2d."
        ) from error
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def submit(monitoring: MonitorPlan, session: boto3.session.Session) -> int:
    facts = endpoint_facts(session, monitoring.endpoint_name)
    image = monitoring.image_uri or facts.image
    print(
        f"Endpoint {monitoring.endpoint_name}: captured data under {facts.capture_prefix}, "
        f"baseline from {facts.model_data}",
        flush=True,
    )
    if monitoring.schedule:
        baseline_uri = upload_baseline(session, facts.model_data, monitoring)
        request = schedule_request(monitoring, image, baseline_uri)
        return create_schedule(session.client("sagemaker"), request)
    return run_job(session, monitoring, facts, image)


# What the endpoint serves and where it captures -------------------------------------------


def endpoint_facts(session: boto3.session.Session, name: str) -> EndpointFacts:
    """The capture prefix, and the model data and image, of an endpoint's first variant."""
    from launch.common.aws import describe_or_none, reporting

    sagemaker = session.client("sagemaker")
    endpoint = describe_or_none(sagemaker.describe_endpoint, EndpointName=name)
    if endpoint is None:
        raise AwsError(f"Endpoint {name}: no such endpoint in {session.region_name}.")
    capture = endpoint.get("DataCaptureConfig") or {}
    if not capture.get("EnableCapture") or not capture.get("DestinationS3Uri"):
        raise AwsError(
            f"Endpoint {name} does not capture its requests; deploy it with "
            "--data-capture S3URI, send it traffic, then monitor it."
        )
    with reporting(f"Describing endpoint config {endpoint['EndpointConfigName']}"):
        config = sagemaker.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]
        )
        model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    if container.get("ModelPackageName"):
        with reporting(f"Describing model package {container['ModelPackageName']}"):
            package = sagemaker.describe_model_package(
                ModelPackageName=container["ModelPackageName"]
            )
        container = package["InferenceSpecification"]["Containers"][0]
    destination = str(capture["DestinationS3Uri"]).rstrip("/")
    return EndpointFacts(
        capture_prefix=s3_uri(f"{destination}/{name}/", "DataCaptureConfig.DestinationS3Uri"),
        model_data=str(container["ModelDataUrl"]),
        image=str(container["Image"]),
    )


def captured_keys(
    session: boto3.session.Session, prefix: S3Uri, since: datetime | None
) -> list[str]:
    """Capture files under the prefix, those of the hours since `since` when given (their
    path is VARIANT/yyyy/mm/dd/hh/: the hour the requests came in, UTC)."""
    from launch.common.aws import reporting

    hour = since.strftime("%Y/%m/%d/%H") if since else ""
    keys: list[str] = []
    with reporting(f"Listing the captured data under {prefix}"):
        pages = (
            session.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=prefix.bucket, Prefix=prefix.key)
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])
                parts = key[len(prefix.key) :].split("/")
                if key.endswith(".jsonl") and len(parts) == 6 and "/".join(parts[1:5]) >= hour:
                    keys.append(key)
    return keys


# One processing job -------------------------------------------------------------------------


def run_job(
    session: boto3.session.Session, monitoring: MonitorPlan, facts: EndpointFacts, image: str
) -> int:
    from launch.common.aws import console_url, reporting

    prefix = facts.capture_prefix
    keys = captured_keys(session, prefix, monitoring.since)
    if not keys:
        when = f" since {monitoring.since.isoformat()}" if monitoring.since else ""
        raise AwsError(
            f"Nothing captured under {prefix}{when}: send the endpoint requests "
            "first (capture files appear within minutes)."
        )
    output = f"{monitoring.output_prefix}/{monitoring.job_name}"
    captured_input = {"S3Uri": str(prefix), "S3DataType": "S3Prefix"}
    if monitoring.since:  # only the hours since then: a manifest of their files
        manifest = s3_uri(f"{output}/manifest.json", "manifest")
        body = json.dumps([{"prefix": str(prefix)}] + [k[len(prefix.key) :] for k in keys])
        with reporting(f"Writing the manifest of captured files to {manifest}"):
            session.client("s3").put_object(
                Bucket=manifest.bucket, Key=manifest.key, Body=body.encode()
            )
        captured_input = {"S3Uri": str(manifest), "S3DataType": "ManifestFile"}
    request = processing_request(monitoring, image, captured_input, facts.model_data, output)
    print(
        f"Processing job {monitoring.job_name}: {len(keys)} capture files on "
        f"{monitoring.instance_type}; reports to {output}/",
        flush=True,
    )
    region = str(session.region_name)
    with reporting(f"Creating processing job {monitoring.job_name}"):
        session.client("sagemaker").create_processing_job(**request)
    print(f"Console: {console_url(region, 'processing-jobs/' + monitoring.job_name)}", flush=True)
    if not monitoring.wait:
        print(
            f"Not waiting. Status: aws sagemaker describe-processing-job --region {region} "
            f"--processing-job-name {monitoring.job_name}"
        )
        return 0
    with reporting(f"Following processing job {monitoring.job_name} (the job itself goes on)"):
        described = follow_processing_job(session, monitoring.job_name)
    if described["ProcessingJobStatus"] != "Completed":
        reason = described.get("ExitMessage") or described.get("FailureReason") or ""
        raise AwsError(
            f"Processing job {monitoring.job_name} ended "
            f"{described['ProcessingJobStatus']}{': ' + reason if reason else ''}"
        )
    return print_violations(session, output)


def processing_request(
    monitoring: MonitorPlan, image: str, captured: Mapping[str, str], model_data: str, output: str
) -> dict[str, Any]:
    """CreateProcessingJob for the image's `monitor` over the captured data and the model."""

    def s3_input(name: str, source: Mapping[str, str]) -> dict[str, Any]:
        return {
            "InputName": name,
            "S3Input": {
                **source,
                "LocalPath": f"{contract.DEFAULT_PROCESSING_INPUT_DIR}/{name}",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            },
        }

    return {
        "ProcessingJobName": monitoring.job_name,
        "RoleArn": monitoring.role,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ENTRYPOINT,
            **({"ContainerArguments": list(monitoring.arguments)} if monitoring.arguments else {}),
        },
        "ProcessingInputs": [
            s3_input(contract.CAPTURED_INPUT, captured),
            # SageMaker downloads model.tar.gz as it is; the monitor reads baseline.json in it.
            s3_input(contract.BASELINE_INPUT, {"S3Uri": model_data, "S3DataType": "S3Prefix"}),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "S3Output": {
                        "S3Uri": output,
                        "LocalPath": contract.DEFAULT_PROCESSING_OUTPUT_DIR,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": monitoring.instance_type,
                "VolumeSizeInGB": 30,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_S},
    }


def follow_processing_job(
    session: boto3.session.Session, name: str, poll_s: float = 15
) -> dict[str, Any]:
    """Print status changes until the job ends, or until its own time limit and the time
    SageMaker takes around it have passed (waits.job_wait_s)."""
    import time

    from launch.common.waits import Deadline, job_wait_s

    sagemaker = session.client("sagemaker")
    region = str(session.region_name)
    last = None
    deadline: Deadline | None = None
    while True:
        described = sagemaker.describe_processing_job(ProcessingJobName=name)
        if deadline is None:
            seconds, why = job_wait_s(described)
            deadline = Deadline(seconds, f"processing job {name}", why)
        status = described["ProcessingJobStatus"]
        if status != last:
            print(f"Status: {status}", flush=True)
            last = status
        if status in TERMINAL:
            return dict(described)
        if deadline.passed:
            raise deadline.expired(
                status,
                f"Look at it: aws sagemaker describe-processing-job --region {region} "
                f"--processing-job-name {name}",
            )
        time.sleep(poll_s)


def print_violations(session: boto3.session.Session, output: str) -> int:
    """The violations the monitor wrote, one line each, and where its report is."""
    from launch.common.aws import reporting

    where = s3_uri(f"{output}/{VIOLATIONS_FILE}", "output")
    with reporting(f"Reading {where}"):
        body = session.client("s3").get_object(Bucket=where.bucket, Key=where.key)["Body"]
        violations = json.loads(body.read())["violations"]
    print(f"{len(violations)} violations" + (":" if violations else "."))
    for violation in violations:
        print(f"  {violation['description']}")
    print(f"Report: {output}/{REPORT_FILE} (and features.png, predictions.png)")
    return 0


# A monitoring schedule ------------------------------------------------------------------


def upload_baseline(
    session: boto3.session.Session, model_data: str, monitoring: MonitorPlan
) -> str:
    """baseline.json out of the model.tar.gz (read as it streams), put beside the reports:
    a schedule's only inputs are the capture and its statistics resource."""
    from launch.common.aws import reporting

    source = s3_uri(model_data, "model data")
    with reporting(f"Reading the baseline out of {model_data}"):
        body = session.client("s3").get_object(Bucket=source.bucket, Key=source.key)["Body"]
        with tarfile.open(fileobj=body, mode="r|gz") as archive:
            found = next(
                (
                    archive.extractfile(m)
                    for m in archive
                    if m.isfile() and m.name.split("/")[-1] == contract.BASELINE_FILE
                ),
                None,
            )
            baseline = found.read() if found is not None else None
    if baseline is None:
        raise AwsError(
            f"{model_data} holds no {contract.BASELINE_FILE}: the model was trained "
            "before smvision wrote baselines; retrain it to monitor its endpoint."
        )
    destination = s3_uri(f"{monitoring.output_prefix}/{contract.BASELINE_FILE}", "baseline")
    with reporting(f"Writing the baseline to {destination}"):
        session.client("s3").put_object(
            Bucket=destination.bucket, Key=destination.key, Body=baseline
        )
    return str(destination)


def schedule_request(monitoring: MonitorPlan, image: str, baseline_uri: str) -> dict[str, Any]:
    """CreateMonitoringSchedule for the image's `monitor` (a bring-your-own-container
    schedule: SageMaker downloads each period's capture to the endpoint input's LocalPath
    and the statistics resource for the container, and names them in its environment)."""
    return {
        "MonitoringScheduleName": monitoring.job_name,
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": SCHEDULES[str(monitoring.schedule)]},
            "MonitoringJobDefinition": {
                "BaselineConfig": {"StatisticsResource": {"S3Uri": baseline_uri}},
                "MonitoringInputs": [
                    {
                        "EndpointInput": {
                            "EndpointName": monitoring.endpoint_name,
                            "LocalPath": (
                                f"{contract.DEFAULT_PROCESSING_INPUT_DIR}/{contract.CAPTURED_INPUT}"
                            ),
                            "S3InputMode": "File",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    }
                ],
                "MonitoringOutputConfig": {
                    "MonitoringOutputs": [
                        {
                            "S3Output": {
                                "S3Uri": f"{monitoring.output_prefix}/schedule",
                                "LocalPath": contract.DEFAULT_PROCESSING_OUTPUT_DIR,
                                "S3UploadMode": "EndOfJob",
                            }
                        }
                    ]
                },
                "MonitoringResources": {
                    "ClusterConfig": {
                        "InstanceCount": 1,
                        "InstanceType": monitoring.instance_type,
                        "VolumeSizeInGB": 30,
                    }
                },
                "MonitoringAppSpecification": {
                    "ImageUri": image,
                    "ContainerEntrypoint": ENTRYPOINT,
                    **(
                        {"ContainerArguments": list(monitoring.arguments)}
                        if monitoring.arguments
                        else {}
                    ),
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_S},
                "RoleArn": monitoring.role,
            },
        },
    }


def create_schedule(sagemaker: Any, request: Mapping[str, Any]) -> int:
    """Create the schedule with a boto3 SageMaker client."""
    from launch.common.aws import reporting

    name = request["MonitoringScheduleName"]
    config = request["MonitoringScheduleConfig"]
    with reporting(f"Creating monitoring schedule {name}"):
        arn = sagemaker.create_monitoring_schedule(**request)["MonitoringScheduleArn"]
    [output] = config["MonitoringJobDefinition"]["MonitoringOutputConfig"]["MonitoringOutputs"]
    print(f"Monitoring schedule {arn}: {config['ScheduleConfig']['ScheduleExpression']}")
    print(f"Reports: {output['S3Output']['S3Uri']}/")
    print(f"Stop it: aws sagemaker delete-monitoring-schedule --monitoring-schedule-name {name}")
    return 0
