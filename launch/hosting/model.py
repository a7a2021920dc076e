"""The image in serve mode, as `deploy` and `transform` hand it to SageMaker.

SageMaker starts the container with `serve` and the model.tar.gz unpacked in
/opt/ml/model; the serving limits travel as the environment variables that
smvision.core.contract names. Without --instance-type, the model is served on the serving
instance type of the algorithm that trained it (the algorithm table), found from the
training job that wrote the model.tar.gz.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError, LaunchError
from launch.common.options import add_instance_arguments
from launch.common.parsing import RESOURCE_NAME, positive_int, s3_uri
from smvision.core.contract import (
    ASYNC_MAX_PAYLOAD_MB,
    ASYNC_TIMEOUT_S,
    DEFAULT_MAX_PAYLOAD_MB,
    DEFAULT_TIMEOUT_S,
    MAX_PAYLOAD_ENV,
    TIMEOUT_ENV,
    WORKERS_ENV,
)
from smvision.schema import specs
from smvision.schema.params import HyperparameterError

if TYPE_CHECKING:
    import boto3

# Where a model's algorithm cannot be found: the launchers' own default.
DEFAULT_INSTANCE_TYPE = specs.SERVING_CPU
# SageMaker writes a training job's model to OUTPUT_PATH/JOB_NAME/output/model.tar.gz.
MODEL_ARTIFACT_TAIL = ("output", "model.tar.gz")


MODEL_DATA_HELP = "the model.tar.gz a training job wrote (its 'Model artifact')"
# A multi-model container's Mode in CreateModel (SingleModel, the default, goes unsaid).
MULTI_MODEL = "MultiModel"


def add_serving_arguments(
    parser: argparse.ArgumentParser, count_meaning: str, model_data: bool = True
) -> None:
    """The instances and serving limits, and --model-data unless the command adds its own
    model options."""
    if model_data:
        parser.add_argument("--model-data", required=True, metavar="S3URI", help=MODEL_DATA_HELP)
    add_instance_arguments(
        parser,
        type_default="the serving instance type of the algorithm that trained the model: "
        + ", ".join(f"{s.serving_instance_type} for {s.name}" for s in specs.table().values())
        + f"; {DEFAULT_INSTANCE_TYPE} where that is unknown",
        count_meaning=count_meaning,
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        help=f"server worker processes per instance ({WORKERS_ENV}; default: "
        "the image's choice for the algorithm)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        help=f"per-request timeout in the server ({TIMEOUT_ENV}; default "
        f"{DEFAULT_TIMEOUT_S:g}, {ASYNC_TIMEOUT_S:g} for deploy --async)",
    )
    parser.add_argument(
        "--max-payload-mb",
        metavar="MB",
        help=f"largest request body the server accepts ({MAX_PAYLOAD_ENV}; "
        f"default {DEFAULT_MAX_PAYLOAD_MB:g}, {ASYNC_MAX_PAYLOAD_MB:g} for "
        "deploy --async)",
    )


def model_data(args: argparse.Namespace) -> str:
    uri = s3_uri(args.model_data, "--model-data")
    if not uri.key.endswith(".tar.gz"):
        raise LaunchError(
            f"--model-data '{args.model_data}' must name a .tar.gz: the 'Model artifact' "
            "that `train` prints, such as s3://BUCKET/smvision/training/JOB/output/model.tar.gz."
        )
    return str(uri)


def serving_environment(args: argparse.Namespace) -> dict[str, str]:
    environment = {}
    if args.workers is not None:
        environment[WORKERS_ENV] = str(positive_int(args.workers, "--workers"))
    if args.timeout is not None:
        environment[TIMEOUT_ENV] = str(positive_int(args.timeout, "--timeout"))
    if args.max_payload_mb is not None:
        environment[MAX_PAYLOAD_ENV] = _positive_number(args.max_payload_mb, "--max-payload-mb")
    return environment


def _positive_number(text: str, option: str) -> str:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise LaunchError(f"{option} '{text}' must be a positive number, such as 6.")
    return text.strip()


def check_model_data_exists(session: boto3.session.Session, uri: str) -> None:
    """Fail in a second on a mistyped URI, not after minutes of provisioning."""
    from botocore.exceptions import ClientError

    from launch.common.aws import is_missing, reporting

    parsed = s3_uri(uri, "--model-data")
    try:
        session.client("s3").head_object(Bucket=parsed.bucket, Key=parsed.key)
    except ClientError as error:
        if is_missing(error):
            raise AwsError(
                f"--model-data {uri}: no such object; copy the 'Model artifact' URI that "
                "`train` printed."
            ) from error
        with reporting(f"Reading --model-data {uri}"):
            raise


def count_models(session: boto3.session.Session, prefix: str) -> int:
    """How many model.tar.gz files a multi-model endpoint's prefix holds now."""
    from launch.common.aws import reporting

    parsed = s3_uri(prefix, "--model-prefix")
    paginator = session.client("s3").get_paginator("list_objects_v2")
    with reporting(f"Listing --model-prefix {prefix}"):
        return sum(
            1
            for page in paginator.paginate(Bucket=parsed.bucket, Prefix=parsed.key)
            for item in page.get("Contents", [])
            if item["Key"].endswith(".tar.gz")
        )


