"""`invoke`: send image files to an endpoint and print each file's label and probability.

Each file goes as one InvokeEndpoint request through sagemaker-runtime, with the
content type of its format and an inference id (a new UUID per file unless given), which
data capture records beside the request so that ground truth can be joined to it later;
the answer is the server's JSON, {"predictions": [{"label", "probability", ...}]}. A JSON
Lines file (one image per line) is one request too, answered line by line.

--target-model NAME.tar.gz picks the model of a multi-model endpoint; --async sends each
file through S3 to an asynchronous endpoint and waits for its answer there
(launch.hosting.async_invoke).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from launch.common.errors import AwsError, LaunchError
from launch.common.options import Commands, add_endpoint_argument, command_parser
from launch.common.parsing import positive_int, resource_name
from launch.common.settings import Settings
from launch.hosting.async_invoke import send_async
from launch.hosting.invocation import (
    DEFAULT_ASYNC_WAIT_S,
    MAX_INFERENCE_ID,
    MAX_TARGET_MODEL,
    ImageFile,
    InvokePlan,
    finish,
    parse_answer,
    print_predictions,
    report_failure,
)
from smvision.core import media

if TYPE_CHECKING:
    import boto3

    from launch.common.aws import SessionFactory

HELP = "classify image files with an endpoint and print label and probability per file"


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = command_parser(commands, "invoke", parents, HELP)
    add_endpoint_argument(parser)
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="FILE_OR_FOLDER",
        help="image files or JSON Lines files (.jsonl, one image per line), "
        "or folders searched recursively for " + ", ".join(sorted(media.IMAGE_CONTENT_TYPES)),
    )
    parser.add_argument(
        "--top-k", metavar="N", help="also print the N most likely classes of each image"
    )
    parser.add_argument(
        "--threshold",
        metavar="P",
        help="a multi-label model's answer names the labels whose probability "
        "is at least P (default 0.5)",
    )
    parser.add_argument(
        "--inference-id",
        metavar="ID",
        help="the request's inference id, recorded by data capture (one file "
        "only; default: a new UUID per file, printed with its answer)",
    )
    parser.add_argument(
        "--target-model",
        metavar="NAME.tar.gz",
        help="on a multi-model endpoint: the model to ask, its path under "
        "the endpoint's --model-prefix",
    )
    parser.add_argument(
        "--async",
        dest="async_inference",
        action="store_true",
        help="for an asynchronous endpoint: upload each file to "
        "s3://BUCKET/smvision/async-inputs/, queue it and wait for its answer",
    )
    parser.add_argument(
        "--wait-timeout",
        metavar="SECONDS",
        help=f"with --async: how long to wait for the answers (default {DEFAULT_ASYNC_WAIT_S})",
    )
    parser.set_defaults(handler=run)


def plan(args: argparse.Namespace) -> InvokePlan:
    top_k = positive_int(args.top_k, "--top-k") if args.top_k is not None else None
    files = image_files(args.paths)
    inference_id = args.inference_id
    if inference_id is not None:
        inference_id = inference_id.strip()
        too_long = len(inference_id) > MAX_INFERENCE_ID
        if not inference_id or too_long or not inference_id.isprintable():
            raise LaunchError(
                f"--inference-id '{args.inference_id}' must be 1 to "
                f"{MAX_INFERENCE_ID} printable characters."
            )
        if len(files) != 1:
            raise LaunchError(
                f"--inference-id names one request, but {len(files)} files would "
                "be sent; give one file, or drop it for a new UUID per file."
            )
    return InvokePlan(
        resource_name(args.endpoint_name, "--endpoint-name"),
        files,
        top_k,
        inference_id,
        target_model(args.target_model),
        async_wait(args),
        _threshold(args.threshold),
    )


def _threshold(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise LaunchError(f"--threshold '{text}' is not a probability; use 0 to 1, such as 0.7.")
    return value


def target_model(text: str | None) -> str | None:
    if text is None:
        return None
    if not (
        0 < len(text) <= MAX_TARGET_MODEL
        and text.isprintable()
        and not text[0].isspace()
        and not text.startswith("/")
        and text.endswith(".tar.gz")
    ):
        raise LaunchError(
            f"--target-model '{text}' must be a model's path under the "
            "endpoint's --model-prefix, such as site-17.tar.gz (what `add-model "
            "--name site-17` printed)."
        )
    return text


def async_wait(args: argparse.Namespace) -> int | None:
    if not args.async_inference:
        if args.wait_timeout is not None:
            raise LaunchError("--wait-timeout applies to --async only; add it or drop this.")
        return None
    if args.wait_timeout is None:
        return DEFAULT_ASYNC_WAIT_S
    return positive_int(args.wait_timeout, "--wait-timeout")


def image_files(paths: Sequence[str]) -> tuple[ImageFile, ...]:
    found: list[ImageFile] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            inside = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not p.name.startswith(".") and media.image_content_type(p.name)
            )
            if not inside:
                raise LaunchError(
                    f"{path}: the folder holds no image files "
                    f"({', '.join(sorted(media.IMAGE_CONTENT_TYPES))})."
                )
            found += [ImageFile(p, media.image_content_type(p.name) or "") for p in inside]
        elif path.is_file():
            content_type = media.image_content_type(path.name)
            if content_type is None and media.is_json_lines(path.name):
                content_type = media.JSON_LINES
            if content_type is None:
                raise LaunchError(
                    f"{path}: not an image file by its suffix; send "
                    f"{', '.join(sorted(media.IMAGE_CONTENT_TYPES))}, or JSON Lines "
                    f"({', '.join(media.JSON_LINES_SUFFIXES)})."
                )
            found.append(ImageFile(path, content_type))
        else:
            raise LaunchError(f"{path}: no such file or folder.")
    return tuple(found)


def run(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    invocation = plan(args)
    if invocation.async_wait_s is not None:
        bucket = settings.require("bucket")
        return send_async(invocation, open_session(settings.require("region")), bucket)
    return send(invocation, open_session(settings.require("region")))


def send(invocation: InvokePlan, session: boto3.session.Session) -> int:
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    # Endpoints may take up to a minute per request; botocore's default is the same.
    runtime = session.client("sagemaker-runtime", config=Config(read_timeout=70))
    failures = 0
    for image, inference_id in zip(invocation.files, invocation.inference_ids()):
        request = invocation.request(image, inference_id)
        try:
            response = runtime.invoke_endpoint(Body=image.path.read_bytes(), **request)
            predictions = parse_answer(response["Body"].read(), image)
        except (ClientError, BotoCoreError, AwsError) as error:
            failures += 1
            report_failure(image, inference_id, str(error))
            continue
        print_predictions(image, predictions, inference_id, invocation.top_k)
    return finish(invocation, failures)
