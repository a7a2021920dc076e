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

DEFAULT_INSTANCE_TYPES = {
    "svm": "ml.m5.xlarge",
    "rf": "ml.m5.xlarge",
    "cnn": "ml.p3.2xlarge",
    "resnet50": "ml.p3.2xlarge",
}
SINGLE_HOST_ALGORITHMS = ("svm", "rf")
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
    parser.add_argument("--algorithm", required=True, choices=schema.ALGORITHMS,
                        help="the model to train (see the README's algorithm table)")
    parser.add_argument("--train", required=True, metavar="S3URI",
                        help="S3 prefix of the training images (class folders, .lst or .npz)")
    parser.add_argument("--validation", metavar="S3URI",
                        help="S3 prefix of validation images; without it the job holds out "
                        "validation_fraction of train")
    parser.add_argument("--test", metavar="S3URI",
                        help="S3 prefix of test images, evaluated once at the end")
    parser.add_argument("--pretrained", metavar="S3URI",
                        help="S3 prefix holding starting weights (resnet50 only)")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                        help="a hyperparameter (repeat for more); checked against the "
                        "algorithm's schema on this machine before anything is sent")
    parser.add_argument("--instance-type", metavar="TYPE",
                        help="ml.* instance type (default ml.m5.xlarge for svm/rf, "
                        "ml.p3.2xlarge for cnn/resnet50)")
    parser.add_argument("--instance-count", default="1", metavar="N",
                        help="instances per job (default 1); svm and rf use only the first")
    parser.add_argument("--max-run", default=str(DEFAULT_MAX_RUN_S), metavar="SECONDS",
                        help=f"stop a job after this long (default {DEFAULT_MAX_RUN_S})")


def job_spec(args: argparse.Namespace, settings: Settings) -> JobSpec:
    algorithm = str(args.algorithm)
    channels = {}
    for channel, option in CHANNEL_OPTIONS.items():
        value = getattr(args, channel)
        if value:
            channels[channel] = str(s3_uri(value, option))
    if "pretrained" in channels and algorithm != "resnet50":
        raise LaunchError(
            f"--pretrained is read by resnet50 only; drop it for --algorithm {algorithm}."
        )
    instance_type = args.instance_type or DEFAULT_INSTANCE_TYPES[algorithm]
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


def multi_host_warning(spec: JobSpec) -> str | None:
    if spec.algorithm in SINGLE_HOST_ALGORITHMS and spec.instance_count > 1:
        others = ("the other instance stays" if spec.instance_count == 2
                  else f"the other {spec.instance_count - 1} instances stay")
        return (
            f"warning: {spec.algorithm} trains on the first host only; with --instance-count "
            f"{spec.instance_count} {others} idle, billed all the same. Use "
            "--instance-count 1 for svm and rf."
        )
    return None
