"""An invocation of an endpoint: the files, the request each becomes, and the answers read back.

Shared by the real-time path (launch.hosting.invoke) and the asynchronous one
(launch.hosting.async_invoke).
"""

from __future__ import annotations

import functools
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError
from smvision.core import media

if TYPE_CHECKING:
    pass


# InvokeEndpoint's limits for InferenceId and TargetModel.
MAX_INFERENCE_ID = 64


MAX_TARGET_MODEL = 1024


DEFAULT_ASYNC_WAIT_S = 3600


@dataclass(frozen=True)
class ImageFile:
    """A file to send: an image, or JSON Lines of images (answered in JSON Lines)."""

    path: Path
    content_type: str

    @property
    def accept(self) -> str:
        return media.JSON_LINES if self.content_type == media.JSON_LINES else media.JSON


@dataclass(frozen=True)
class InvokePlan:
    endpoint_name: str
    files: tuple[ImageFile, ...]
    top_k: int | None
    inference_id: str | None = None
    target_model: str | None = None
    # With --async: the seconds to wait for the answers; None: a real-time request.
    async_wait_s: int | None = None
    threshold: float | None = None

    def custom_attributes(self) -> str | None:
        """X-Amzn-SageMaker-Custom-Attributes for top_k and threshold, when given."""
        parts = [f"top_k={self.top_k}"] if self.top_k is not None else []
        parts += [f"threshold={self.threshold:g}"] if self.threshold is not None else []
        return ",".join(parts) or None

    def inference_ids(self) -> list[str]:
        """One per file: the given one, else a new UUID each."""
        return [self.inference_id or str(uuid.uuid4()) for _ in self.files]

    def request(self, image: ImageFile, inference_id: str) -> dict[str, str]:
        """The headers of InvokeEndpoint(Async) for one file, without its body."""
        request = {
            "EndpointName": self.endpoint_name,
            "ContentType": image.content_type,
            "Accept": image.accept,
            "InferenceId": inference_id,
        }
        attributes = self.custom_attributes()
        if attributes is not None:
            request["CustomAttributes"] = attributes
        if self.target_model is not None:
            request["TargetModel"] = self.target_model
        return request


@dataclass(frozen=True)
class Prediction:
    """An answer for one image: its label and probability; for a multi-label model the
    labels over the threshold, joined by commas (`-` for none), and no single probability."""

    label: str
    probability: float | None
    probabilities: tuple[tuple[str, float], ...]

    def line(self) -> str:
        probability = "-" if self.probability is None else f"{self.probability:.4f}"
        return f"{self.label}\t{probability}"


def report_failure(image: ImageFile, inference_id: str, error: str) -> None:
    print(
        f"{image.path}: error (inference id {inference_id}): {error}", file=sys.stderr, flush=True
    )


def finish(invocation: InvokePlan, failures: int) -> int:
    if failures:
        raise AwsError(
            f"{failures} of {len(invocation.files)} requests to endpoint "
            f"{invocation.endpoint_name} failed (see above)."
        )
    return 0


def print_predictions(
    image: ImageFile, predictions: list[Prediction], inference_id: str, top_k: int | None
) -> None:
    """One line per image: FILE (FILE:LINE for JSON Lines), label, probability, id."""
    for number, prediction in enumerate(predictions, start=1):
        source = f"{image.path}:{number}" if image.accept == media.JSON_LINES else image.path
        print(f"{source}\t{prediction.line()}\t{inference_id}", flush=True)
        if top_k is not None:
            for label, probability in prediction.probabilities[:top_k]:
                print(f"    {label}\t{probability:.4f}")


def parse_answer(body: bytes, image: ImageFile) -> list[Prediction]:
    """The predictions of the server's answer to one file: one, or one per line."""
    if image.accept != media.JSON_LINES:
        return [parse_response(body, str(image.path))]
    lines = [line for line in body.splitlines() if line.strip()]
    return [
        _read_answer(functools.partial(json.loads, line), line, f"{image.path}:{number}")
        for number, line in enumerate(lines, start=1)
    ]


def parse_response(body: bytes, source: str) -> Prediction:
    """The one prediction in the server's JSON answer for one image."""

    def entry() -> Any:
        document = json.loads(body)
        if len(document["predictions"]) != 1:
            raise ValueError(f"{len(document['predictions'])} predictions for one image")
        return document["predictions"][0]

    return _read_answer(entry, body, source)


def _read_answer(entry: Callable[[], Any], body: bytes, source: str) -> Prediction:
    try:
        found = entry()
        probabilities = sorted(
            ((str(k), float(v)) for k, v in found.get("probabilities", {}).items()),
            key=lambda item: -item[1],
        )
        if "labels" in found:  # a multi-label model
            labels = ",".join(str(label) for label in found["labels"]) or "-"
            return Prediction(labels, None, tuple(probabilities))
        return Prediction(str(found["label"]), float(found["probability"]), tuple(probabilities))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        excerpt = body[:200].decode("utf-8", errors="replace")
        raise AwsError(
            f"the endpoint's answer for {source} is not smvision's prediction JSON "
            f"({type(error).__name__}: {error}); it began: {excerpt!r}"
        ) from error
