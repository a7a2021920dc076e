"""The real `serve` as a subprocess on 127.0.0.1, over models trained on the digits.

Every server is started by `python -m smvision.local serve --job-dir JOBDIR --port PORT`
(tests.support.server_process) and spoken to over HTTP with httpx. Predictions are checked
against the same model loaded in this process and against the job's evaluation.json.
Where a test needs a request in flight, a model still loading or a prediction that
outlasts the timeout, it makes that certain by construction: a request held in the middle
of its body (`held_request`), or the svm as `tests.support.gated_algorithm.GatedSVM`, which waits
at a gate the test opens.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import dataclasses
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from smvision.core.machine import available_cores
from smvision.serving.settings import GRACEFUL_SHUTDOWN_S
from tests.support.gated_algorithm import (
    LOAD_GATE,
    PREDICT_GATE,
    SPEC,
    gated_model,
    make_gate,
    release,
    write_plugin_site,
)
from tests.support.photos import encode, grey_photo, photo
from tests.support.server_process import ping, running_server, start_server
from tests.support.serving import (
    ALGORITHMS,
    CLASS_NAMES,
    JobDirs,
    ServerPool,
    assert_predictions_match,
    channel_images,
    content_type_cases,
    digit_png,
    gated_environment,
    invoke,
    job_environment,
    npy,
    offline_file_probabilities,
    offline_model,
    offline_probabilities,
)
from tests.support.stalled_request import StalledRequest

HTTP_TIMEOUT_S = 120.0
HTTP_TIMEOUT = httpx.Timeout(HTTP_TIMEOUT_S)

ROOT = Path(__file__).resolve().parents[2]


def predictions_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    result: list[dict[str, Any]] = response.json()["predictions"]
    return result


def flat_png(width: int, height: int) -> bytes:
    """A large, highly compressible image (a decompression bomb's shape): few bytes, many pixels.

    Real photos of this pixel count are megabytes; the tests that need a small request
    that is slow to decode, or one over the 40-megapixel limit, generate one."""
    ok, encoded = cv2.imencode(".png", np.full((height, width), 200, np.uint8))
    assert ok
    return encoded.tobytes()


# Predictions over HTTP equal offline ones -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_http_predictions_equal_the_offline_evaluation(
    algorithm: str, servers: ServerPool, serving_jobs: JobDirs, client: httpx.Client
) -> None:
    server, job_dir = servers(algorithm), serving_jobs(algorithm)
    ml = job_dir / "opt" / "ml"
    evaluation = json.loads((ml / "output" / "data" / "evaluation.json").read_text())["test"]
    files = [
        (ml / "input" / "data" / "test" / p["source"]).read_bytes()
        for p in evaluation["predictions"]
    ]
    answers = [predictions_of(invoke(client, server, data, "image/png"))[0] for data in files]

    for answer, offline in zip(answers, evaluation["predictions"]):
        assert answer["label"] == offline["predicted"], offline["source"]
        assert abs(answer["probability"] - offline["probability"]) <= 1e-5, offline["source"]
    assert_predictions_match(answers, offline_file_probabilities(job_dir, files), CLASS_NAMES)
    http_accuracy = np.mean(
        [a["label"] == p["label"] for a, p in zip(answers, evaluation["predictions"])]
    )
    assert http_accuracy == pytest.approx(evaluation["accuracy"], abs=1e-9)


# Every content type -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_content_type_predicts_like_the_offline_model(
    algorithm: str, servers: ServerPool, serving_jobs: JobDirs, client: httpx.Client
) -> None:
    server, job_dir = servers(algorithm), serving_jobs(algorithm)
    for name, content_type, body, decoded in content_type_cases(job_dir):
        response = invoke(client, server, body, content_type)
        assert response.status_code == 200, f"{name}: {response.text}"
        expected = offline_probabilities(job_dir, decoded)
        assert_predictions_match(predictions_of(response), expected, CLASS_NAMES)


# Every Accept type, and top_k ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_accept_type_and_top_k(
    algorithm: str, servers: ServerPool, serving_jobs: JobDirs, client: httpx.Client
) -> None:
    server, job_dir = servers(algorithm), serving_jobs(algorithm)
    pngs = [digit_png(job_dir, i) for i in (3, 103, 203)]
    body = json.dumps({"instances": [{"b64": base64.b64encode(p).decode()} for p in pngs]}).encode()
    reference = predictions_of(invoke(client, server, body, "application/json"))
    assert_predictions_match(reference, offline_file_probabilities(job_dir, pngs), CLASS_NAMES)

    for accept in ("application/json", "*/*", "application/*", "text/html;q=0.9, */*;q=0.1"):
        answer = invoke(client, server, body, "application/json", {"Accept": accept})
        assert predictions_of(answer) == reference, accept

    lines = invoke(client, server, body, "application/json", {"Accept": "application/jsonlines"})
    assert lines.status_code == 200 and lines.headers["content-type"] == "application/jsonlines"
    assert lines.text.endswith("\n")
    assert [json.loads(line) for line in lines.text.splitlines()] == reference

    for accept in ("text/csv", "application/xml;q=1, text/csv;q=0.5", "text/*"):
        table = invoke(client, server, body, "application/json", {"Accept": accept})
        assert table.status_code == 200 and table.headers["content-type"] == "text/csv", accept
        rows = list(csv.reader(io.StringIO(table.text)))
        assert [(r[0], float(r[1])) for r in rows] == [
            (p["label"], p["probability"]) for p in reference
        ]

    top = invoke(
        client,
        server,
        body,
        "application/json",
        {"X-Amzn-SageMaker-Custom-Attributes": "trace=abc,top_k=3"},
    )
    for full, limited in zip(reference, predictions_of(top), strict=True):
        ranked = sorted(full["probabilities"].items(), key=lambda item: item[1], reverse=True)
        assert list(limited["probabilities"].items()) == ranked[:3]
        assert next(iter(limited["probabilities"])) == limited["label"] == full["label"]
    many = invoke(
        client, server, body, "application/json", {"X-Amzn-SageMaker-Custom-Attributes": "top_k=50"}
    )
    assert all(len(p["probabilities"]) == 10 for p in predictions_of(many))


# Bad input: its status, a sentence, and the server keeps serving ----------------------------


@dataclass(frozen=True)
class BadRequest:
    status: int
    content_type: str | None
    body: bytes
    words: str  # what the error sentence must contain
    headers: tuple[tuple[str, str], ...] = ()


PAYLOAD_LIMIT = 6 * 1024 * 1024
PNG = "image/png"
NPY = "application/x-npy"
JSON_TYPE = "application/json"


def _real_floats() -> np.ndarray:
    return np.asarray(photo("coffee")[:64, :64], dtype=np.float32) / 255.0


def _with(value: float, at: tuple[int, int, int]) -> np.ndarray:
    array = _real_floats()
    array[at] = value
    return array


def _pickled() -> bytes:
    stream = io.BytesIO()
    np.save(stream, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return stream.getvalue()


def _china_png() -> bytes:
    return encode(photo("china"), ".png")


# Each case is built when its test runs (some bodies are megabytes), once per session.
BAD_REQUESTS: dict[str, Callable[[], BadRequest]] = {
    "empty image": lambda: BadRequest(400, PNG, b"", "empty"),
    "truncated image": lambda: BadRequest(
        400, PNG, _china_png()[: len(_china_png()) // 2], "truncated"
    ),
    "undecodable image": lambda: BadRequest(
        400, "image/jpeg", b"GIF89a? no, plain text", "not a readable image"
    ),
    "over 40 megapixels": lambda: BadRequest(400, PNG, flat_png(7000, 6000), "megapixels"),
    "array of the wrong shape": lambda: BadRequest(
        400, NPY, npy(np.zeros((2, 3, 4, 5, 1), np.uint8)), "shape"
    ),
    "array with 8 channels": lambda: BadRequest(
        400, NPY, npy(np.zeros((4, 4, 8), np.uint8)), "N x H x W x 1"
    ),
    "array of complex dtype": lambda: BadRequest(
        400, NPY, npy(_real_floats().astype(np.complex64)), "dtype"
    ),
    "array of booleans": lambda: BadRequest(400, NPY, npy(_real_floats() > 0.5), "dtype bool"),
    "array with NaN": lambda: BadRequest(400, NPY, npy(_with(np.nan, (3, 3, 0))), "NaN"),
    "array with inf": lambda: BadRequest(400, NPY, npy(_with(np.inf, (5, 5, 1))), "infinite"),
    "float array out of [0, 1]": lambda: BadRequest(400, NPY, npy(_real_floats() * 255), "[0, 1]"),
    "truncated array": lambda: BadRequest(400, NPY, npy(_real_floats())[:-100], "truncated"),
    "pickled objects": lambda: BadRequest(400, NPY, _pickled(), "dtype object"),
    "not an npy file": lambda: BadRequest(400, NPY, _china_png()[:2000], ".npy"),
    "malformed JSON": lambda: BadRequest(400, JSON_TYPE, b'{"instances": [', "not valid JSON"),
    "JSON without instances": lambda: BadRequest(400, JSON_TYPE, b'{"images": []}', '"instances"'),
    "JSON with no instances": lambda: BadRequest(400, JSON_TYPE, b'{"instances": []}', "empty"),
    "bad base64": lambda: BadRequest(400, JSON_TYPE, b'{"instances": [{"b64": "%%%"}]}', "base64"),
    "ragged pixel list": lambda: BadRequest(
        400, JSON_TYPE, b'{"instances": [[[1, 2], [3]]]}', "rectangular"
    ),
    "text pixels": lambda: BadRequest(400, JSON_TYPE, b'{"instances": [[["a", "b"]]]}', "numbers"),
    "number instance": lambda: BadRequest(
        400, JSON_TYPE, b'{"instances": [7]}', "Instance 0 is 7;"
    ),
    "bad second line": lambda: BadRequest(
        400,
        "application/jsonlines",
        (json.dumps([[0, 255], [255, 0]]) + "\n" + '{"b64": 12}\n').encode(),
        "Line 2",
    ),
    "over the payload limit": lambda: BadRequest(
        413, PNG, b"\0" * (PAYLOAD_LIMIT + 1), "SAGEMAKER_MAX_PAYLOAD_IN_MB"
    ),
    "unsupported content type": lambda: BadRequest(415, "text/plain", b"hello", "image/png, "),
    "no content type": lambda: BadRequest(415, None, _china_png(), "missing"),
    "unsupported accept": lambda: BadRequest(
        406, PNG, _china_png(), "text/csv", (("Accept", "application/xml"),)
    ),
    "bad top_k": lambda: BadRequest(
        400,
        PNG,
        _china_png(),
        "top_k",
        (("X-Amzn-SageMaker-Custom-Attributes", "top_k=none"),),
    ),
}


@cache
def bad_request(case: str) -> BadRequest:
    return BAD_REQUESTS[case]()


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bad_input_gets_its_status_and_the_server_keeps_serving(
    algorithm: str, case: str, servers: ServerPool, serving_jobs: JobDirs, client: httpx.Client
) -> None:
    server, job_dir = servers(algorithm), serving_jobs(algorithm)
    bad = bad_request(case)
    workers = server.worker_pids()

    response = invoke(client, server, bad.body, bad.content_type, dict(bad.headers))

    assert response.status_code == bad.status, response.text
    assert response.headers["content-type"] == "application/json"
    assert bad.words in response.json()["error"], response.json()["error"]
    assert server.worker_pids() == workers, "a worker died or was replaced"
    good = invoke(client, server, digit_png(job_dir), "image/png")
    expected = offline_file_probabilities(job_dir, [digit_png(job_dir)])
    assert_predictions_match(predictions_of(good), expected, CLASS_NAMES)


@pytest.mark.slow
def test_routes_methods_and_a_streamed_body_over_the_limit(
    servers: ServerPool, client: httpx.Client
) -> None:
    server = servers("svm")
    streamed = client.post(
        f"{server.url}/invocations",
        headers={"Content-Type": "image/png"},
        content=iter([b"\0" * 1024 * 1024] * 7),
    )
    assert streamed.status_code == 413, streamed.text
    wrong_method = client.get(f"{server.url}/invocations")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert client.post(f"{server.url}/ping").status_code == 405
    unknown = client.get(f"{server.url}/predict")
    assert unknown.status_code == 404 and "/invocations" in unknown.json()["error"]
    assert client.get(f"{server.url}/ping").status_code == 200


# Readiness, limits and shutdown -------------------------------------------------------------


def held_request(url: str, body: bytes) -> StalledRequest:
    """A POST /invocations of a PNG, in flight until its `finish` sends the second half."""
    return StalledRequest(url, "/invocations", body, "image/png", HTTP_TIMEOUT_S)


def wait_until_refused(url: str, timeout: float) -> None:
    """Connect again and again until the server refuses new connections."""
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except ConnectionRefusedError:
            return
        assert time.monotonic() < deadline, f"{url} still took connections after {timeout} s"
        time.sleep(0.01)  # waits on the listening socket closing: nothing signals it


def wait_for_ping(url: str, status: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (answer := ping(url)) != status:
        assert process.poll() is None, f"serve exited with {process.returncode}"
        assert time.monotonic() < deadline, f"/ping said {answer}, never {status}"
        time.sleep(0.01)  # waits on /ping's answer changing: polling is how SageMaker sees it too


@pytest.fixture
def gated_svm(serving_jobs: JobDirs, tmp_path: Path) -> Path:
    """A job directory whose model is the digits svm as tests.support.gated_algorithm.GatedSVM."""
    return gated_model(serving_jobs("svm"), tmp_path / "gated-job")


@pytest.mark.slow
def test_ping_says_503_while_the_model_loads_and_requests_wait_for_it(
    gated_svm: Path, serving_jobs: JobDirs, tmp_path: Path
) -> None:
    site = write_plugin_site(tmp_path / "site", {SPEC.name: "tests.support.gated_algorithm:SPEC"})
    load_gate = make_gate(tmp_path / "load-gate")
    env = gated_environment(gated_svm, site, **{LOAD_GATE: load_gate})
    digit = digit_png(serving_jobs("svm"))
    server = start_server(gated_svm, tmp_path / "serve.log", env=env)
    try:
        wait_for_ping(server.url, 503, server.process, timeout=120)  # loading, held at the gate
        early = held_request(server.url, digit)
        assert ping(server.url) == 503
        release(load_gate)
        server.wait_ready(timeout=120)
        status, _, body = dataclasses.astuple(early.finish())
    finally:
        server.stop()
    assert status == 200, body
    expected = offline_file_probabilities(serving_jobs("svm"), [digit])
    assert_predictions_match(json.loads(body)["predictions"], expected, CLASS_NAMES)


@pytest.mark.slow
def test_sigterm_stops_accepting_and_drains_in_flight_requests(serving_jobs: JobDirs) -> None:
    job_dir = serving_jobs("svm")
    env = {**job_environment(job_dir), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    digits = [digit_png(job_dir, index) for index in (0, 1)]
    with running_server(job_dir, env=env) as server:
        in_flight = [held_request(server.url, digit) for digit in digits]
        server.process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        wait_until_refused(server.url, timeout=GRACEFUL_SHUTDOWN_S)
        answers = [dataclasses.astuple(request.finish()) for request in in_flight]
        returncode = server.process.wait(timeout=30)
        stopped = time.monotonic()
    for (status, headers, body), digit in zip(answers, digits):
        assert status == 200, body
        assert headers["connection"] == "close"
        expected = offline_file_probabilities(job_dir, [digit])
        assert_predictions_match(json.loads(body)["predictions"], expected, CLASS_NAMES)
    assert returncode == 0, server.log_tail()
    assert stopped - terminated < 30


@pytest.mark.slow
def test_a_request_over_the_timeout_gets_504_and_the_server_recovers(
    gated_svm: Path, serving_jobs: JobDirs, tmp_path: Path, client: httpx.Client
) -> None:
    site = write_plugin_site(tmp_path / "site", {SPEC.name: "tests.support.gated_algorithm:SPEC"})
    predict_gate = make_gate(tmp_path / "predict-gate")
    env = {
        **gated_environment(gated_svm, site, **{PREDICT_GATE: predict_gate}),
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "2",
    }
    white = encode(np.full((32, 32), 255, np.uint8), ".png")  # GatedSVM holds it at the gate
    with running_server(gated_svm, env=env) as server:
        response = invoke(client, server, white, "image/png")
        assert response.status_code == 504, response.text
        assert "SAGEMAKER_MODEL_SERVER_TIMEOUT" in response.json()["error"]
        assert client.get(f"{server.url}/ping").status_code == 200
        release(predict_gate)  # the abandoned prediction ends; then requests fit again
        answer = invoke(client, server, digit_png(serving_jobs("svm")), "image/png")
        assert answer.status_code == 200, answer.text


@pytest.mark.slow
def test_execution_parameters_and_limits_follow_the_environment(
    serving_jobs: JobDirs, servers: ServerPool, client: httpx.Client
) -> None:
    for algorithm, workers in (("svm", available_cores()), ("cnn", 1)):
        server = servers(algorithm)
        answer = client.get(f"{server.url}/execution-parameters")
        assert answer.json() == {
            "MaxConcurrentTransforms": workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": 6,
        }
        assert len(server.worker_pids()) == workers

    job_dir = serving_jobs("rf")
    env = {
        **job_environment(job_dir),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
    }
    with running_server(job_dir, env=env) as server:
        answer = client.get(f"{server.url}/execution-parameters")
        assert answer.json() == {
            "MaxConcurrentTransforms": 3,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": 1,
        }
        assert len(server.worker_pids()) == 3
        camera = grey_photo("camera")
        fits = npy(cv2.resize(camera, (1000, 1000)))  # 1,000,128 bytes < 1 MiB
        assert invoke(client, server, fits, "application/x-npy").status_code == 200
        too_big = npy(cv2.resize(camera, (1024, 1025)))
        refused = invoke(client, server, too_big, "application/x-npy")
        assert refused.status_code == 413 and "1 MB" in refused.json()["error"]


def serve_command() -> list[str]:
    return [str(Path(sys.executable).parent / "serve")]


def test_serve_without_a_model_fails_at_once_and_says_why(tmp_path: Path) -> None:
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path / "opt" / "ml"), "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(
        serve_command(), env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    assert "metadata.json is missing" in completed.stdout + completed.stderr


def test_serve_refuses_a_bad_variable(serving_jobs: JobDirs) -> None:
    job_dir = serving_jobs("svm")
    env = {
        **job_environment(job_dir),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "many",
        "PATH": "/usr/bin:/bin",
    }
    completed = subprocess.run(
        serve_command(), env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    assert "SAGEMAKER_MODEL_SERVER_WORKERS has value 'many'" in completed.stdout + completed.stderr


@pytest.mark.slow
def test_a_model_that_cannot_load_stops_the_server_with_its_error(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    source = serving_jobs("svm") / "opt" / "ml" / "model"
    ml = tmp_path / "job" / "opt" / "ml"
    shutil.copytree(source, ml / "model")
    for model_file in ("model.joblib", "model.onnx"):  # serve loads the ONNX train compiled
        (ml / "model" / model_file).write_bytes(b"not a model file")
    server = start_server(
        tmp_path / "job", tmp_path / "serve.log", env={"SAGEMAKER_BASE_DIR": str(ml)}
    )
    try:
        returncode = server.process.wait(timeout=120)
    finally:
        if server.process.poll() is None:
            server.stop()
    assert returncode == 3  # gunicorn halts on a worker that fails to boot
    assert "Could not load the svm model" in server.log(), server.log_tail()
    assert ping(server.url, timeout=1) == 0


# Load ----------------------------------------------------------------------------------------


async def clients_hammer(
    url: str,
    bodies: list[bytes],
    clients: int,
    requests_each: int,
    check: Callable[[int, dict[str, Any]], None],
) -> int:
    """`clients` connections, each sending `requests_each` requests one after another."""

    async def one_client(offset: int) -> int:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            for n in range(requests_each):
                index = (offset * 37 + n) % len(bodies)
                response = await http.post(
                    f"{url}/invocations",
                    content=bodies[index],
                    headers={"Content-Type": "image/png"},
                )
                assert response.status_code == 200, response.text
                check(index, response.json()["predictions"][0])
        return requests_each

    done = await asyncio.gather(*(one_client(c) for c in range(clients)))
    return sum(done)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_eight_clients_times_200_requests_without_an_error(
    algorithm: str, servers: ServerPool, serving_jobs: JobDirs
) -> None:
    server, job_dir = servers(algorithm), serving_jobs(algorithm)
    files = [path.read_bytes() for path in channel_images(job_dir)[::9]]
    expected = offline_file_probabilities(job_dir, files)
    _, class_names = offline_model(job_dir)

    def check(index: int, prediction: dict[str, Any]) -> None:
        best = int(np.argmax(expected[index]))
        assert prediction["label"] == class_names[best]
        assert abs(prediction["probability"] - float(expected[index][best])) <= 1e-5

    pings: list[int] = []
    done = threading.Event()

    def ping_meanwhile() -> None:  # /ping keeps answering while the workers are busy
        with httpx.Client(timeout=HTTP_TIMEOUT) as http:
            while True:
                pings.append(http.get(f"{server.url}/ping").status_code)
                if done.wait(0.25):
                    return

    workers = server.worker_pids()
    pinger = threading.Thread(target=ping_meanwhile)
    pinger.start()
    try:
        answered = asyncio.run(
            clients_hammer(server.url, files, clients=8, requests_each=200, check=check)
        )
    finally:
        done.set()
        pinger.join(timeout=30)
    assert answered == 1600
    assert server.worker_pids() == workers
    assert pings and set(pings) == {200}
