"""The bare ASGI interface as the serving routes use it: errors as statuses, headers,
query strings, request bodies within a limit, and answers sent whole or in chunks."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, cast

from smvision.core.contract import TIMEOUT_ENV

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

JSON_TYPE = b"application/json"
# A body larger than this is read into one buffer of its declared length: chunks joined
# at the end would hold it twice (an asynchronous endpoint's body may be 1 GB).
ONE_BUFFER_BYTES = 8 * 1024 * 1024

TooLarge = Callable[[str], "HTTPError"]


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


class TimedBody:
    """`receive` for a request whose body must arrive within a deadline: counts the bytes
    that came, and knows whether it was waiting for more when the deadline passed."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.received = 0
        self.waiting = False

    async def __call__(self) -> Message:
        self.waiting = True
        message = await self._receive()
        # Not reached when the deadline cancels the wait: `waiting` stays True.
        self.waiting = False
        self.received += len(message.get("body", b""))
        return message

    def stalled(self, scope: Scope, timeout_s: float) -> HTTPError:
        """The 408 for a body that stopped arriving before the deadline of `timeout_s`."""
        declared = declared_length(scope)
        came = f"{self.received}" if declared is None else f"{self.received} of {declared}"
        return HTTPError(
            408,
            f"The request body stopped arriving: {came} bytes came within {timeout_s:g} s "
            f"({TIMEOUT_ENV}); send the body without pauses, or raise {TIMEOUT_ENV}.",
            # The rest of the body may still come: the connection cannot carry another request.
            headers=[(b"connection", b"close")],
        )


async def body_chunks(
    scope: Scope, receive: Receive, limit: int, too_large: TooLarge
) -> AsyncIterator[bytes]:
    """The request body as it arrives; `too_large(what)` is raised once it would pass
    `limit` bytes (at once, when its Content-Length says so)."""
    length = declared_length(scope)
    if length is not None and length > limit:
        raise too_large(f"The body is {length} bytes")
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(f"The body passed {limit} bytes")
        yield chunk
        if not message.get("more_body", False):
            return


async def read_body(scope: Scope, receive: Receive, limit: int, too_large: TooLarge) -> bytes:
    """The whole request body (see `body_chunks`); a large one with a Content-Length is
    filled into one buffer of that size, so that it is never held twice."""
    chunks = body_chunks(scope, receive, limit, too_large)
    length = declared_length(scope)
    if length is None or length <= ONE_BUFFER_BYTES:
        parts = [chunk async for chunk in chunks]
        return parts[0] if len(parts) == 1 else b"".join(parts)
    buffer = bytearray(length)
    filled = 0
    async for chunk in chunks:
        if filled + len(chunk) > length:
            raise HTTPError(400, f"The body is longer than its Content-Length ({length}).")
        buffer[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    if filled != length:
        raise HTTPError(
            400, f"The body ended after {filled} of the {length} bytes its Content-Length declares."
        )
    # Only read from here on, as bytes are: the decoders take any buffer (cv2, numpy, json).
    return cast(bytes, buffer)


def declared_length(scope: Scope) -> int | None:
    declared = header(scope, b"content-length")
    if declared is None:
        return None
    try:
        return int(declared)
    except ValueError as error:
        raise HTTPError(400, f"Content-Length '{declared}' is not a number.") from error


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


async def respond_in_chunks(
    send: Send, size: int, chunks: Iterator[bytes], content_type: bytes
) -> None:
    """A 200 answer of `size` bytes, sent chunk by chunk (its length known beforehand)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type), (b"content-length", str(size).encode())],
        }
    )
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
