"""Reading what an endpoint's data capture recorded: SageMaker's JSON Lines files.

SageMaker writes one record per request, one per line, to
`<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`:

    {"captureData": {"endpointInput": {"observedContentType": "image/png", "mode": "INPUT",
                                       "data": "<base64>", "encoding": "BASE64"},
                     "endpointOutput": {"observedContentType": "application/json",
                                        "mode": "OUTPUT", "data": "{...}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "...", "inferenceId": "...", "inferenceTime": "...Z"},
     "eventVersion": "0"}

Bodies of the types listed in the endpoint's CaptureContentTypeHeader arrive as text
(encoding JSON or CSV), the rest base64. Requests are decoded by `serve`'s own decoder, so
the monitor sees exactly the images the model saw; a record that cannot be read is
skipped and reported with its file, line and reason, never fatal.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from smvision.core import media
from smvision.data import images
from smvision.data.bodies import InputError, UnsupportedContentTypeError, decode_request
from smvision.monitor.features import FeatureMeter

CAPTURE_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float


@dataclass
class Captured:
    """What the captured requests held: each image's features (measured as it was decoded,
    then let go), its shape as decoded, and the answers they got, in order."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    files: int = 0
    records: int = 0
    # (where, why): "file.jsonl:12" and the reason the record was left out.
    skipped: list[tuple[str, str]] = field(default_factory=list)


class CaptureError(ValueError):
    """A record that is not in SageMaker's capture format, or a body that does not decode."""


def capture_files(root: Path) -> list[Path]:
    """Every capture file under root (the endpoint's prefix as a processing job gets it)."""
    return sorted(p for p in root.rglob(f"*{CAPTURE_SUFFIX}") if p.is_file())


def read_captured(
    root: Path,
    image_size: int,
    channels: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Captured:
    """The records under root whose inferenceTime lies in [since, until), their images
    measured as the model's input (`image_size`, `channels`) saw them."""
    captured = Captured()
    meter = FeatureMeter(image_size, channels)
    for path in capture_files(root):
        captured.files += 1
        for number, line in _lines(path):
            where = f"{path.relative_to(root)}:{number}"
            try:
                record = _parse_record(line)
                if not _within(_inference_time(record), since, until):
                    continue
                captured.records += 1
                decoded = _request_images(record)
                answers = _answers(record)
            except (
                CaptureError,
                InputError,
                UnsupportedContentTypeError,
                images.ImageError,
            ) as error:
                captured.skipped.append((where, str(error)))
                continue
            if len(answers) != len(decoded):
                captured.skipped.append(
                    (
                        where,
                        f"the request holds {len(decoded)} images but the answer "
                        f"{len(answers)} predictions",
                    )
                )
                continue
            for image in decoded:
                meter.add(image)
                captured.shapes.append(image.shape)
            captured.predictions += answers
            del decoded
    captured.values = meter.values()
    return captured


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _parse_record(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise CaptureError(f"not JSON ({error})") from error
    except RecursionError:
        raise CaptureError("JSON nested too deep to read") from None
    if not isinstance(record, dict) or not isinstance(record.get("captureData"), dict):
        raise CaptureError("not a capture record: it has no 'captureData' object")
    return record


def _inference_time(record: dict[str, Any]) -> datetime | None:
    """When the request was made (UTC when the time names no zone, as the window's times
    are read); None when the record does not say."""
    metadata = record.get("eventMetadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise CaptureError(f"eventMetadata is a JSON {_json_type(metadata)}, not an object")
    text = metadata.get("inferenceTime")
    if text is None:
        return None
    example = "such as 2026-03-01T09:00:00Z"
    if not isinstance(text, str):
        raise CaptureError(f"eventMetadata.inferenceTime is {text!r}, not an ISO time {example}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise CaptureError(
            f"eventMetadata.inferenceTime {text!r} is not an ISO time {example}"
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _within(moment: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    if moment is None:
        if since is None and until is None:
            return True
        raise CaptureError(
            "the record has no eventMetadata.inferenceTime, so it cannot be placed in the "
            "--since/--until window"
        )
    return (since is None or moment >= since) and (until is None or moment < until)


def _json_type(value: object) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _body(record: dict[str, Any], part: str) -> tuple[bytes, str]:
    """The bytes and media type of endpointInput or endpointOutput."""
    entry = record["captureData"].get(part)
    if not isinstance(entry, dict) or not isinstance(entry.get("data"), str):
        raise CaptureError(
            f"the record has no captureData.{part}.data; capture both Input and Output "
            "(deploy --data-capture does)"
        )
    data, encoding = entry["data"], str(entry.get("encoding", "")).upper()
    observed = entry.get("observedContentType")
    if observed is not None and not isinstance(observed, str):
        raise CaptureError(f"captureData.{part}.observedContentType is {observed!r}, not a string")
    if encoding == "BASE64":
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as error:
            raise CaptureError(f"captureData.{part}.data is not base64 ({error})") from error
    else:
        raw = data.encode("utf-8")
    return raw, media.media_type(observed)


def _request_images(record: dict[str, Any]) -> list[np.ndarray]:
    body, content_type = _body(record, "endpointInput")
    return decode_request(body, content_type)


def _answers(record: dict[str, Any]) -> list[Prediction]:
    """The (label, probability) of each image in `serve`'s answer, in any Accept type."""
    body, content_type = _body(record, "endpointOutput")
    text = body.decode("utf-8", errors="replace")
    failure = _error_of(text)
    if failure is not None:
        raise CaptureError(f"the endpoint answered an error: {failure}")
    try:
        if content_type == media.CSV:
            rows = [row for row in csv.reader(io.StringIO(text)) if row]
            return [Prediction(row[0], float(row[1])) for row in rows]
        if content_type == media.JSON_LINES:
            entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            entries = json.loads(text)["predictions"]
        return [Prediction(str(e["label"]), float(e["probability"])) for e in entries]
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, RecursionError) as error:
        raise CaptureError(
            f"the answer ({content_type or 'no content type'}) is not smvision's prediction "
            f"format ({type(error).__name__}: {error})"
        ) from error


def _error_of(text: str) -> str | None:
    """The sentence of an error answer, {"error": ...}; None for anything else."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return str(document["error"]) if isinstance(document, dict) and "error" in document else None
