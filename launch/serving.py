"""The image in serve mode, as `deploy` and `transform` hand it to SageMaker.

SageMaker starts the container with `serve` and the model.tar.gz unpacked in
/opt/ml/model; the serving limits travel as environment variables. The variable names
are the serving code's (smvision.contract); the launchers may not import that module,
so they are spelled here and a test checks that both agree.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from launch.errors import AwsError, LaunchError
from launch.parsing import positive_int, s3_uri

if TYPE_CHECKING:
    import boto3

WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
MAX_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"


def add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-data", required=True, metavar="S3URI",
                        help="the model.tar.gz a training job wrote (its 'Model artifact')")
    parser.add_argument("--workers", metavar="N",
                        help=f"server worker processes per instance ({WORKERS_ENV}; default: "
                        "the image's choice for the algorithm)")
    parser.add_argument("--timeout", metavar="SECONDS",
                        help=f"per-request timeout in the server ({TIMEOUT_ENV}; default 60)")
    parser.add_argument("--max-payload-mb", metavar="MB",
                        help=f"largest request body the server accepts ({MAX_PAYLOAD_ENV}; "
                        "default 6)")


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

    from launch.aws import error_code, reporting

    parsed = s3_uri(uri, "--model-data")
    try:
        session.client("s3").head_object(Bucket=parsed.bucket, Key=parsed.key)
    except ClientError as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound"):
            raise AwsError(
                f"--model-data {uri}: no such object; copy the 'Model artifact' URI that "
                "`train` printed."
            ) from error
        with reporting(f"Reading --model-data {uri}"):
            raise


def create_model(
    session: boto3.session.Session,
    name: str,
    image_uri: str,
    role: str,
    model_data_uri: str,
    environment: Mapping[str, str],
) -> Any:
    from sagemaker.core import shapes
    from sagemaker.core.resources import Model

    from launch.aws import reporting

    with reporting(f"Creating model {name}"):
        return Model.create(
            session=session,
            region=str(session.region_name),
            model_name=name,
            execution_role_arn=role,
            primary_container=shapes.ContainerDefinition(
                image=image_uri,
                model_data_url=model_data_uri,
                environment=dict(environment),
            ),
        )
