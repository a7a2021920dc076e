"""The image in the conditions of a serverless endpoint and of a multi-model endpoint.

Serverless: SageMaker may run the container as a user other than root on a read-only
root file system, with /tmp writable; `deploy --serverless` sets a 4 MB payload limit and
one worker. Multi-model: SAGEMAKER_MULTI_MODEL=true, models under /opt/ml/models loaded
through /models; `podman diff` then shows that serving wrote nothing outside /tmp.
"""

from __future__ import annotations

import httpx
import pytest

from tests.container.conftest import BuiltImage, ContainerJobs
from tests.container.engine import Engine
from tests.container.test_serve_image import ServingContainer, wait_ready
from tests.server_process import free_port

pytestmark = [pytest.mark.container, pytest.mark.slow]

PROBABILITY_TOLERANCE = 1e-5
SERVERLESS_ENVIRONMENT = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "4",
                          "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
CHECKED_IMAGES = 12


def test_serve_runs_as_a_user_on_a_read_only_root_with_the_serverless_limits(
    engine: Engine, image: BuiltImage, container_jobs: ContainerJobs
) -> None:
    """cnn, the model that compiles itself at start (in a child process, to /tmp)."""
    job = container_jobs("cnn")
    assert job.returncode == 0, job.output[-3000:]
    port = free_port()
    options = ["--user", "1000:1000", "--read-only", "--tmpfs", "/tmp:rw,mode=1777",
               "--publish", f"127.0.0.1:{port}:8080",
               "--volume", f"{job.ml / 'model'}:/opt/ml/model:ro"]
    for name, value in SERVERLESS_ENVIRONMENT.items():
        options += ["--env", f"{name}={value}"]
    with engine.container(image.tag, ["serve"], options) as name:
        served = ServingContainer(name, f"http://127.0.0.1:{port}")
        wait_ready(engine, served)  # within 180 s: the serverless limit for start and /ping
        test_dir = job.ml / "input" / "data" / "test"
        expected = job.evaluation["test"]["predictions"][:CHECKED_IMAGES]
        with httpx.Client(base_url=served.url, timeout=60) as client:
            for entry in expected:
                response = client.post("/invocations", content=(test_dir / entry["source"])
                                       .read_bytes(), headers={"Content-Type": "image/png"})
                assert response.status_code == 200, response.text
                (prediction,) = response.json()["predictions"]
                assert prediction["label"] == entry["predicted"], entry["source"]
                assert prediction["probability"] == pytest.approx(
                    entry["probability"], abs=PROBABILITY_TOLERANCE)
            too_large = client.post("/invocations", content=b"\0" * (4 * 1024 * 1024 + 1),
                                    headers={"Content-Type": "application/x-npy"})
            assert too_large.status_code == 413, too_large.text
            assert "4 MB" in too_large.json()["error"]
        user = engine.podman("exec", name, "id", "-u").stdout.strip()
        log = engine.logs(name)
    assert user == "1000"
    assert "1 worker(s)" in log, log[-3000:]
    for complaint in ("Read-only file system", "Permission denied", "not a writable directory"):
        assert complaint not in log, log[-3000:]
