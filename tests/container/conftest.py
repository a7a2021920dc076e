"""Session fixtures for the image tests: the engine, the image (built once) and jobs.

Every test here needs root, podman, runc, debootstrap, docker-compose and the dnsname
CNI plugin. Where one is missing the tests fail and say what to install, unless
SMVISION_SKIP_CONTAINER_TESTS=1 opts out (README Prerequisites, docs/design/image.md); CI never
opts out.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smvision.local.job_dir import lay_out_job
from tests.container.engine import (
    IMAGE,
    LITE_IMAGE,
    OPT_OUT_ENV,
    SDK_NETWORK,
    Engine,
    engine_environment,
    missing_requirements,
    opted_out,
    run_container,
)
from tests.support.training_jobs import JobResult

TRAIN_TIMEOUT_S = 900
# Small settings: the point is the image, not the model.
CONTAINER_HYPERPARAMETERS: dict[str, dict[str, str]] = {
    "svm": {"image_size": "32"},
    "cnn": {"image_size": "16", "epochs": "3", "batch_size": "32"},
}


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if opted_out():
        pytest.skip(f"{OPT_OUT_ENV} is set: the image tests are opted out on this machine.")
    missing = missing_requirements()
    if missing:
        pytest.fail(
            "The image tests need root and podman from Debian; this machine lacks:\n"
            f"{missing}\n(or set {OPT_OUT_ENV}=1 to skip them on a machine that cannot "
            "run containers; CI must not)",
            pytrace=False,
        )
    log_dir = tmp_path_factory.mktemp("engine")
    running = Engine(env=engine_environment(os.environ), log_dir=log_dir)
    network_existed = running.network_exists(SDK_NETWORK)
    try:
        yield running
    finally:
        running.stop_docker_api()
        if not network_existed and running.network_exists(SDK_NETWORK):
            running.podman("network", "rm", "--force", SDK_NETWORK, check=False)


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    build_seconds: float


@pytest.fixture(scope="session")
def image(engine: Engine) -> BuiltImage:
    """The repository's Dockerfile, built once per session (layers cached across sessions)."""
    seconds = engine.build_image(IMAGE)
    print(f"\nImage {IMAGE} built in {seconds:.0f} s (log: {engine.log_dir}/image-build-test.log)")
    return BuiltImage(IMAGE, seconds)


@pytest.fixture(scope="session")
def lite_image(engine: Engine) -> BuiltImage:
    """The serving image without TensorFlow or scikit-learn (RUNTIME=lite), built once."""
    seconds = engine.build_image(LITE_IMAGE, ["RUNTIME=lite"])
    print(f"\nImage {LITE_IMAGE} built in {seconds:.0f} s")
    return BuiltImage(LITE_IMAGE, seconds)


@pytest.fixture(scope="session")
def docker_api(engine: Engine) -> Engine:
    """podman's Docker-compatible service, for the docker CLI, docker-compose and the SDK."""
    engine.start_docker_api()
    return engine


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


@pytest.fixture(scope="session")
def container_jobs(
    engine: Engine, image: BuiltImage, digits: Path, tmp_path_factory: pytest.TempPathFactory
) -> ContainerJobs:
    return ContainerJobs(engine, image.tag, digits, tmp_path_factory.mktemp("container-jobs"))


def image_config(engine: Engine, tag: str) -> dict[str, Any]:
    inspected = json.loads(engine.podman("image", "inspect", tag).stdout)[0]
    return dict(inspected["Config"])


def run_in_image(engine: Engine, tag: str, script: str) -> subprocess.CompletedProcess[str]:
    return run_container(engine, tag, ["bash", "-c", script], [], timeout=300)
