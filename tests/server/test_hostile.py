"""The real `serve`, tried as a hostile user would (issue 22): variables out of range, bodies
that stop half-way, models whose files are missing, empty, mislabelled or outside the
model root, loads that never end, and many unloads at once.

Each case ends in a 4xx (or, for `serve` itself, exit 2) and one sentence, and the server
goes on serving. "Stalled", "stuck" and "in flight" are certain by construction: a
connection that sends half a body and then nothing (`StalledRequest`), a FIFO in place of a
model file (opening it blocks until a writer comes, and none does), or the svm as
`tests.support.gated_algorithm.GatedSVM`, held at a gate the test opens.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import pytest

from tests.server.test_multi_model import Models
from tests.support.photos import encode, photo
from tests.support.server_process import RunningServer, free_port, running_server
from tests.support.serving_fixtures import JobDirs, job_environment
from tests.support.stalled_request import StalledRequest

SERVE_EXIT_TIMEOUT_S = 120


def serve_command() -> list[str]:
    return [str(Path(sys.executable).parent / "serve")]


@pytest.mark.parametrize(
    "name, value",
    [
        ("SAGEMAKER_BIND_TO_PORT", "70000"),
        ("SAGEMAKER_BIND_TO_PORT", "0"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "inf"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "nan"),
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "inf"),
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "-inf"),
        ("SMVISION_MODELS_MEMORY_MB", "inf"),
    ],
)
def test_a_serving_variable_out_of_range_exits_2_with_one_sentence(
    tmp_path: Path, name: str, value: str
) -> None:
    """A multi-model server needs no model to start, so the variable is all that is wrong."""
    env = {
        "SAGEMAKER_BASE_DIR": str(tmp_path / "opt" / "ml"),
        "SAGEMAKER_MULTI_MODEL": "true",
        "SAGEMAKER_BIND_TO_PORT": str(free_port()),  # should it start after all
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        name: value,
    }
    try:
        completed = subprocess.run(
            serve_command(), env=env, capture_output=True, text=True, timeout=SERVE_EXIT_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"serve with {name}={value} was still running: {expired.output!r}")
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert "Traceback" not in output and "Error:" not in output, output
    (line,) = [line for line in output.splitlines() if " ERROR " in line]
    assert f"Environment variable {name} has value '{value}'; use " in line, output


# Bodies that stop half-way ------------------------------------------------------------------

STALL_TIMEOUT_S = 5  # SAGEMAKER_MODEL_SERVER_TIMEOUT of the servers that meet stalled bodies
# How long a test waits for an answer: a guard against a hang, never reached when it works.
ANSWER_GUARD_S = 120


def png() -> bytes:
    return encode(photo("china"), ".png")


def json_lines(images: int) -> bytes:
    small = cv2.resize(photo("coffee"), (64, 64), interpolation=cv2.INTER_AREA)
    line = json.dumps({"b64": base64.b64encode(encode(small, ".png")).decode()})
    return (line + "\n").encode() * images


@pytest.fixture(scope="module")
def stall_server(serving_jobs: JobDirs) -> Iterator[RunningServer]:
    """The digits svm served with a request timeout of STALL_TIMEOUT_S."""
    job_dir = serving_jobs("svm")
    env = {
        **job_environment(job_dir),
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(STALL_TIMEOUT_S),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }
    with running_server(job_dir, env=env) as server:
        yield server


@pytest.mark.slow
@pytest.mark.parametrize("content_type", ["image/png", "application/jsonlines"])
def test_a_body_that_stops_half_way_gets_408_and_the_server_serves_on(
    stall_server: RunningServer, content_type: str
) -> None:
    body = png() if content_type == "image/png" else json_lines(80)
    stalled = StalledRequest(
        stall_server.url, "/invocations", body, content_type, timeout=ANSWER_GUARD_S
    )
    answer = stalled.answer()
    assert answer.status == 408, answer.body
    assert answer.headers["connection"] == "close"
    message = answer.error()
    assert message.startswith("The request body stopped arriving: "), message
    assert f"of {len(body)} bytes came within {STALL_TIMEOUT_S} s" in message, message
    assert "(SAGEMAKER_MODEL_SERVER_TIMEOUT)" in message, message
    with httpx.Client(base_url=stall_server.url, timeout=ANSWER_GUARD_S) as client:
        assert client.get("/ping").status_code == 200
        served = client.post("/invocations", content=png(), headers={"Content-Type": "image/png"})
        assert served.status_code == 200, served.text


@pytest.fixture(scope="module")
def stall_models(
    serving_jobs: JobDirs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Models]:
    """A multi-model server with a request timeout of STALL_TIMEOUT_S; the digits svm on disk."""
    job_dir = tmp_path_factory.mktemp("stall-models")
    root = job_dir / "opt" / "ml" / "models"
    shutil.copytree(serving_jobs("svm") / "opt" / "ml" / "model", root / "svm" / "model")
    env = {
        **job_environment(job_dir),
        "SAGEMAKER_MULTI_MODEL": "true",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(STALL_TIMEOUT_S),
    }
    with running_server(job_dir, env=env) as server:
        yield Models(server, root)


@pytest.mark.slow
def test_a_stalled_request_holds_its_model_from_delete_no_longer_than_the_timeout(
    stall_models: Models,
) -> None:
    assert stall_models.load("stalled", "svm").status_code == 200
    stalled = StalledRequest(
        stall_models.server.url, "/models/stalled/invoke", png(), "image/png", ANSWER_GUARD_S
    )
    with ThreadPoolExecutor(1) as pool:
        deleted = pool.submit(stall_models.unload, "stalled")
        answer = stalled.answer()
        assert answer.status == 408, answer.body
        assert "(SAGEMAKER_MODEL_SERVER_TIMEOUT)" in answer.error()
        unloaded = deleted.result(timeout=ANSWER_GUARD_S)
    assert unloaded.status_code == 200, unloaded.text
    assert stall_models.client.get("/models/stalled").status_code == 404


@pytest.mark.slow
def test_a_load_request_whose_body_stops_half_way_gets_408(stall_models: Models) -> None:
    body = json.dumps({"model_name": "half", "url": stall_models.url("svm")}).encode()
    stalled = StalledRequest(
        stall_models.server.url, "/models", body, "application/json", ANSWER_GUARD_S
    )
    answer = stalled.answer()
    assert answer.status == 408, answer.body
    assert answer.error().startswith("The request body stopped arriving: "), answer.body
    assert stall_models.client.get("/ping").status_code == 200
