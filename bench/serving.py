"""Serving speed: `serve` against the machine's limit, the floor and the classic design.

For one trained job, both servers run side by side on 127.0.0.1; every round measures,
for each payload, the in-process floor (serve's own decode and model, one image in a
loop, no HTTP: its wall-clock p50 and its CPU time per image) and then each concurrency on
both servers under wrk, which server goes first alternating by round. For serve it also
counts the CPU time of its whole process tree over each run: busy cores (CPU seconds per
second) and the machine's limit for that run, busy cores over the floor's CPU seconds per
request, which serve's requests/s is compared with. Start-up time is measured apart, by
starting `serve` (the console script the image runs) and polling /ping every 10 ms.
"""

from __future__ import annotations

import json
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

import cv2
import numpy as np

from bench import loadgen, processes, reference_server
from bench.common import Store, key
from smvision import algorithms
from smvision.algorithms.base import Algorithm
from smvision.core import contract
from smvision.core.artifacts import read_metadata
from smvision.core.machine import available_cores
from smvision.data import images
from smvision.local.compare.peak_memory import descendants
from smvision.local.job_dir import console_script
from smvision.local.samples import digits_images
from smvision.serving.inference import Predictor
from smvision.serving.settings import settings_from
from tests.support.server_process import free_port

CONCURRENCIES = (1, 8, 32)
# The first round warms each server and payload for this long before measuring.
WARM_UP_S = 1
SERVERS = ("serve", "reference")
READY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Payload:
    name: str
    body: bytes
    content_type: str


ASTRONAUT_JPEG_QUALITY = 90


