"""What serving a trained model costs: time to readiness, and latency in a process of its own.

`seconds_to_ready` starts the real `serve` (`python -m smvision.local serve`, the server
`docker run IMAGE serve` runs) and times it from the start to the first 200 on /ping: the
time an endpoint or a scaled-out instance takes before it can take traffic.
`measure_latency` runs `python -m smvision.local.compare.latency` in a fresh process, so
that one algorithm's TensorFlow runtime and memory do not weigh on the next.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 40.0
PING_INTERVAL_S = 0.02


class ServingMeasurementError(RuntimeError):
    """A serving measurement that did not complete; the sentence says why and where the log is."""


@dataclass(frozen=True)
class Latency:
    p50_ms: float  # one image per call, decoding included
    batch32_images_per_second: float
    images: int  # how many different images were timed


def seconds_to_ready(job_dir: Path, log_file: Path, timeout: float = READY_TIMEOUT_S) -> float:
    """Start `serve` over job_dir, time it to the first 200 on /ping, then stop it."""
    port = _unused_port()
    command = [sys.executable, "-m", "smvision.local", "serve", "--job-dir", str(job_dir)]
    command += ["--port", str(port)]
    with log_file.open("w") as log:
        started = time.perf_counter()
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            while time.perf_counter() - started < timeout:
                if server.poll() is not None:
                    raise ServingMeasurementError(
                        f"serve exited with status {server.returncode} before answering /ping "
                        f"with 200; its log is {log_file}."
                    )
                if ping_status(port) == 200:
                    return time.perf_counter() - started
                time.sleep(PING_INTERVAL_S)
            raise ServingMeasurementError(
                f"serve did not answer /ping with 200 within {timeout:.0f} s; its log is "
                f"{log_file}."
            )
        finally:
            _stop(server)


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ping_status(port: int) -> int:
    """The status of GET /ping on 127.0.0.1:port; 0 when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def measure_latency(model_dir: Path, images_dir: Path, log_file: Path) -> Latency:
    """Per-image latency p50 and batch-32 throughput, measured in a process of its own."""
    command = [sys.executable, "-m", "smvision.local.compare.latency", str(model_dir)]
    command.append(str(images_dir))
    with log_file.open("w") as log:
        completed = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=log, text=True, check=False
        )
    if completed.returncode != 0:
        raise ServingMeasurementError(
            f"The latency measurement exited with status {completed.returncode}; its log is "
            f"{log_file}."
        )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return Latency(
        p50_ms=float(result["p50_ms"]),
        batch32_images_per_second=float(result["batch32_images_per_second"]),
        images=int(result["images"]),
    )
