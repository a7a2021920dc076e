"""What a training job is, for `train`, `tune` and `train --local` alike, checked before
any AWS call.

A `JobSpec` holds the job as the user asked for it, validated: the algorithm, the
hyperparameters as the strings the image will read, the channels (S3 URIs, or local
folders with --local, and how each reaches the job), the image and the compute.
`launch.training.definition` turns it into the job SageMaker receives.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from launch.common.errors import LaunchError
from launch.common.options import add_instance_arguments, sagemaker_instance_type
from launch.common.parsing import key_value, positive_int, s3_uri
from launch.common.settings import Settings
from smvision.core import contract
from smvision.schema import hyperparameters as schema
from smvision.schema import specs

# SageMaker's own default for MaxRuntimeInSeconds.
DEFAULT_MAX_RUN_S = 86400
OUTPUT_ROOT = "smvision"

CHANNEL_OPTIONS = {channel: f"--{channel}" for channel in contract.CHANNELS}
# The data channels an augmented manifest can feed, and its option for each.
MANIFEST_OPTIONS = {
    "train": "--manifest",
    "validation": "--validation-manifest",
    "test": "--test-manifest",
}
DATA_CHANNELS = tuple(MANIFEST_OPTIONS)


@dataclass(frozen=True)
class ChannelSource:
    """Where a channel's data is (an S3 URI, or a folder with --local) and how SageMaker
    hands it to the job: its input mode, and for an augmented manifest the attributes
    it streams (in Pipe mode, each a RecordIO record)."""

    uri: str
    input_mode: str = contract.FILE_MODE
    attribute_names: tuple[str, ...] = ()
    content_type: str | None = None

    @property
    def is_manifest(self) -> bool:
        return bool(self.attribute_names)


@dataclass(frozen=True)
class JobSpec:
    algorithm: str
    hyperparameters: Mapping[str, str]
    channels: Mapping[str, ChannelSource]
    image_uri: str
    instance_type: str
    instance_count: int
    max_run_s: int


def output_prefix(bucket: str, kind: str) -> str:
    """Where the launchers write in the user's bucket: s3://BUCKET/smvision/KIND."""
    return f"s3://{bucket}/{OUTPUT_ROOT}/{kind}"


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--algorithm",
        required=True,
        choices=specs.names(),
        help="the model to train (see the README's algorithm table)",
    )
    parser.add_argument(
        "--train",
        metavar="S3URI",
        help="S3 prefix of the training images (class folders, .lst files, "
        ".rec files or .npz files); or give --manifest",
    )
    parser.add_argument(
        "--validation",
        metavar="S3URI",
        help="S3 prefix of validation images; without it the job holds out "
        "validation_fraction of train",
    )
    parser.add_argument(
        "--test", metavar="S3URI", help="S3 prefix of test images, evaluated once at the end"
    )
    parser.add_argument(
        "--pretrained",
        metavar="S3URI",
        help="S3 prefix holding starting weights (for the algorithms that "
        "read a 'pretrained' channel: " + ", ".join(_readers("pretrained")) + ")",
    )
    parser.add_argument(
        "--model",
        metavar="S3URI",
        help="an earlier job's model.tar.gz to continue from (incremental "
        "training; for " + ", ".join(_readers("model")) + ")",
    )
    add_manifest_arguments(parser)
    parser.add_argument(
        "--input-mode",
        choices=contract.INPUT_MODES,
        default=contract.FILE_MODE,
        help="how the train, validation and test prefixes reach the job: "
        "File copies them before it starts (default), FastFile streams each "
        "file as it is read (large class-folder sets), Pipe streams .rec files",
    )
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter (repeat for more); checked against the "
        "algorithm's schema on this machine before anything is sent",
    )
    add_instance_arguments(
        parser,
        type_default="the algorithm's: "
        + ", ".join(f"{s.training_instance_type} for {s.name}" for s in specs.table().values()),
        count_meaning="instances per job; "
        + ", ".join(s.name for s in specs.table().values() if not s.spans_hosts)
        + " use only the first",
    )
    parser.add_argument(
        "--max-run",
        default=str(DEFAULT_MAX_RUN_S),
        metavar="SECONDS",
        help=f"stop a job after this long (default {DEFAULT_MAX_RUN_S})",
    )


def add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest",
        metavar="S3URI",
        help="the train channel as an augmented manifest (JSON Lines, as "
        "Ground Truth writes them), streamed in Pipe mode; instead of --train",
    )
    parser.add_argument(
        "--validation-manifest",
        metavar="S3URI",
        help="the validation channel as an augmented manifest",
    )
    parser.add_argument(
        "--test-manifest", metavar="S3URI", help="the test channel as an augmented manifest"
    )
    parser.add_argument(
        "--attribute-names",
        metavar="IMAGE,LABEL[,LABEL-metadata]",
        help="with a manifest: the image attribute (ending in -ref, such as "
        "source-ref), the label attribute, and optionally the label's "
        "metadata attribute, whose class names the model then uses",
    )


