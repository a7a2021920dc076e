"""`add-model`: put a model.tar.gz under a multi-model endpoint's prefix, as NAME.tar.gz.

The endpoint needs no change: SageMaker loads PREFIX/NAME.tar.gz when a request names it
(`invoke --target-model NAME.tar.gz`). The model comes from S3 (copied within S3, in
parts when large) or from this machine (uploaded). An existing NAME is refused: an
endpoint that has loaded it would go on serving its old copy.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError, LaunchError
from launch.common.options import Commands, command_parser, planned
from launch.common.parsing import S3Uri, s3_uri
from launch.common.settings import Settings
from launch.hosting.model import model_data

if TYPE_CHECKING:
    import boto3

HELP = "copy a model.tar.gz under a multi-model endpoint's --model-prefix as NAME.tar.gz"
ARCHIVE_SUFFIX = ".tar.gz"
# Path segments of letters, digits, '-', '_' and '.', separated by '/'.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")


@dataclass(frozen=True)
class AddModelPlan:
    # An s3:// URI or a local file.
    source: str
    destination: S3Uri
    target_model: str


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = command_parser(commands, "add-model", parents, HELP, description=__doc__)
    parser.add_argument(
        "--model-data",
        required=True,
        metavar="S3URI_OR_FILE",
        help="the model.tar.gz a training job wrote (s3://...), or one on this "
        "machine (`train --local` writes one)",
    )
    parser.add_argument(
        "--model-prefix", required=True, metavar="S3URI", help="the endpoint's --model-prefix"
    )
    parser.add_argument(
        "--name",
        required=True,
        metavar="NAME",
        help="the model's name under the prefix (invoke it with "
        "--target-model NAME.tar.gz); letters, digits, '-', '_', '.', '/'",
    )
    parser.set_defaults(handler=planned(plan, submit))


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> AddModelPlan:
    del now
    if str(args.model_data).startswith("s3://"):
        source = model_data(args)
    else:
        path = Path(args.model_data)
        if not path.is_file() or not path.name.endswith(ARCHIVE_SUFFIX):
            raise LaunchError(
                f"--model-data '{args.model_data}' is neither an s3:// URI nor "
                "a model.tar.gz on this machine."
            )
        source = str(path.resolve())
    prefix = s3_uri(args.model_prefix, "--model-prefix")
    name = args.name.removesuffix(ARCHIVE_SUFFIX)
    if not _NAME.fullmatch(name) or ".." in name or len(name) > 1000:
        raise LaunchError(
            f"--name '{args.name}' must be letters, digits, '-', '_' and '.' "
            "(segments separated by '/'), such as site-17."
        )
    key = f"{prefix.key.rstrip('/')}/{name}{ARCHIVE_SUFFIX}".lstrip("/")
    return AddModelPlan(source, S3Uri(prefix.bucket, key), name + ARCHIVE_SUFFIX)


def submit(addition: AddModelPlan, session: boto3.session.Session) -> int:
    from launch.common.aws import reporting
    from launch.hosting.model import check_model_data_exists

    s3 = session.client("s3")
    destination = addition.destination
    if _exists(s3, destination):
        raise AwsError(
            f"{destination} exists already; an endpoint that loaded it keeps "
            "serving its copy, so give the new model a new --name (such as "
            f"{addition.target_model.removesuffix(ARCHIVE_SUFFIX)}-v2)."
        )
    if addition.source.startswith("s3://"):
        check_model_data_exists(session, addition.source)
        source = s3_uri(addition.source, "--model-data")
        with reporting(f"Copying {addition.source} to {destination}"):
            s3.copy(
                {"Bucket": source.bucket, "Key": source.key}, destination.bucket, destination.key
            )
    else:
        with reporting(f"Uploading {addition.source} to {destination}"):
            s3.upload_file(addition.source, destination.bucket, destination.key)
    print(f"Model {addition.target_model}: {destination}")
    print(
        f"Invoke: python -m launch invoke --region {session.region_name} --endpoint-name "
        f"ENDPOINT --target-model {addition.target_model} IMAGE..."
    )
    return 0


def _exists(s3: Any, uri: S3Uri) -> bool:
    from botocore.exceptions import ClientError

    from launch.common.aws import is_missing, reporting

    try:
        s3.head_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as error:
        if is_missing(error):
            return False
        with reporting(f"Reading {uri}"):
            raise
    return True
