"""`add-model`: put a model.tar.gz under a multi-model endpoint's prefix, as NAME.tar.gz.

The endpoint needs no change: SageMaker loads PREFIX/NAME.tar.gz when a request names it
(`invoke --target-model NAME.tar.gz`). The model comes from S3 (copied within S3) or from
this machine (uploaded), in parts. An existing NAME is refused: an endpoint that has
loaded it would go on serving its old copy. The check comes first, for a quick answer;
what makes it hold is the write itself, conditional on the name being free (S3's
If-None-Match: *), so that of two runs adding one name at once, one wins and the other says
so, and nothing is replaced.
"""

from __future__ import annotations

import argparse
import contextlib
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
# S3 takes parts of 5 MiB to 5 GiB and 10,000 of them: 64 MiB parts carry up to 625 GiB.
PART_BYTES = 64 * 1024 * 1024
# What S3 answers a conditional write whose condition failed (412), or that raced another
# conditional write of the same key (409).
CONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
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
    from launch.common.aws import error_code, reporting
    from launch.hosting.model import check_model_data_exists

    s3 = session.client("s3")
    destination = addition.destination
    stem = addition.target_model.removesuffix(ARCHIVE_SUFFIX)
    if _exists(s3, destination):
        raise AwsError(
            f"{destination} exists already; an endpoint that loaded it keeps serving its copy, "
            f"so give the new model a new --name (such as {stem}-v2)."
        )
    if addition.source.startswith("s3://"):
        check_model_data_exists(session, addition.source)
        step = f"Copying {addition.source} to {destination}"
    else:
        step = f"Uploading {addition.source} to {destination}"
    from botocore.exceptions import ClientError

    with reporting(step):
        try:
            write_if_absent(s3, addition.source, destination)
        except ClientError as error:
            if error_code(error) not in CONDITION_FAILED:
                raise
            raise AwsError(
                f"{destination} was added by someone else while this run wrote it; an "
                "endpoint that loaded it keeps serving its copy, so give the new model a new "
                f"--name (such as {stem}-v2)."
            ) from error
    print(f"Model {addition.target_model}: {destination}")
    print(
        f"Invoke: python -m launch invoke --region {session.region_name} --endpoint-name "
        f"ENDPOINT --target-model {addition.target_model} IMAGE..."
    )
    return 0


def write_if_absent(s3: Any, source: str, destination: S3Uri, part_bytes: int = PART_BYTES) -> None:
    """Copy (s3://) or upload (a file) `source` to `destination` in parts, completed only if
    nothing is there by then (If-None-Match: *, which S3 checks as it completes the upload);
    an upload that does not complete is aborted, so no part is left behind."""
    from_s3 = source.startswith("s3://")
    if from_s3:
        origin = s3_uri(source, "--model-data")
        size = int(s3.head_object(Bucket=origin.bucket, Key=origin.key)["ContentLength"])
    else:
        size = Path(source).stat().st_size
    target = {"Bucket": destination.bucket, "Key": destination.key}
    upload = s3.create_multipart_upload(**target)["UploadId"]
    try:
        parts = []
        with contextlib.ExitStack() as stack:
            stream = None if from_s3 else stack.enter_context(open(source, "rb"))
            for number, start in enumerate(range(0, max(size, 1), part_bytes), start=1):
                end = min(start + part_bytes, size) - 1
                if stream is None:
                    answer = s3.upload_part_copy(
                        **target,
                        UploadId=upload,
                        PartNumber=number,
                        CopySource={"Bucket": origin.bucket, "Key": origin.key},
                        **({"CopySourceRange": f"bytes={start}-{end}"} if size else {}),
                    )["CopyPartResult"]
                else:
                    answer = s3.upload_part(
                        **target, UploadId=upload, PartNumber=number, Body=stream.read(part_bytes)
                    )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        s3.complete_multipart_upload(
            **target, UploadId=upload, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
        )
    except BaseException:
        with contextlib.suppress(Exception):
            s3.abort_multipart_upload(**target, UploadId=upload)
        raise


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
