"""The container tier: the image built with podman and run as SageMaker runs it. Every
test here is marked `container` (`-m "not container"` leaves the image out).

The fixtures: the engine, the image (built once per session), podman's Docker API, the
jobs trained in the image, and a user's laptop environment. Every test here needs root,
podman, runc, debootstrap, docker-compose and the dnsname CNI plugin. Where one is
missing the tests fail and say what to install, unless SMVISION_SKIP_CONTAINER_TESTS=1
opts out (README Prerequisites, docs/design/image.md); CI never opts out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.engine import (
    IMAGE,
    LITE_IMAGE,
    OPT_OUT_ENV,
    SDK_NETWORK,
    Engine,
    engine_environment,
    missing_requirements,
    opted_out,
)
from tests.support.image_jobs import BuiltImage, ContainerJobs
from tests.support.moto_server import SDK_CONFIG
from tests.support.tiers import mark_tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "container")


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


@pytest.fixture(scope="session")
def container_jobs(
    engine: Engine, image: BuiltImage, digits: Path, tmp_path_factory: pytest.TempPathFactory
) -> ContainerJobs:
    return ContainerJobs(engine, image.tag, digits, tmp_path_factory.mktemp("container-jobs"))


@pytest.fixture
def laptop(docker_api: Engine, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a user with Docker: docker and compose reach podman; SDK
    telemetry off; temporary files under tmp_path; the test's containers removed after."""
    sdk_config = tmp_path / "sagemaker-config.yaml"
    sdk_config.write_text(SDK_CONFIG)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        **os.environ,
        "DOCKER_HOST": docker_api.env["DOCKER_HOST"],
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(sdk_config),
        "TMPDIR": str(scratch),
    }
    try:
        yield env
    finally:
        docker_api.remove_containers(docker_api.containers_under(tmp_path))
