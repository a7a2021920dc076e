"""`invoke`: send image files to an endpoint and print each file's label and probability.

Each file goes as one InvokeEndpoint request through sagemaker-runtime, with the
content type of its format and an inference id (a new UUID per file unless given), which
data capture records beside the request so that ground truth can be joined to it later;
the answer is the server's JSON, {"predictions": [{"label", "probability", ...}]}.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from launch.errors import AwsError, LaunchError
from launch.options import Commands, add_endpoint_argument, command_parser
from launch.parsing import positive_int, resource_name
from launch.settings import Settings
from smvision import media

if TYPE_CHECKING:
    import boto3

    from launch.aws import SessionFactory

HELP = "classify image files with an endpoint and print label and probability per file"
# InvokeEndpoint's limit for InferenceId.
MAX_INFERENCE_ID = 64


@dataclass(frozen=True)
class ImageFile:
    path: Path
    content_type: str


@dataclass(frozen=True)
class InvokePlan:
    endpoint_name: str
    files: tuple[ImageFile, ...]
    top_k: int | None
    inference_id: str | None = None

    def inference_ids(self) -> list[str]:
        """One per file: the given one, else a new UUID each."""
        return [self.inference_id or str(uuid.uuid4()) for _ in self.files]


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    probabilities: tuple[tuple[str, float], ...]


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = command_parser(commands, "invoke", parents, HELP)
    add_endpoint_argument(parser)
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER",
                        help="image files, or folders searched recursively for "
                        + ", ".join(sorted(media.IMAGE_CONTENT_TYPES)))
    parser.add_argument("--top-k", metavar="N",
                        help="also print the N most likely classes of each image")
    parser.add_argument("--inference-id", metavar="ID",
                        help="the request's inference id, recorded by data capture (one file "
                        "only; default: a new UUID per file, printed with its answer)")
    parser.set_defaults(handler=run)


def plan(args: argparse.Namespace) -> InvokePlan:
    top_k = positive_int(args.top_k, "--top-k") if args.top_k is not None else None
    files = image_files(args.paths)
    inference_id = args.inference_id
    if inference_id is not None:
        inference_id = inference_id.strip()
        too_long = len(inference_id) > MAX_INFERENCE_ID
        if not inference_id or too_long or not inference_id.isprintable():
            raise LaunchError(f"--inference-id '{args.inference_id}' must be 1 to "
                              f"{MAX_INFERENCE_ID} printable characters.")
        if len(files) != 1:
            raise LaunchError(f"--inference-id names one request, but {len(files)} files would "
                              "be sent; give one file, or drop it for a new UUID per file.")
    return InvokePlan(resource_name(args.endpoint_name, "--endpoint-name"), files, top_k,
                      inference_id)


def image_files(paths: Sequence[str]) -> tuple[ImageFile, ...]:
    found: list[ImageFile] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and
                            not p.name.startswith(".") and media.image_content_type(p.name))
            if not inside:
                raise LaunchError(f"{path}: the folder holds no image files "
                                  f"({', '.join(sorted(media.IMAGE_CONTENT_TYPES))}).")
            found += [ImageFile(p, media.image_content_type(p.name) or "") for p in inside]
        elif path.is_file():
            content_type = media.image_content_type(path.name)
            if content_type is None:
                raise LaunchError(
                    f"{path}: not an image file by its suffix; send "
                    f"{', '.join(sorted(media.IMAGE_CONTENT_TYPES))}."
                )
            found.append(ImageFile(path, content_type))
        else:
            raise LaunchError(f"{path}: no such file or folder.")
    return tuple(found)


def run(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    invocation = plan(args)
    return send(invocation, open_session(settings.require("region")))


def send(invocation: InvokePlan, session: boto3.session.Session) -> int:
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    # Endpoints may take up to a minute per request; botocore's default is the same.
    runtime = session.client("sagemaker-runtime", config=Config(read_timeout=70))
    failures = 0
    for image, inference_id in zip(invocation.files, invocation.inference_ids()):
        request = {
            "EndpointName": invocation.endpoint_name,
            "Body": image.path.read_bytes(),
            "ContentType": image.content_type,
            "Accept": media.JSON,
            "InferenceId": inference_id,
        }
        if invocation.top_k is not None:
            request["CustomAttributes"] = f"top_k={invocation.top_k}"
        try:
            response = runtime.invoke_endpoint(**request)
            prediction = parse_response(response["Body"].read(), str(image.path))
        except (ClientError, BotoCoreError, AwsError) as error:
            failures += 1
            print(f"{image.path}: error (inference id {inference_id}): {error}",
                  file=sys.stderr, flush=True)
            continue
        print(f"{image.path}\t{prediction.label}\t{prediction.probability:.4f}\t{inference_id}",
              flush=True)
        if invocation.top_k is not None:
            for label, probability in prediction.probabilities[: invocation.top_k]:
                print(f"    {label}\t{probability:.4f}")
    if failures:
        raise AwsError(f"{failures} of {len(invocation.files)} requests to endpoint "
                       f"{invocation.endpoint_name} failed (see above).")
    return 0


def parse_response(body: bytes, source: str) -> Prediction:
    """The one prediction in the server's JSON answer for one image."""
    try:
        document = json.loads(body)
        entry = document["predictions"][0]
        if len(document["predictions"]) != 1:
            raise ValueError(f"{len(document['predictions'])} predictions for one image")
        probabilities = sorted(
            ((str(k), float(v)) for k, v in entry.get("probabilities", {}).items()),
            key=lambda item: -item[1],
        )
        return Prediction(str(entry["label"]), float(entry["probability"]), tuple(probabilities))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        excerpt = body[:200].decode("utf-8", errors="replace")
        raise AwsError(
            f"the endpoint's answer for {source} is not smvision's prediction JSON "
            f"({type(error).__name__}: {error}); it began: {excerpt!r}"
        ) from error
