"""`docker run -p PORT:8080 -v MODEL:/opt/ml/model IMAGE serve`: real images over HTTP
give the predictions the training job wrote in output/data/evaluation.json."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.container.engine import Engine
from tests.support.image_jobs import BuiltImage, ContainerJobs, ServingContainer, served_model
from tests.support.photos import encode, photo
from tests.support.server_process import ping

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 180
PROBABILITY_TOLERANCE = 1e-5


@pytest.fixture(params=["svm", "cnn"])
def serving(
    request: pytest.FixtureRequest, engine: Engine, image: BuiltImage, container_jobs: ContainerJobs
) -> Iterator[tuple[ServingContainer, str]]:
    algorithm = str(request.param)
    job = container_jobs(algorithm)
    assert job.returncode == 0, job.output[-3000:]
    with served_model(engine, image.tag, job.ml / "model") as served:
        yield served, algorithm


def test_served_predictions_equal_the_job_s_evaluation(
    serving: tuple[ServingContainer, str], container_jobs: ContainerJobs
) -> None:
    served, algorithm = serving
    job = container_jobs(algorithm)
    expected = job.evaluation["test"]["predictions"]
    test_dir = job.ml / "input" / "data" / "test"
    with httpx.Client(base_url=served.url, timeout=60) as client:
        for entry in expected:
            body = (test_dir / entry["source"]).read_bytes()
            response = client.post(
                "/invocations", content=body, headers={"Content-Type": "image/png"}
            )
            assert response.status_code == 200, response.text
            (prediction,) = response.json()["predictions"]
            assert prediction["label"] == entry["predicted"], entry["source"]
            assert prediction["probability"] == pytest.approx(
                entry["probability"], abs=PROBABILITY_TOLERANCE
            ), entry["source"]


def test_bad_input_gets_4xx_and_the_server_keeps_serving(
    serving: tuple[ServingContainer, str],
    engine: Engine,
) -> None:
    served, _ = serving
    with httpx.Client(base_url=served.url, timeout=60) as client:
        broken = client.post(
            "/invocations",
            content=b"these bytes are not a PNG",
            headers={"Content-Type": "image/png"},
        )
        assert 400 <= broken.status_code < 500, broken.text
        assert "is not a readable image" in broken.text, broken.text
        photograph = client.post(
            "/invocations",
            content=encode(photo("china"), ".jpg"),
            headers={"Content-Type": "image/jpeg", "Accept": "application/json"},
        )
        assert photograph.status_code == 200, photograph.text
        (prediction,) = photograph.json()["predictions"]
        assert prediction["label"] in [str(d) for d in range(10)]
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert ping(served.url) == 200
    # podman kills what has not stopped 30 s after SIGTERM: exit 0 means it stopped itself.
    engine.podman("stop", "--time", "30", served.name, timeout=60)
    state = json.loads(engine.podman("inspect", served.name).stdout)[0]["State"]
    assert state["ExitCode"] == 0, engine.logs(served.name)[-3000:]
