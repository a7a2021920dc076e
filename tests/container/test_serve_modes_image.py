"""The image in the conditions of a serverless endpoint and of a multi-model endpoint.

Serverless: SageMaker may run the container as a user other than root on a read-only
root file system, with /tmp writable; `deploy --serverless` sets a 4 MB payload limit and
one worker. Multi-model: SAGEMAKER_MULTI_MODEL=true, models under /opt/ml/models loaded
through /models; `podman diff` then shows that serving wrote nothing outside /tmp.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.container.engine import Engine
from tests.support.image_jobs import BuiltImage, ContainerJobs, ServingContainer, wait_ready
from tests.support.server_process import free_port

pytestmark = pytest.mark.slow

PROBABILITY_TOLERANCE = 1e-5
SERVERLESS_ENVIRONMENT = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "4", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
CHECKED_IMAGES = 12


def test_serve_runs_as_a_user_on_a_read_only_root_with_the_serverless_limits(
    engine: Engine, image: BuiltImage, container_jobs: ContainerJobs
) -> None:
    """cnn, the model that compiles itself at start (in a child process, to /tmp)."""
    job = container_jobs("cnn")
    assert job.returncode == 0, job.output[-3000:]
    port = free_port()
    options = [
        "--user",
        "1000:1000",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,mode=1777",
        "--publish",
        f"127.0.0.1:{port}:8080",
        "--volume",
        f"{job.ml / 'model'}:/opt/ml/model:ro",
    ]
    for name, value in SERVERLESS_ENVIRONMENT.items():
        options += ["--env", f"{name}={value}"]
    started = time.monotonic()
    with engine.container(image.tag, ["serve"], options) as name:
        served = ServingContainer(name, f"http://127.0.0.1:{port}")
        wait_ready(engine, served)  # within 180 s: the serverless limit for start and /ping
        print(
            f"\nServerless conditions: the cnn container answered /ping 200 "
            f"{time.monotonic() - started:.0f} s after `podman run`"
        )
        test_dir = job.ml / "input" / "data" / "test"
        expected = job.evaluation["test"]["predictions"][:CHECKED_IMAGES]
        with httpx.Client(base_url=served.url, timeout=60) as client:
            for entry in expected:
                response = client.post(
                    "/invocations",
                    content=(test_dir / entry["source"]).read_bytes(),
                    headers={"Content-Type": "image/png"},
                )
                assert response.status_code == 200, response.text
                (prediction,) = response.json()["predictions"]
                assert prediction["label"] == entry["predicted"], entry["source"]
                assert prediction["probability"] == pytest.approx(
                    entry["probability"], abs=PROBABILITY_TOLERANCE
                )
            too_large = client.post(
                "/invocations",
                content=b"\0" * (4 * 1024 * 1024 + 1),
                headers={"Content-Type": "application/x-npy"},
            )
            assert too_large.status_code == 413, too_large.text
            assert "4 MB" in too_large.json()["error"]
        user = engine.podman("exec", name, "id", "-u").stdout.strip()
        log = engine.logs(name)
    assert user == "1000"
    assert "1 worker(s)" in log, log[-3000:]
    for complaint in ("Read-only file system", "Permission denied", "not a writable directory"):
        assert complaint not in log, log[-3000:]


# What podman itself writes in every container (the container's identity and name service),
# besides the folders it makes for the volumes.
ENGINE_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run/.containerenv")


def test_a_multi_model_container_serves_svm_and_cnn_and_writes_nothing_outside_tmp(
    engine: Engine, image: BuiltImage, container_jobs: ContainerJobs
) -> None:
    """As SageMaker runs a multi-model endpoint: the models unpacked under /opt/ml/models,
    loaded through /models; the container's root file system is writable (as root), and
    `podman diff` shows what serving wrote to it."""
    jobs = {algorithm: container_jobs(algorithm) for algorithm in ("svm", "cnn")}
    port = free_port()
    options = ["--env", "SAGEMAKER_MULTI_MODEL=true", "--publish", f"127.0.0.1:{port}:8080"]
    for algorithm, job in jobs.items():
        assert job.returncode == 0, job.output[-3000:]
        options += ["--volume", f"{job.ml / 'model'}:/opt/ml/models/{algorithm}/model:ro"]
    with engine.container(image.tag, ["serve"], options) as name:
        served = ServingContainer(name, f"http://127.0.0.1:{port}")
        wait_ready(engine, served)
        with httpx.Client(base_url=served.url, timeout=300) as client:
            for algorithm in jobs:
                loaded = client.post(
                    "/models",
                    json={"model_name": algorithm, "url": f"/opt/ml/models/{algorithm}/model"},
                )
                assert loaded.status_code == 200, loaded.text
            listed = client.get("/models").json()["models"]
            assert [m["modelName"] for m in listed] == ["cnn", "svm"]
            for algorithm, job in jobs.items():
                entry = job.evaluation["test"]["predictions"][0]
                body = (job.ml / "input" / "data" / "test" / entry["source"]).read_bytes()
                answer = client.post(
                    f"/models/{algorithm}/invoke",
                    content=body,
                    headers={"Content-Type": "image/png"},
                )
                assert answer.status_code == 200, answer.text
                (prediction,) = answer.json()["predictions"]
                assert prediction["label"] == entry["predicted"], algorithm
                assert client.delete(f"/models/{algorithm}").status_code == 200
        changed = engine.podman("diff", "--format", "json", name).stdout
    made_by_podman = [*ENGINE_FILES, *(f"/opt/ml/models/{a}/model" for a in jobs)]
    written = sorted(
        path
        for kind in json.loads(changed or "{}").values()
        for path in kind
        if path != "/tmp"
        and not path.startswith("/tmp/")
        and not any(made == path or made.startswith(path + "/") for made in made_by_podman)
    )
    assert written == [], written
