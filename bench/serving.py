"""Serving speed: `serve` against the classic Flask + gunicorn design and against the floor.

For one trained job, both servers run side by side on 127.0.0.1; every round measures,
for each payload, the in-process floor (decode_image + predict_proba in a loop, no HTTP)
and then each concurrency on both servers, which server goes first alternating by round.
Start-up time is measured apart, by starting `serve` (the console script the image
runs) and polling /ping every 10 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bench import loadgen, processes, reference_server
from bench.common import Store, key
from smvision import algorithms, images
from smvision.algorithms.base import Algorithm
from smvision.artifacts import read_metadata
from smvision.local import console_script
from tests.server_process import descendants, free_port

CONCURRENCIES = (1, 8, 32)
SERVERS = ("serve", "reference")
READY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Payload:
    name: str
    body: bytes
    content_type: str


def payloads() -> list[Payload]:
    """Real photos, as the packages ship them: scikit-image's astronaut.png (512x512 RGB)
    and scikit-learn's china.jpg (640x427 RGB)."""
    astronaut = resources.files("skimage.data").joinpath("astronaut.png").read_bytes()
    china = resources.files("sklearn.datasets.images").joinpath("china.jpg").read_bytes()
    return [
        Payload("astronaut.png", astronaut, "image/png"),
        Payload("china.jpg", china, "image/jpeg"),
    ]


@dataclass
class Server:
    """A running server: its port and its worker processes."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    master_is_child: bool  # `smvision.local serve` runs serve (the master) as its child

    def worker_pids(self) -> list[int]:
        below = descendants(self.process.pid)
        return below[1:] if self.master_is_child else below


@contextmanager
def running(name: str, job_dir: Path, log_dir: Path) -> Iterator[Server]:
    """`serve` (through `python -m smvision.local serve`) or the reference server, ready."""
    port = free_port()
    log = log_dir / f"{name}.log"
    if name == "serve":
        command = [
            sys.executable,
            "-m",
            "smvision.local",
            "serve",
            "--job-dir",
            str(job_dir),
            "--port",
            str(port),
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
    else:
        workers = len(os.sched_getaffinity(0))
        process = reference_server.start(job_dir / "opt" / "ml" / "model", port, workers, log)
    try:
        processes.wait_ready(process, port, READY_TIMEOUT_S, log)
        yield Server(name, process, port, master_is_child=name == "serve")
    finally:
        processes.stop(process)


def load_model(job_dir: Path) -> Algorithm:
    model_dir = job_dir / "opt" / "ml" / "model"
    return algorithms.get(read_metadata(model_dir)["algorithm"]).load(model_dir)


def floor_latencies(model: Algorithm, body: bytes, seconds: float) -> np.ndarray:
    """decode_image + predict_proba of one image, back to back in this process."""
    for _ in range(3):
        model.predict_proba([images.decode_image(body)])
    latencies = []
    deadline = time.perf_counter() + seconds
    while (started := time.perf_counter()) < deadline:
        model.predict_proba([images.decode_image(body)])
        latencies.append(time.perf_counter() - started)
    return np.array(latencies)


def measure_algorithm(
    algorithm: str, job_dir: Path, rounds: int, seconds: float, store: Store
) -> None:
    """Floor, serve and reference for every payload and concurrency, `rounds` times."""
    model = load_model(job_dir)
    bodies = payloads()
    with (
        tempfile.TemporaryDirectory(prefix="smvision-bench-") as logs,
        running("serve", job_dir, Path(logs)) as serve,
        running("reference", job_dir, Path(logs)) as reference,
    ):
        servers = {"serve": serve, "reference": reference}
        for payload in bodies:
            answers = {
                loadgen.fetch(s.port, payload.body, payload.content_type) for s in servers.values()
            }
            if len(answers) != 1:
                raise RuntimeError(f"serve and the reference answer {payload.name} differently")
        for round_index in range(rounds):
            order = SERVERS if round_index % 2 == 0 else SERVERS[::-1]
            for payload in bodies:
                floor = floor_latencies(model, payload.body, seconds) * 1000
                floor_p50 = float(np.percentile(floor, 50))
                store.add(key(algorithm, payload.name, "floor", "p50"), "ms", floor_p50)
                for concurrency in CONCURRENCIES:
                    measured = {
                        name: _measure(servers[name], payload, concurrency, seconds)
                        for name in order
                    }
                    for name, (result, busiest) in measured.items():
                        cell = (algorithm, payload.name, name, f"c{concurrency}")
                        store.add(key(*cell, "p50"), "ms", result.percentile_ms(50))
                        store.add(key(*cell, "p99"), "ms", result.percentile_ms(99))
                        store.add(key(*cell, "rps"), "requests/s", result.requests_per_s)
                        store.add(
                            key(*cell, "client cpu"),
                            "ms per request",
                            result.client_cpu_s / result.requests * 1000,
                        )
                        if busiest is not None and concurrency > 1:
                            store.add(key(*cell, "busiest"), "share of CPU", busiest)
                    ours, theirs = measured["serve"][0], measured["reference"][0]
                    pair = (algorithm, payload.name, f"c{concurrency}")
                    store.add(
                        key(*pair, "rps ratio"),
                        "serve / reference",
                        ours.requests_per_s / theirs.requests_per_s,
                    )
                    if concurrency == 1:
                        store.add(
                            key(*pair, "floor ratio"),
                            "serve p50 / floor p50",
                            ours.percentile_ms(50) / floor_p50,
                        )
        for name, server in servers.items():
            for index, pid in enumerate(server.worker_pids()):
                rss, pss = processes.memory_mib(pid)
                store.add(key(algorithm, "memory", name, f"worker {index}", "rss"), "MiB", rss)
                store.add(key(algorithm, "memory", name, f"worker {index}", "pss"), "MiB", pss)


def _measure(
    server: Server, payload: Payload, concurrency: int, seconds: float
) -> tuple[loadgen.LoadResult, float | None]:
    """One load run, and the busiest worker's share of the workers' CPU time (2+ workers)."""
    workers = server.worker_pids()
    before = [processes.cpu_seconds(pid) for pid in workers]
    result = loadgen.run_load(server.port, payload.body, payload.content_type, concurrency, seconds)
    used = [processes.cpu_seconds(pid) - b for pid, b in zip(workers, before)]
    busiest = max(used) / sum(used) if len(used) > 1 and sum(used) > 0 else None
    return result, busiest


def startup_seconds(job_dir: Path, log: Path) -> tuple[float, list[tuple[float, float]]]:
    """From starting `serve` to the first 200 on /ping; each worker's (RSS, PSS) then."""
    port = free_port()
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(job_dir / "opt" / "ml"),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [console_script("serve")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        seconds = processes.wait_ready(process, port, READY_TIMEOUT_S, log)
        memory = [processes.memory_mib(pid) for pid in descendants(process.pid)]
    finally:
        processes.stop(process)
    return seconds, memory


def measure_startup(algorithm: str, job_dir: Path, repeats: int, store: Store) -> None:
    with tempfile.TemporaryDirectory(prefix="smvision-bench-") as logs:
        for index in range(repeats):
            seconds, memory = startup_seconds(job_dir, Path(logs) / f"serve-{index}.log")
            store.add(key(algorithm, "startup"), "s", seconds)
            for worker, (rss, pss) in enumerate(memory):
                store.add(key(algorithm, "ready memory", f"worker {worker}", "rss"), "MiB", rss)
                store.add(key(algorithm, "ready memory", f"worker {worker}", "pss"), "MiB", pss)
