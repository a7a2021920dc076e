"""DetectLabels, DetectFaces and DetectText over many images: one JSON line per image.

A thread pool of `concurrency` workers sends the images (a boto3 client is safe to share
between threads); each call is retried with backoff while Rekognition throttles it
(retry.py). An image that fails is written with its error and the batch goes on. Lines
are written in the order of the images, each whole and flushed, so an interrupted run
leaves a valid file of the images done so far.

How an image is sent: an S3 object Rekognition takes as it is (JPEG or PNG, at most 15 MB)
goes as S3Object, never downloaded; anything else is read, made acceptable by prepare.py
and sent as bytes. When Rekognition refuses an S3Object for its format or size (an image
under 80 pixels, say), it is downloaded, re-encoded and sent once more as bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from launch.common.aws import error_code
from launch.rekognition import retry
from launch.rekognition.prepare import MAX_S3_OBJECT_BYTES, S3_SUFFIXES, ImageRejected, prepare
from launch.rekognition.sources import ImageRef

# Refusals of an S3Object that re-encoding the image can cure.
_CURABLE = frozenset(
    {"InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException"}
)


RESULT_KEYS = ("labels", "faces", "text")


@dataclass(frozen=True)
class Request:
    labels: bool = True
    faces: bool = False
    text: bool = False
    max_labels: int = 10
    min_confidence: float = 70.0

    @property
    def operations(self) -> list[str]:
        return [
            name
            for name, wanted in (
                ("DetectLabels", self.labels),
                ("DetectFaces", self.faces),
                ("DetectText", self.text),
            )
            if wanted
        ]


@dataclass
class Summary:
    images: int = 0
    failed: int = 0
    reencoded: int = 0
    calls: int = 0
    errors: list[str] = field(default_factory=list)


class Analyzer:
    """Sends one image's requests; shared by the pool's threads (it holds no state)."""

    def __init__(
        self,
        rekognition: Any,
        s3: Any,
        request: Request,
        backoff: retry.Backoff = retry.DEFAULT_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rekognition = rekognition
        self.s3 = s3
        self.request = request
        self.backoff = backoff
        self.sleep = sleep

    def analyze(self, image: ImageRef) -> dict[str, Any]:
        """The image's JSON record: what Rekognition found, or the error that stopped it."""
        from botocore.exceptions import BotoCoreError, ClientError

        record: dict[str, Any] = {"image": image.name}
        try:
            argument, change = self._argument(image)
            record["sent_as"] = "S3Object" if "S3Object" in argument else "bytes"
            if change:
                record["reencoded"] = change
            for operation in self.request.operations:
                try:
                    record |= self._detect(operation, argument)
                except ClientError as error:
                    if record["sent_as"] != "S3Object" or error_code(error) not in _CURABLE:
                        raise
                    argument, change = self._as_bytes(image, error)
                    record["sent_as"], record["reencoded"] = "bytes", change
                    record |= self._detect(operation, argument)
            record["error"] = None
        except (ClientError, BotoCoreError, retry.Throttled, ImageRejected, OSError) as error:
            record["error"] = _sentence(error)
        return record

    def _detect(self, operation: str, image: dict[str, Any]) -> dict[str, Any]:
        request = self.request
        if operation == "DetectLabels":
            answer = self._call(
                operation,
                lambda: self.rekognition.detect_labels(
                    Image=image, MaxLabels=request.max_labels, MinConfidence=request.min_confidence
                ),
            )
            return {"labels": answer["Labels"]}
        if operation == "DetectFaces":
            answer = self._call(
                operation, lambda: self.rekognition.detect_faces(Image=image, Attributes=["ALL"])
            )
            return {"faces": answer["FaceDetails"]}
        answer = self._call(operation, lambda: self.rekognition.detect_text(Image=image))
        return {"text": answer["TextDetections"]}

    def _call(self, operation: str, request: Callable[[], Any]) -> Any:
        return retry.call(operation, request, self.backoff, sleep=self.sleep)

    def _argument(self, image: ImageRef) -> tuple[dict[str, Any], str | None]:
        if image.in_s3 and _sendable_as_object(image):
            return {"S3Object": {"Bucket": image.bucket, "Name": image.key}}, None
        prepared = prepare(self._read(image), image.name)
        return {"Bytes": prepared.data}, prepared.change

    def _as_bytes(self, image: ImageRef, refusal: Exception) -> tuple[dict[str, Any], str]:
        prepared = prepare(self._read(image), image.name)
        if prepared.change is None:  # nothing to cure: the refusal stands
            raise refusal
        return {"Bytes": prepared.data}, prepared.change

    def _read(self, image: ImageRef) -> bytes:
        if image.path is not None:
            return image.path.read_bytes()
        return bytes(self.s3.get_object(Bucket=image.bucket, Key=image.key)["Body"].read())


def run(
    analyzer: Analyzer,
    images: Sequence[ImageRef],
    out: IO[str],
    concurrency: int,
    advance: Callable[[dict[str, Any]], None] = lambda record: None,
) -> Summary:
    """Analyze every image with at most `concurrency` in flight; write one line each."""
    summary = Summary()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rekognition") as pool:
        futures = [pool.submit(analyzer.analyze, image) for image in images]
        try:
            for record in _in_order(futures):
                out.write(json.dumps(record) + "\n")
                out.flush()
                _count(summary, record)
                advance(record)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return summary


def _in_order(futures: Iterable[Future[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    for future in futures:
        yield future.result()


def _count(summary: Summary, record: dict[str, Any]) -> None:
    summary.images += 1
    # Rekognition bills each call that answered, also on an image that failed later.
    summary.calls += sum(1 for key in RESULT_KEYS if key in record)
    if record.get("reencoded"):
        summary.reencoded += 1
    if record["error"]:
        summary.failed += 1
        summary.errors.append(f"{record['image']}: {record['error']}")


def _sendable_as_object(image: ImageRef) -> bool:
    return (image.key or "").lower().endswith(S3_SUFFIXES) and (
        image.size is not None and image.size <= MAX_S3_OBJECT_BYTES
    )


def _sentence(error: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        message = error.response.get("Error", {}).get("Message", "")
        return f"{error_code(error)}: {message or error}"
    return f"{type(error).__name__}: {error}"