def create_model(
    session: boto3.session.Session,
    name: str,
    role: str,
    environment: Mapping[str, str],
    image_uri: str | None = None,
    model_data_uri: str | None = None,
    model_package: str | None = None,
    multi_model: bool = False,
) -> Any:
    """A SageMaker model of the image and a model.tar.gz (or, multi-model, the S3 prefix
    of many), or of a model package."""
    from sagemaker.core import shapes
    from sagemaker.core.resources import Model

    from launch.common.aws import reporting

    container = (
        shapes.ContainerDefinition(model_package_name=model_package, environment=dict(environment))
        if model_package
        else shapes.ContainerDefinition(
            image=image_uri,
            model_data_url=model_data_uri,
            environment=dict(environment),
            **({"mode": MULTI_MODEL} if multi_model else {}),
        )
    )
    with reporting(f"Creating model {name}"):
        return Model.create(
            session=session,
            region=str(session.region_name),
            model_name=name,
            execution_role_arn=role,
            primary_container=container,
        )


def serving_instance_type(session: boto3.session.Session, model_data_uri: str) -> str:
    """The serving instance type of the algorithm that trained the model, from the
    algorithm table; DEFAULT_INSTANCE_TYPE, said in one line, where that is unknown."""
    algorithm, unknown_because = model_algorithm(session.client("sagemaker"), model_data_uri)
    if algorithm is not None:
        return specs.get(algorithm).serving_instance_type
    print(
        f"Instance type: {DEFAULT_INSTANCE_TYPE}, the launchers' default: the algorithm "
        f"that trained --model-data is unknown ({unknown_because}); choose one with "
        "--instance-type.",
        flush=True,
    )
    return DEFAULT_INSTANCE_TYPE


def model_algorithm(sagemaker: Any, model_data_uri: str) -> tuple[str | None, str]:
    """The algorithm of the training job that wrote the model.tar.gz (its `algorithm`
    hyperparameter), or None and why it is unknown; `sagemaker` is a boto3 client."""
    from launch.common.aws import describe_or_none

    parts = s3_uri(model_data_uri, "--model-data").key.split("/")
    job = parts[-3] if len(parts) >= 3 else ""
    if tuple(parts[-2:]) != MODEL_ARTIFACT_TAIL or not RESOURCE_NAME.fullmatch(job):
        return None, "it is not at .../JOB_NAME/output/model.tar.gz, where a training job writes"
    try:
        described = describe_or_none(sagemaker.describe_training_job, TrainingJobName=job)
    except AwsError as error:
        return None, str(error)
    if described is None:
        return None, f"there is no training job {job}"
    if described.get("ModelArtifacts", {}).get("S3ModelArtifacts") != model_data_uri:
        return None, f"training job {job} did not write it"
    algorithm = described.get("HyperParameters", {}).get("algorithm")
    try:
        return specs.get(algorithm).name, ""
    except HyperparameterError:
        return None, f"training job {job} has algorithm {algorithm!r}, not in this launcher's table"
