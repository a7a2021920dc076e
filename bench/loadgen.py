"""Load from an independent generator: wrk, one thread, N keep-alive connections.

wrk (C, epoll) posts the same prebuilt request on each connection as soon as the last
answer is in, for a fixed time, and reports latency percentiles and requests/s. A server
that answers `Connection: close` (gunicorn's sync workers do) is reconnected. wrk runs on
the same machine and shares its cores with the server under test; its own CPU time is
measured and reported. `fetch` sends one request from Python (to check answers).
"""

from __future__ import annotations

import asyncio
import re
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import uvloop

WRK_MISSING = (
    "wrk is missing: the benchmarks load the servers with it. Install it with "
    "`apt-get install -y wrk` (Debian, Ubuntu) or `brew install wrk` (macOS), or build it "
    "from https://github.com/wg/wrk."
)
_HEADER_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"(?i)content-length:\s*(\d+)")
FETCH_TIMEOUT_S = 120
# wrk's --latency table: "     50%    2.51ms"
_PERCENTILE = re.compile(r"^\s*(\d+)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.MULTILINE)
_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)")
_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
# Sends the body and headers that WRK_BODY and WRK_TYPE name; wrk reads the script itself.
_SCRIPT = """
local file = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = os.getenv("WRK_TYPE")
wrk.headers["Accept"] = "application/json"
"""


class LoadError(RuntimeError):
    """A run with answers other than 200, or one wrk could not make."""


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    seconds: float
    percentiles_ms: dict[int, float]  # 50, 75, 90, 99
    completed: int  # requests answered within the run
    client_cpu_s: float  # wrk's CPU time over the run

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.seconds

    def percentile_ms(self, q: int) -> float:
        return self.percentiles_ms[q]


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise LoadError(WRK_MISSING)
    return path


def run_load(
    port: int, body: bytes, content_type: str, concurrency: int, seconds: int
) -> LoadResult:
    """`concurrency` connections posting `body` back to back for `seconds` (whole seconds:
    wrk's unit)."""
    output, client_cpu = _post(port, body, content_type, concurrency, seconds)
    return parse(output, concurrency, client_cpu)


def warm_up(port: int, body: bytes, content_type: str, concurrency: int, seconds: int) -> None:
    """Load the server for `seconds` and forget the figures (a slow model may answer none)."""
    _post(port, body, content_type, concurrency, seconds)


def _post(
    port: int, body: bytes, content_type: str, concurrency: int, seconds: int
) -> tuple[str, float]:
    """wrk's output for the run, and the CPU seconds wrk itself spent."""
    with tempfile.TemporaryDirectory(prefix="smvision-wrk-") as scratch:
        body_file = Path(scratch) / "body"
        body_file.write_bytes(body)
        script = Path(scratch) / "post.lua"
        script.write_text(_SCRIPT)
        env = {"WRK_BODY": str(body_file), "WRK_TYPE": content_type, "PATH": "/usr/bin:/bin"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        output = _wrk(port, script, env, concurrency, seconds)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return output, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _wrk(port: int, script: Path, env: dict[str, str], connections: int, seconds: int) -> str:
    command = [
        wrk_path(),
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, seconds)}s",
        "--timeout",
        "60s",
        "--latency",
        "--script",
        str(script),
        f"http://127.0.0.1:{port}/invocations",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if completed.returncode != 0:
        raise LoadError(f"wrk exited with {completed.returncode}: {completed.stderr.strip()}")
    return completed.stdout


def parse(output: str, concurrency: int, client_cpu_s: float) -> LoadResult:
    """wrk's report -> LoadResult; LoadError if any answer was not a 2xx or a socket failed."""
    errors = _ERRORS.search(output)
    if errors:
        raise LoadError(f"wrk saw failed requests:\n{output}")
    requests = _REQUESTS.search(output)
    percentiles = {
        int(q): float(value) * _SCALE[unit] * 1000 for q, value, unit in _PERCENTILE.findall(output)
    }
    if requests is None or set(percentiles) != {50, 75, 90, 99}:
        raise LoadError(f"wrk's report could not be read:\n{output}")
    if int(requests.group(1)) == 0:
        raise LoadError(
            f"no request was answered within the run (is the machine busy? a longer run, "
            f"python -m bench --seconds N, helps):\n{output}"
        )
    count, duration, unit = requests.groups()
    return LoadResult(
        concurrency,
        float(duration) * _SCALE[unit],
        percentiles,
        int(count),
        client_cpu_s,
    )


def fetch(port: int, body: bytes, content_type: str) -> bytes:
    """One POST /invocations; the response body."""

    async def once() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {content_type}\r\nAccept: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        header = await reader.readuntil(_HEADER_END)
        status = int(header.split(b" ", 2)[1])
        length = _CONTENT_LENGTH.search(header)
        if length is None:
            raise LoadError(f"an answer without Content-Length: {header!r}")
        answer = await reader.readexactly(int(length.group(1)))
        writer.close()
        if status != 200:
            raise LoadError(f"status {status}: {answer[:300]!r}")
        return answer

    return uvloop.run(asyncio.wait_for(once(), FETCH_TIMEOUT_S))
