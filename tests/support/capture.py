"""Data capture as SageMaker records it, for tests: send a request to a real `serve`, and
write the request and its answer as one line of a capture file.

SageMaker writes `<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<name>.jsonl`, one
record per request: bodies of the types in the endpoint's CaptureContentTypeHeader as
text (encoding "JSON" or "CSV"), every other body base64 (encoding "BASE64"). `deploy
--data-capture` lists application/json and application/jsonlines as JSON and text/csv as
CSV, as CAPTURED_AS_TEXT does here.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

CAPTURED_AS_TEXT = {"application/json": "JSON", "application/jsonlines": "JSON", "text/csv": "CSV"}
VARIANT = "AllTraffic"


@dataclass(frozen=True)
class Exchange:
    """One request and the answer it got, as the endpoint saw them."""

    body: bytes
    content_type: str
    answer: bytes
    answer_type: str
    inference_id: str
    time: datetime


def send(
    client: httpx.Client,
    url: str,
    body: bytes,
    content_type: str,
    accept: str = "application/json",
    time: datetime | None = None,
) -> Exchange:
    """POST one request to a running server's /invocations; it must succeed."""
    response = client.post(
        f"{url}/invocations", content=body, headers={"Content-Type": content_type, "Accept": accept}
    )
    response.raise_for_status()
    return Exchange(
        body,
        content_type,
        response.content,
        response.headers["content-type"],
        str(uuid.uuid4()),
        time or datetime.now(UTC),
    )


def _captured(body: bytes, content_type: str, mode: str) -> dict[str, str]:
    encoding = CAPTURED_AS_TEXT.get(content_type.split(";")[0].strip().lower())
    data = body.decode("utf-8") if encoding else base64.b64encode(body).decode("ascii")
    return {
        "observedContentType": content_type,
        "mode": mode,
        "data": data,
        "encoding": encoding or "BASE64",
    }


def record(exchange: Exchange) -> dict[str, Any]:
    return {
        "captureData": {
            "endpointInput": _captured(exchange.body, exchange.content_type, "INPUT"),
            "endpointOutput": _captured(exchange.answer, exchange.answer_type, "OUTPUT"),
        },
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceId": exchange.inference_id,
            "inferenceTime": exchange.time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        },
        "eventVersion": "0",
    }


def write_capture(destination: Path, endpoint: str, exchanges: Iterable[Exchange]) -> list[Path]:
    """One capture file per hour under destination/endpoint/variant/yyyy/mm/dd/hh/, named
    as SageMaker names them (minute-second-millisecond of the first record, then an id)."""
    by_hour: dict[Path, list[Exchange]] = {}
    for exchange in exchanges:
        folder = destination / endpoint / VARIANT / exchange.time.strftime("%Y/%m/%d/%H")
        by_hour.setdefault(folder, []).append(exchange)
    written = []
    for folder, members in by_hour.items():
        first = members[0].time
        path = folder / f"{first:%M-%S}-{first.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(record(e)) + "\n" for e in members))
        written.append(path)
    return sorted(written)
