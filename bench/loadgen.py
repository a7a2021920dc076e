"""A small closed-loop HTTP load generator: N keep-alive connections on one asyncio loop.

Each connection sends one POST, reads the whole answer, and sends the next, for a fixed
time. A server that answers `Connection: close` (gunicorn's sync workers do) is
reconnected, and the connect counts in that request's latency, as it does for any
client. The requests are prebuilt bytes and the answers are parsed only as far as
Content-Length, so the client costs tens of microseconds per request on uvloop; it still
shares the machine's cores with the server, which RESULTS.md says.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import uvloop

_HEADER_END = b"\r\n\r\n"


class LoadError(RuntimeError):
    """A request that did not get a 200."""


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    seconds: float
    latencies_s: np.ndarray  # of the requests that started inside the window
    completed: int  # requests that finished inside the window
    client_cpu_s: float  # this process's CPU time over the whole run, warm-up included
    requests: int  # every request of the run, warm-up included

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.seconds

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) * 1000


def build_request(port: int, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: {content_type}\r\nAccept: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """One response: (body, whether the server closes the connection after it)."""
    head = await reader.readuntil(_HEADER_END)
    status_line, _, fields = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    close = False
    for line in fields.lower().split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip() == b"close"
    body = await reader.readexactly(length)
    if status != 200:
        raise LoadError(f"status {status}: {body[:300]!r}")
    return body, close


async def _client(
    port: int, request: bytes, window: tuple[float, float], samples: list[tuple[float, float]]
) -> None:
    _, stop = window
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while True:
        started = time.perf_counter()
        if started >= stop:
            break
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert reader is not None
        writer.write(request)
        _, close = await _read_answer(reader)
        samples.append((started, time.perf_counter()))
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _run(
    port: int, request: bytes, concurrency: int, warm_up_s: float, seconds: float
) -> LoadResult:
    cpu_started = time.process_time()
    start = time.perf_counter() + warm_up_s
    window = (start, start + seconds)
    samples: list[tuple[float, float]] = []
    await asyncio.gather(*(_client(port, request, window, samples) for _ in range(concurrency)))
    begun = np.array([s for s, _ in samples])
    ended = np.array([e for _, e in samples])
    inside = (begun >= window[0]) & (begun < window[1])
    completed = int(((ended >= window[0]) & (ended < window[1])).sum())
    return LoadResult(
        concurrency,
        seconds,
        ended[inside] - begun[inside],
        completed,
        client_cpu_s=time.process_time() - cpu_started,
        requests=len(samples),
    )


def run_load(
    port: int,
    body: bytes,
    content_type: str,
    concurrency: int,
    seconds: float,
    warm_up_s: float = 0.5,
) -> LoadResult:
    """`concurrency` connections posting `body` back to back; measured after a warm-up."""
    request = build_request(port, body, content_type)
    return uvloop.run(_run(port, request, concurrency, warm_up_s, seconds))


def fetch(port: int, body: bytes, content_type: str) -> bytes:
    """One POST /invocations; the response body."""

    async def once() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(build_request(port, body, content_type))
        answer, _ = await _read_answer(reader)
        writer.close()
        return answer

    return uvloop.run(once())
