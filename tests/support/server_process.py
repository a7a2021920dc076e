"""Run the real `serve` over a job directory as a child process: start, wait for /ping, stop.

The tests, `make demo` (scripts/demo_serve.py) and scripts/measure_serving.py all talk to
the server that `python -m smvision.local serve --job-dir JOBDIR --port PORT` starts, the
same one `docker run IMAGE serve` runs, through this one context manager.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from smvision.local.compare.peak_memory import descendants

PING_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 40.0
LOG_TAIL_CHARS = 6000


class ServerStartError(RuntimeError):
    """The server exited or never answered /ping with 200; the message holds its log."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ping(url: str, timeout: float = PING_TIMEOUT_S) -> int:
    """The status of GET {url}/ping; 0 when nothing answered."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log()[-LOG_TAIL_CHARS:]

    def server_pids(self) -> list[int]:
        """The gunicorn master (first) and its workers: every process below the launcher."""
        return descendants(self.process.pid)

    def worker_pids(self) -> list[int]:
        return self.server_pids()[1:]

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(
                    f"serve exited with status {self.process.returncode} before answering "
                    f"/ping; its log:\n{self.log_tail()}"
                )
            if ping(self.url) == 200:
                return
            time.sleep(0.1)  # waits on /ping turning 200: polling is how SageMaker sees it too
        raise ServerStartError(
            f"serve did not answer /ping with 200 within {timeout:.0f} s; its log:\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then wait; SIGKILL the whole tree if it overstays, and say so."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in [self.process.pid, *self.server_pids()]:
                _kill(pid)
            self.process.wait()
            raise


def start_server(
    job_dir: Path,
    log_path: Path,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> RunningServer:
    """`python -m smvision.local serve` over job_dir, its output going to log_path."""
    port = port or free_port()
    command = [sys.executable, "-m", "smvision.local", "serve"]
    command += ["--job-dir", str(job_dir), "--port", str(port)]
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    return RunningServer(process, f"http://127.0.0.1:{port}", log_path)


@contextmanager
def running_server(
    job_dir: Path,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 180.0,
) -> Iterator[RunningServer]:
    """A ready server (its /ping said 200) that is stopped when the block ends."""
    with tempfile.TemporaryDirectory(prefix="smvision-serve-") as log_dir:
        server = start_server(job_dir, Path(log_dir) / "serve.log", port, env)
        try:
            server.wait_ready(ready_timeout)
            yield server
        finally:
            if server.process.poll() is None:
                server.stop()


def resident_mib(pid: int) -> float:
    """Resident memory (VmRSS) of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"/proc/{pid}/status has no VmRSS line")


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
