"""`invoke --async`: requests to an asynchronous endpoint, through S3.

Each file is uploaded to s3://BUCKET/smvision/async-inputs/ENDPOINT/INFERENCE_ID/NAME
and queued with InvokeEndpointAsync, which answers at once with where the answer will
appear: the OutputLocation object once the request succeeds, the FailureLocation object
(the endpoint's --failure prefix) if it fails. Every file is queued first, then each
answer awaited in turn, so the endpoint works on them together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError, Interrupted
from launch.common.parsing import s3_uri
from launch.hosting.invocation import (
    DEFAULT_ASYNC_WAIT_S,
    ImageFile,
    InvokePlan,
    finish,
    parse_answer,
    print_predictions,
    report_failure,
)

if TYPE_CHECKING:
    import boto3

INPUT_PREFIX = "smvision/async-inputs"
# How often the answers' S3 objects are looked for.
POLL_S = 2.0


@dataclass(frozen=True)
class Queued:
    image: ImageFile
    inference_id: str
    output: str
    failure: str | None


def send_async(invocation: InvokePlan, session: boto3.session.Session, bucket: str) -> int:
    from launch.common.aws import reporting

    s3 = session.client("s3")
    runtime = session.client("sagemaker-runtime")
    queued: list[Queued] = []
    for image, inference_id in zip(invocation.files, invocation.inference_ids()):
        key = f"{INPUT_PREFIX}/{invocation.endpoint_name}/{inference_id}/{image.path.name}"
        with reporting(f"Uploading {image.path} to s3://{bucket}/{key}"):
            s3.upload_file(str(image.path), bucket, key)
        with reporting(f"Queuing {image.path} at endpoint {invocation.endpoint_name}"):
            response = runtime.invoke_endpoint_async(
                InputLocation=f"s3://{bucket}/{key}", **invocation.request(image, inference_id)
            )
        queued.append(
            Queued(image, inference_id, response["OutputLocation"], response.get("FailureLocation"))
        )
        print(
            f"{image.path}: queued (inference id {inference_id}); the answer goes to "
            f"{response['OutputLocation']}",
            flush=True,
        )
    wait_s = invocation.async_wait_s or DEFAULT_ASYNC_WAIT_S
    deadline = time.monotonic() + wait_s
    failures = 0
    for request in queued:
        body, failed = wait_for_answer(s3, request, deadline, wait_s=wait_s)
        if failed:
            failures += 1
            report_failure(
                request.image,
                request.inference_id,
                f"the endpoint failed it: {body.decode(errors='replace')[:2000]}",
            )
            continue
        try:
            predictions = parse_answer(body, request.image)
        except AwsError as error:
            failures += 1
            report_failure(request.image, request.inference_id, str(error))
            continue
        print_predictions(request.image, predictions, request.inference_id, invocation.top_k)
    return finish(invocation, failures)


def wait_for_answer(
    s3: Any,
    request: Queued,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    wait_s: float | None = None,
) -> tuple[bytes, bool]:
    """The answer's bytes, and whether they are the failure's, once either object exists."""
    from rich.console import Console

    from launch.common.aws import reporting

    places = [(request.output, False)]
    if request.failure:
        places.append((request.failure, True))
    status = Console(stderr=True).status(f"Waiting for the answer to {request.image.path}")
    try:
        with status, reporting(f"Waiting for the answer to {request.image.path}"):
            while True:
                for uri, failed in places:
                    body = _read_if_present(s3, uri)
                    if body is not None:
                        return body, failed
                if clock() > deadline:
                    raise AwsError(
                        f"No answer to {request.image.path} (inference id "
                        f"{request.inference_id}) at {request.output} within --wait-timeout"
                        f"{f' ({wait_s:.0f} s)' if wait_s else ''}; the request may still be "
                        "queued: look there later."
                    )
                time.sleep(POLL_S)
    except Interrupted as error:
        raise Interrupted(
            f"{error} The answer to {request.image.path} will appear at {request.output}."
        ) from error


def _read_if_present(s3: Any, uri: str) -> bytes | None:
    from botocore.exceptions import ClientError

    from launch.common.aws import is_missing

    location = s3_uri(uri, "OutputLocation")
    try:
        response = s3.get_object(Bucket=location.bucket, Key=location.key)
    except ClientError as error:
        if is_missing(error):
            return None
        raise
    return bytes(response["Body"].read())
