"""The image and what runs in it, for the container tier (tests/container): the built
image, jobs trained in it as SageMaker runs them, and servers started from it. The
fixtures that hand them out are in tests/container/conftest.py; the engine itself is
tests/container/engine.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smvision.local.job_dir import lay_out_job
from tests.container.engine import Engine, run_container
from tests.support.server_process import free_port, ping
from tests.support.training_jobs import JobResult

ROOT = Path(__file__).resolve().parents[2]
TRAIN_TIMEOUT_S = 900
# Small settings: the point is the image, not the model.
CONTAINER_HYPERPARAMETERS: dict[str, dict[str, str]] = {
    "svm": {"image_size": "32"},
    "cnn": {"image_size": "16", "epochs": "3", "batch_size": "32"},
}
READY_TIMEOUT_S = 180  # the serverless limit for start and /ping


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    build_seconds: float


def train_in_container(
    engine: Engine,
    image: str,
    job_dir: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, str],
    command: tuple[str, ...] = ("train",),
) -> tuple[JobResult, float]:
    """`docker run -v JOBDIR/opt/ml:/opt/ml IMAGE train`, the tree laid out by smvision.local."""
    contract = lay_out_job(job_dir, channels, hyperparameters)
    started = time.monotonic()
    completed = run_container(
        engine,
        image,
        command,
        ["--hostname", "algo-1", "--volume", f"{contract.base_dir}:/opt/ml"],
        timeout=TRAIN_TIMEOUT_S,
    )
    seconds = time.monotonic() - started
    return JobResult(
        completed.returncode, completed.stdout + completed.stderr, contract.base_dir
    ), seconds


class ContainerJobs:
    """container_jobs('svm') -> the job trained in the image on the digits (once)."""

    def __init__(self, engine: Engine, image: str, digits: Path, root: Path) -> None:
        self.engine, self.image, self.digits, self.root = engine, image, digits, root
        self.jobs: dict[str, tuple[JobResult, float]] = {}

    def __call__(self, algorithm: str) -> JobResult:
        return self.timed(algorithm)[0]

    def timed(self, algorithm: str) -> tuple[JobResult, float]:
        if algorithm not in self.jobs:
            channels = {split: self.digits / split for split in ("train", "validation", "test")}
            self.jobs[algorithm] = train_in_container(
                self.engine,
                self.image,
                self.root / algorithm,
                channels,
                {"algorithm": algorithm} | CONTAINER_HYPERPARAMETERS[algorithm],
            )
        return self.jobs[algorithm]


def image_config(engine: Engine, tag: str) -> dict[str, Any]:
    inspected = json.loads(engine.podman("image", "inspect", tag).stdout)[0]
    return dict(inspected["Config"])


def run_in_image(engine: Engine, tag: str, script: str) -> subprocess.CompletedProcess[str]:
    return run_container(engine, tag, ["bash", "-c", script], [], timeout=300)


@dataclass(frozen=True)
class ServingContainer:
    name: str
    url: str


def wait_ready(engine: Engine, served: ServingContainer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while ping(served.url) != 200:
        state = engine.podman("inspect", "--format", "{{.State.Status}}", served.name).stdout
        if state.strip() != "running":
            pytest.fail(
                f"serve exited ({state.strip()}) before /ping answered:\n"
                f"{engine.logs(served.name)[-6000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(
                f"/ping did not answer 200 in {READY_TIMEOUT_S} s:\n"
                f"{engine.logs(served.name)[-6000:]}"
            )
        time.sleep(0.5)  # waits on /ping turning 200 in the container


@contextmanager
def served_model(engine: Engine, tag: str, model_dir: Path) -> Iterator[ServingContainer]:
    """`serve` in the image `tag` over `model_dir` (mounted read-only as /opt/ml/model) on a
    free port of 127.0.0.1, ready (/ping said 200); stopped when the block ends."""
    port = free_port()
    options = ["--publish", f"127.0.0.1:{port}:8080", "--volume", f"{model_dir}:/opt/ml/model:ro"]
    with engine.container(tag, ["serve"], options) as name:
        served = ServingContainer(name, f"http://127.0.0.1:{port}")
        wait_ready(engine, served)
        yield served


def launch(*args: str) -> list[str]:
    return [sys.executable, "-m", "launch", *args]
