"""The bare ASGI interface as the serving routes use it: errors as statuses, headers,
query strings, and answers sent whole or in chunks."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

JSON_TYPE = b"application/json"


class HTTPError(Exception):
    """An answer other than 200, with the sentence that goes into {"error": ...}."""

    def __init__(self, status: int, message: str, headers: Iterable[Header] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


def allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        methods = ", ".join(allowed)
        raise HTTPError(
            405,
            f"Method {method} is not allowed here; use {' or '.join(allowed)}.",
            headers=[(b"allow", methods.encode())],
        )


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def query(scope: Scope, name: str) -> str | None:
    """A query-string parameter's first value."""
    values = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
    found = values.get(name)
    return found[0] if found else None


async def respond(
    send: Send, status: int, body: bytes, content_type: bytes, headers: Iterable[Header] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, document: Any, status: int = 200) -> None:
    await respond(send, status, json.dumps(document).encode(), JSON_TYPE)


async def respond_in_chunks(send: Send, size: int, chunks: Iterator[bytes],
                            content_type: bytes) -> None:
    """A 200 answer of `size` bytes, sent chunk by chunk (its length known beforehand)."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(size).encode())]})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