def given_channels(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(channel, option, value) for every channel option the user gave, manifests included
    (a command without some of these options, such as `compare`, has none of them)."""
    given = [
        (channel, option, str(getattr(args, channel)))
        for channel, option in CHANNEL_OPTIONS.items()
        if getattr(args, channel, None)
    ]
    given += [
        (channel, option, str(getattr(args, _attribute(option))))
        for channel, option in MANIFEST_OPTIONS.items()
        if getattr(args, _attribute(option), None)
    ]
    seen: dict[str, str] = {}
    for channel, option, _ in given:
        if channel in seen:
            raise LaunchError(
                f"{seen[channel]} and {option} both give the {channel} channel; keep one."
            )
        seen[channel] = option
    return given


def _attribute(option: str) -> str:
    return option.removeprefix("--").replace("-", "_")


def channel_sources(args: argparse.Namespace, uris: Mapping[str, str]) -> dict[str, ChannelSource]:
    """How each channel reaches the job: manifests in Pipe mode with their attributes, the
    data prefixes in --input-mode, the model and pretrained channels as files."""
    manifests = {
        channel for channel, option in MANIFEST_OPTIONS.items() if getattr(args, _attribute(option))
    }
    attributes = attribute_names(args.attribute_names, bool(manifests))
    if manifests and args.input_mode != contract.FILE_MODE:
        raise LaunchError(
            f"--input-mode {args.input_mode} applies to --train, --validation "
            "and --test prefixes; a manifest always streams in Pipe mode. Drop it."
        )
    sources = {}
    for channel, uri in uris.items():
        if channel in manifests:
            sources[channel] = ChannelSource(
                uri, contract.PIPE_MODE, attributes, contract.RECORDIO_CONTENT_TYPE
            )
        elif channel in DATA_CHANNELS:
            piped = args.input_mode == contract.PIPE_MODE  # .rec files, one after another
            content_type = contract.RECORDIO_CONTENT_TYPE if piped else None
            sources[channel] = ChannelSource(uri, args.input_mode, content_type=content_type)
        elif channel == "model":
            sources[channel] = ChannelSource(uri, content_type=contract.MODEL_CONTENT_TYPE)
        else:
            sources[channel] = ChannelSource(uri)
    return sources


def attribute_names(text: str | None, needed: bool) -> tuple[str, ...]:
    """--attribute-names, checked: the image attribute first, then the label (and its
    metadata)."""
    if not needed:
        if text:
            raise LaunchError(
                "--attribute-names applies to --manifest, --validation-manifest "
                "and --test-manifest; add one or drop it."
            )
        return ()
    if not text:
        raise LaunchError(
            "A manifest needs --attribute-names IMAGE,LABEL, such as "
            "--attribute-names source-ref,class: the image attribute, then the "
            "label attribute of the manifest's lines."
        )
    names = tuple(name.strip() for name in text.split(","))
    if not 2 <= len(names) <= 3 or not all(names) or len(set(names)) != len(names):
        raise LaunchError(
            f"--attribute-names '{text}' must name two or three different "
            "attributes: the image, the label, optionally the label's metadata."
        )
    if not names[0].endswith("-ref") or any(n.endswith("-ref") for n in names[1:]):
        raise LaunchError(
            f"--attribute-names '{text}' must list the image attribute first, "
            "and only it ends in -ref (such as source-ref,class): the job reads "
            "the image first, then the label."
        )
    return names


def job_spec(
    args: argparse.Namespace,
    settings: Settings,
    channels: Mapping[str, ChannelSource],
    instance_type: str,
) -> JobSpec:
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
    uris = {channel: str(s3_uri(value, option)) for channel, option, value in given_channels(args)}
    channels = channel_sources(args, uris)
    instance_type = sagemaker_instance_type(
        args.instance_type or specs.get(args.algorithm).training_instance_type,
        "ml.m5.xlarge or ml.g5.xlarge",
    )
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
            manifest = MANIFEST_OPTIONS.get(channel)
            also = f" (or {manifest})" if manifest else ""
            raise LaunchError(f"--algorithm {algorithm} needs {CHANNEL_OPTIONS[channel]}{also}.")


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
                f"--hp {key}: keys starting with '_' or 'sagemaker_' belong to SageMaker; drop it."
            )
        if key in raw:
            raise LaunchError(f"--hp {key} is given twice ('{raw[key]}' and '{value}'); keep one.")
        raw[key] = value
    try:
        parsed = schema.parse({"algorithm": algorithm, **raw}, strict=True)
    except schema.HyperparameterError as error:
        raise LaunchError(f"{error} Nothing was sent to AWS.") from error
    return {"algorithm": algorithm} | {key: schema.format_value(parsed.values[key]) for key in raw}


def multi_host_warning(algorithm: str, instance_count: int) -> str | None:
    if not specs.get(algorithm).spans_hosts and instance_count > 1:
        others = (
            "the other instance stays"
            if instance_count == 2
            else f"the other {instance_count - 1} instances stay"
        )
        return (
            f"warning: {algorithm} trains on the first host only; with --instance-count "
            f"{instance_count} {others} idle, billed all the same. Use "
            f"--instance-count 1 for {algorithm}."
        )
    return None
