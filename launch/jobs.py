"""What a training job is, for `train` and `tune` alike, checked before any AWS call.

A `JobSpec` holds the job as SageMaker will receive it: the image, the channels and
their S3 URIs, the compute, and the hyperparameters as the strings the image will read.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from launch.errors import LaunchError
from launch.parsing import key_value, positive_int, s3_uri
from launch.settings import Settings
from smvision import hyperparameters as schema
from smvision import specs

# SageMaker's own default for MaxRuntimeInSeconds.
DEFAULT_MAX_RUN_S = 86400
OUTPUT_ROOT = "smvision"

CHANNEL_OPTIONS = {
    "train": "--train",
    "validation": "--validation",
    "test": "--test",
    "pretrained": "--pretrained",
}


@dataclass(frozen=True)
class JobSpec:
    algorithm: str
    hyperparameters: Mapping[str, str]
    channels: Mapping[str, str]
    image_uri: str
    role: str
    bucket: str
    instance_type: str
    instance_count: int
    max_run_s: int

    def output_uri(self, kind: str) -> str:
        return f"s3://{self.bucket}/{OUTPUT_ROOT}/{kind}"


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
    parser.add_argument("--instance-type", metavar="TYPE",
                        help="ml.* instance type (default: the algorithm's, "
                        + ", ".join(f"{s.training_instance_type} for {s.name}"
                                    for s in specs.table().values()) + ")")
    parser.add_argument("--instance-count", default="1", metavar="N",
                        help="instances per job (default 1); "
                        + ", ".join(s.name for s in specs.table().values() if not s.spans_hosts)
                        + " use only the first")
    parser.add_argument("--max-run", default=str(DEFAULT_MAX_RUN_S), metavar="SECONDS",
                        help=f"stop a job after this long (default {DEFAULT_MAX_RUN_S})")


def job_spec(args: argparse.Namespace, settings: Settings) -> JobSpec:
    algorithm = str(args.algorithm)
    channels = {}
    for channel, option in CHANNEL_OPTIONS.items():
        value = getattr(args, channel)
        if value:
            channels[channel] = str(s3_uri(value, option))
    check_channels(algorithm, channels)
    instance_type = args.instance_type or specs.get(algorithm).training_instance_type
    if not instance_type.startswith("ml."):
        raise LaunchError(
            f"--instance-type '{instance_type}' is not a SageMaker instance type; use one "
            "such as ml.m5.xlarge or ml.g5.xlarge."
        )
    return JobSpec(
        algorithm=algorithm,
        hyperparameters=validated_hyperparameters(algorithm, args.hp),
        channels=channels,
        image_uri=settings.require("image_uri"),
        role=settings.require("role"),
        bucket=settings.require("bucket"),
        instance_type=instance_type,
        instance_count=positive_int(args.instance_count, "--instance-count"),
        max_run_s=positive_int(args.max_run, "--max-run"),
    )


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