def payloads() -> list[Payload]:
    """Real photos as JPEG, the form photos travel in: scikit-learn's china.jpg (640x427
    RGB, as shipped) and scikit-image's astronaut (512x512 RGB, shipped as PNG, encoded
    here at quality 90); and one of scikit-learn's digits as the PNG the jobs train on
    (8x8 grey: decoding costs nothing, so it shows the model's and the server's own cost)."""
    china = resources.files("sklearn.datasets.images").joinpath("china.jpg").read_bytes()
    png = resources.files("skimage.data").joinpath("astronaut.png").read_bytes()
    rgb = images.decode_image(png)
    quality = [cv2.IMWRITE_JPEG_QUALITY, ASTRONAUT_JPEG_QUALITY]
    ok, astronaut = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), quality)
    assert ok
    ok, digit = cv2.imencode(".png", digits_images()[0][0])
    assert ok
    return [
        Payload("china.jpg", china, "image/jpeg"),
        Payload("astronaut.jpg", astronaut.tobytes(), "image/jpeg"),
        Payload("digit.png", digit.tobytes(), "image/png"),
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
        workers = available_cores()  # as many as serve runs for svm
        process = reference_server.start(job_dir / "opt" / "ml" / "model", port, workers, log)
    try:
        processes.wait_ready(process, port, READY_TIMEOUT_S, log)
        yield Server(name, process, port, master_is_child=name == "serve")
    finally:
        processes.stop(process)


def classic_model(job_dir: Path) -> Algorithm:
    """The trained model as training's evaluation runs it (the reference's model)."""
    model_dir = job_dir / "opt" / "ml" / "model"
    return algorithms.get(read_metadata(model_dir)["algorithm"]).load(model_dir)


def serve_model(job_dir: Path) -> Predictor:
    """The model as a `serve` worker loads it: compiled, decoding as training decoded, on
    the threads of a worker's share of the cores."""
    model_dir = job_dir / "opt" / "ml" / "model"
    settings = settings_from(contract.load({"SAGEMAKER_BASE_DIR": str(model_dir.parent)}))
    return Predictor.load(model_dir, threads=settings.threads_per_worker)


def serve_predict(predictor: Predictor, body: bytes) -> np.ndarray:
    """What serve does with one image body, minus HTTP and the queue."""
    return predictor.algorithm.predict_proba([predictor.model_input.from_file(body)])


def classic_predict(model: Algorithm, body: bytes) -> np.ndarray:
    """What the reference does with one image body: a full decode, the model as trained."""
    return model.predict_proba([images.decode_image(body)])


def floor_latencies(predictor: Predictor, body: bytes, seconds: float) -> tuple[np.ndarray, float]:
    """serve's decode + predict of one image, back to back in this process: the wall-clock
    seconds of each, and the CPU seconds (every thread of this process) per image."""
    for _ in range(3):
        serve_predict(predictor, body)
    latencies = []
    cpu_started = time.process_time()
    deadline = time.perf_counter() + seconds
    while (started := time.perf_counter()) < deadline:
        serve_predict(predictor, body)
        latencies.append(time.perf_counter() - started)
    return np.array(latencies), (time.process_time() - cpu_started) / len(latencies)


def check_answers(
    servers: dict[str, Server], payload: Payload, expected: dict[str, np.ndarray]
) -> None:
    """Each server answers as its own pipeline does in this process (labels equal,
    probabilities within 1e-4): the two do different work, and must do it right."""
    for name, server in servers.items():
        answer = json.loads(loadgen.fetch(server.port, payload.body, payload.content_type))
        (prediction,) = answer["predictions"]
        probabilities = np.array(list(prediction["probabilities"].values()))
        if np.abs(probabilities - expected[name][0]).max() > 1e-4:
            raise RuntimeError(
                f"{name} answers {payload.name} with {probabilities}, its in-process pipeline "
                f"with {expected[name][0]}"
            )


def measure_algorithm(
    algorithm: str, job_dir: Path, rounds: int, seconds: int, store: Store
) -> None:
    """Floor, serve and reference for every payload and concurrency, `rounds` times."""
    predictor, classic = serve_model(job_dir), classic_model(job_dir)
    bodies = payloads()
    with (
        tempfile.TemporaryDirectory(prefix="smvision-bench-") as logs,
        running("serve", job_dir, Path(logs)) as serve,
        running("reference", job_dir, Path(logs)) as reference,
    ):
        servers = {"serve": serve, "reference": reference}
        for payload in bodies:
            expected = {
                "serve": serve_predict(predictor, payload.body),
                "reference": classic_predict(classic, payload.body),
            }
            check_answers(servers, payload, expected)
        for round_index in range(rounds):
            order = SERVERS if round_index % 2 == 0 else SERVERS[::-1]
            warm_up = WARM_UP_S if round_index == 0 else 0
            for payload in bodies:
                latencies, floor_cpu_s = floor_latencies(predictor, payload.body, seconds)
                floor_p50 = float(np.percentile(latencies, 50)) * 1000
                store.add(key(algorithm, payload.name, "floor", "p50"), "ms", floor_p50)
                store.add(key(algorithm, payload.name, "floor", "cpu"), "ms", floor_cpu_s * 1000)
                for concurrency in CONCURRENCIES:
                    measured = {
                        name: _measure(servers[name], payload, concurrency, seconds, warm_up)
                        for name in order
                    }
                    for name, run in measured.items():
                        cell = (algorithm, payload.name, name, f"c{concurrency}")
                        result = run.result
                        store.add(key(*cell, "p50"), "ms", result.percentile_ms(50))
                        store.add(key(*cell, "p99"), "ms", result.percentile_ms(99))
                        store.add(key(*cell, "rps"), "requests/s", result.requests_per_s)
                        store.add(
                            key(*cell, "client cpu"),
                            "ms per request",
                            result.client_cpu_s / max(1, result.completed) * 1000,
                        )
                        store.add(key(*cell, "busy"), "cores", run.busy_cores)
                        store.add(
                            key(*cell, "cpu"),
                            "ms per request",
                            run.cpu_s / max(1, result.completed) * 1000,
                        )
                        if run.busiest is not None and concurrency > 1:
                            store.add(key(*cell, "busiest"), "share of CPU", run.busiest)
                    ours, theirs = measured["serve"], measured["reference"]
                    pair = (algorithm, payload.name, f"c{concurrency}")
                    store.add(
                        key(*pair, "rps ratio"),
                        "serve / reference",
                        ours.result.requests_per_s / theirs.result.requests_per_s,
                    )
                    # What the busy cores could answer at the floor's CPU cost per request.
                    limit = ours.busy_cores / floor_cpu_s
                    store.add(key(*pair, "limit"), "requests/s", limit)
                    store.add(
                        key(*pair, "limit ratio"),
                        "serve req/s / (busy cores / floor CPU s)",
                        ours.result.requests_per_s / limit,
                    )
                    if concurrency == 1:
                        store.add(
                            key(*pair, "floor ratio"),
                            "serve p50 / floor p50",
                            ours.result.percentile_ms(50) / floor_p50,
                        )
        for name, server in servers.items():
            for index, pid in enumerate(server.worker_pids()):
                rss, pss = processes.memory_mib(pid)
                store.add(key(algorithm, "memory", name, f"worker {index}", "rss"), "MiB", rss)
                store.add(key(algorithm, "memory", name, f"worker {index}", "pss"), "MiB", pss)


@dataclass(frozen=True)
class Run:
    """One load run on one server: wrk's figures and the server's CPU over the run."""

    result: loadgen.LoadResult
    cpu_s: float  # the server's whole process tree
    busy_cores: float  # cpu_s per second of the run
    busiest: float | None  # the busiest worker's share of the workers' CPU (2+ workers)


def _measure(server: Server, payload: Payload, concurrency: int, seconds: int, warm_up: int) -> Run:
    """One load run, and the CPU time of the server's processes (master, workers, children)
    over it, read from /proc before and after."""
    tree = [server.process.pid, *descendants(server.process.pid)]
    if warm_up:
        loadgen.warm_up(server.port, payload.body, payload.content_type, concurrency, warm_up)
        _settle(server, payload, tree)
    workers = server.worker_pids()
    before = {pid: processes.cpu_seconds(pid) for pid in tree}
    started = time.perf_counter()
    result = loadgen.run_load(server.port, payload.body, payload.content_type, concurrency, seconds)
    elapsed = time.perf_counter() - started
    used = {pid: processes.cpu_seconds(pid) - b for pid, b in before.items()}
    _settle(server, payload, tree)
    cpu = sum(used.values())
    by_worker = [used[pid] for pid in workers if pid in used]
    workers_cpu = sum(by_worker)
    busiest = max(by_worker) / workers_cpu if len(by_worker) > 1 and workers_cpu > 0 else None
    # wrk's own start and stop lie outside its reported run: the CPU counted over `elapsed`.
    return Run(result, cpu, cpu / elapsed, busiest)


def _settle(server: Server, payload: Payload, tree: list[int]) -> None:
    """Let the server work off the requests wrk left in flight: one more request waits
    behind them (a sync worker takes connections in order), then its processes go idle."""
    loadgen.fetch(server.port, payload.body, payload.content_type)
    processes.wait_idle(tree)


def startup_seconds(
    job_dir: Path, log: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, list[tuple[float, float]]]:
    """From starting `serve` to the first 200 on /ping; each worker's (RSS, PSS) then."""
    port = free_port()
    env = {
        **os.environ,
        **(extra_env or {}),
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


def measure_startup(
    name: str, job_dir: Path, repeats: int, store: Store, env: dict[str, str] | None = None
) -> None:
    """`name`: the algorithm, and for Keras models the runtime ('cnn tensorflow')."""
    with tempfile.TemporaryDirectory(prefix="smvision-bench-") as logs:
        for index in range(repeats):
            seconds, memory = startup_seconds(job_dir, Path(logs) / f"serve-{index}.log", env)
            store.add(key(name, "startup"), "s", seconds)
            for worker, (rss, pss) in enumerate(memory):
                store.add(key(name, "ready memory", f"worker {worker}", "rss"), "MiB", rss)
                store.add(key(name, "ready memory", f"worker {worker}", "pss"), "MiB", pss)
