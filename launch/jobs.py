"""What a training job is, for `train`, `tune` and `train --local` alike, checked before
any AWS call.

A `JobSpec` holds the job as the user asked for it, validated: the algorithm, the
hyperparameters as the strings the image will read, the channels (S3 URIs, or local
folders with --local), the image and the compute. `launch.definition` turns it into
the job SageMaker receives.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from launch.errors import LaunchError
from launch.options import add_instance_arguments, sagemaker_instance_type
from launch.parsing import key_value, positive_int, s3_uri
from launch.settings import Settings
from smvision import contract, specs
from smvision import hyperparameters as schema

# SageMaker's own default for MaxRuntimeInSeconds.
DEFAULT_MAX_RUN_S = 86400
OUTPUT_ROOT = "smvision"

CHANNEL_OPTIONS = {channel: f"--{channel}" for channel in contract.CHANNELS}


@dataclass(frozen=True)
class JobSpec:
    algorithm: str
    hyperparameters: Mapping[str, str]
    channels: Mapping[str, str]
    image_uri: str
    instance_type: str
    instance_count: int
    max_run_s: int


def output_prefix(bucket: str, kind: str) -> str:
    """Where the launchers write in the user's bucket: s3://BUCKET/smvision/KIND."""
    return f"s3://{bucket}/{OUTPUT_ROOT}/{kind}"


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algorithm", required=True, choices=specs.names(),
                        help="the model to train (see the README's algorithm table)")
    parser.add_argument("--train", required=True, metavar="S3URI",
                        help="S3 prefix of the training images (class folders, .lst or .npz)")
    parser.add_argument("--validation", metavar="S3URI",
                        help="S3 prefix of validation images; without it the job holds out "
                        "validation_fraction of train")
    parser.add_argument("--test", metavar="S3URI",
                        help="S3 prefix of test images, evaluated once at the end")
    parser.add_argument("--pretrained", metavar="S3URI",
                        help="S3 prefix holding starting weights (for the algorithms that "
                        "read a 'pretrained' channel: " + ", ".join(_readers("pretrained")) + ")")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                        help="a hyperparameter (repeat for more); checked against the "
                        "algorithm's schema on this machine before anything is sent")
    add_instance_arguments(
        parser,
        type_default="the algorithm's: " + ", ".join(
            f"{s.training_instance_type} for {s.name}" for s in specs.table().values()),
        count_meaning="instances per job; " + ", ".join(
            s.name for s in specs.table().values() if not s.spans_hosts) + " use only the first",
    )
    parser.add_argument("--max-run", default=str(DEFAULT_MAX_RUN_S), metavar="SECONDS",
                        help=f"stop a job after this long (default {DEFAULT_MAX_RUN_S})")


def given_channels(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(channel, option, value) for every channel option the user gave."""
    return [(channel, option, str(getattr(args, channel)))
            for channel, option in CHANNEL_OPTIONS.items() if getattr(args, channel)]


def job_spec(args: argparse.Namespace, settings: Settings, channels: Mapping[str, str],
             instance_type: str) -> JobSpec:
    """The job the user asked for, with a warning on stderr where it would leave hosts idle;
    `channels` and `instance_type` are checked by the caller (S3 URIs and ml.* types for
    SageMaker, folders and local_* types with --local)."""
    algorithm = str(args.algorithm)
    check_channels(algorithm, channels)
    spec = JobSpec(
        algorithm=algorithm,
        hyperparameters=validated_hyperparameters(algorithm, args.hp),
        channels=channels,
        image_uri=settings.require("image_uri"),
        instance_type=instance_type,
        instance_count=positive_int(args.instance_count, "--instance-count"),
        max_run_s=positive_int(args.max_run, "--max-run"),
    )
    warning = multi_host_warning(spec.algorithm, spec.instance_count)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return spec


def sagemaker_job_spec(args: argparse.Namespace, settings: Settings) -> JobSpec:
    """A job for SageMaker: S3 channels, and the algorithm's instance type by default."""
    channels = {channel: str(s3_uri(value, option))
                for channel, option, value in given_channels(args)}
    instance_type = sagemaker_instance_type(
        args.instance_type or specs.get(args.algorithm).training_instance_type,
        "ml.m5.xlarge or ml.g5.xlarge")
    return job_spec(args, settings, channels, instance_type)


def _readers(channel: str) -> list[str]:
    return [spec.name for spec in specs.table().values() if spec.reads_channel(channel)]


def check_channels(algorithm: str, channels: Mapping[str, object]) -> None:
    """Every channel the algorithm requires is given, and none it does not read."""
    spec = specs.get(algorithm)
    for channel in channels:
        if not spec.reads_channel(channel):
            readers = ", ".join(_readers(channel)) or "no algorithm"
            raise LaunchError(
                f"{CHANNEL_OPTIONS[channel]} is read by {readers} only; drop it for "
                f"--algorithm {algorithm}."
            )
    for channel in spec.required_channels:
        if channel not in channels:
            raise LaunchError(f"--algorithm {algorithm} needs {CHANNEL_OPTIONS[channel]}.")


def validated_hyperparameters(algorithm: str, pairs: Sequence[str]) -> dict[str, str]:
    """The user's hyperparameters, validated, as the strings the job will receive.

    Only keys the user set are sent (plus `algorithm`), so the image's defaults apply
    to the rest; each value is sent in the schema's own spelling (`C=5` as "5.0").
    """
    raw: dict[str, str] = {}
    for pair in pairs:
        key, value = key_value(pair, "--hp")
        if key == "algorithm":
            raise LaunchError("--hp algorithm=... is not allowed; use --algorithm.")
        if schema.is_platform_key(key):
            raise LaunchError(
                f"--hp {key}: keys starting with '_' or 'sagemaker_' belong to SageMaker; "
                "drop it."
            )
        if key in raw:
            raise LaunchError(f"--hp {key} is given twice ('{raw[key]}' and '{value}'); keep one.")
        raw[key] = value
    try:
        parsed = schema.parse({"algorithm": algorithm, **raw}, strict=True)
    except schema.HyperparameterError as error:
        raise LaunchError(f"{error} Nothing was sent to AWS.") from error
    return {"algorithm": algorithm} | {
        key: schema.format_value(parsed.values[key]) for key in raw
    }


def multi_host_warning(algorithm: str, instance_count: int) -> str | None:
    if not specs.get(algorithm).spans_hosts and instance_count > 1:
        others = ("the other instance stays" if instance_count == 2
                  else f"the other {instance_count - 1} instances stay")
        return (
            f"warning: {algorithm} trains on the first host only; with --instance-count "
            f"{instance_count} {others} idle, billed all the same. Use "
            f"--instance-count 1 for {algorithm}."
        )
    return None
