"""The real `serve` as a subprocess on 127.0.0.1, over models trained on the digits.

Every server is started by `python -m smvision.local serve --job-dir JOBDIR --port PORT`
(tests.server_process) and spoken to over HTTP with httpx. Predictions are checked
against the same model loaded in this process and against the job's evaluation.json.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from smvision import images
from tests.photos import encode, grey_photo, photo
from tests.server_process import ping, running_server, start_server
from tests.serving_fixtures import (
    ALGORITHMS,
    JobDirs,
    ServerPool,
    assert_predictions_match,
    cpu_count,
    invoke,
    job_environment,
    model_input,
    offline_file_probabilities,
    offline_model,
    offline_probabilities,
    servers,
    serving_jobs,
)

__all__ = ["servers", "serving_jobs"]  # session fixtures used below

HTTP_TIMEOUT = httpx.Timeout(120.0)
CLASS_NAMES = [str(d) for d in range(10)]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=HTTP_TIMEOUT) as http:
        yield http


def channel_images(job_dir: Path) -> list[Path]:
    """The job's test channel: digit PNGs the model never trained on."""
    return sorted((job_dir / "opt" / "ml" / "input" / "data" / "test").rglob("*.png"))


def digit_png(job_dir: Path, index: int = 0) -> bytes:
    return channel_images(job_dir)[index].read_bytes()


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


def npy(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


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


def content_type_cases(job_dir: Path) -> list[tuple[str, str, bytes, list[np.ndarray]]]:
    """(name, Content-Type, body, the images the body holds) for every supported type."""
    png = digit_png(job_dir, 0)
    digits = [images.decode_image(digit_png(job_dir, i)) for i in (0, 40, 80, 120, 160)]
    china, coffee, camera, astronaut = (
        photo("china"),
        photo("coffee"),
        grey_photo("camera"),
        photo("astronaut"),
    )
    thumbnail = cv2.resize(china, (48, 32), interpolation=cv2.INTER_AREA)
    files = {
        ".jpg": encode(china, ".jpg"),
        ".bmp": encode(coffee, ".bmp"),
        ".tiff": encode(camera, ".tiff"),
        ".webp": encode(astronaut, ".webp"),
    }
    # Files decode straight to the model's input, as training decoded them.
    decoded = {suffix: model_input(job_dir).from_file(data) for suffix, data in files.items()}
    grey16 = (camera.astype(np.uint16) * 257)[:200, :300]
    instances: list[Any] = [
        {"b64": base64.b64encode(png).decode()},
        {"b64": base64.b64encode(files[".jpg"]).decode()},
        digits[1][:, :, 0].tolist(),
        (thumbnail / 255.0).tolist(),
    ]
    instance_images = [
        images.decode_image(png),
        decoded[".jpg"],
        digits[1],
        images.from_array(thumbnail / 255.0),
    ]
    return [
        ("png", "image/png", png, [images.decode_image(png)]),
        ("jpeg", "image/jpeg", files[".jpg"], [decoded[".jpg"]]),
        ("x-image", "application/x-image", png, [images.decode_image(png)]),
        ("bmp", "image/bmp", files[".bmp"], [decoded[".bmp"]]),
        ("tiff", "image/tiff", files[".tiff"], [decoded[".tiff"]]),
        ("webp", "image/webp", files[".webp"], [decoded[".webp"]]),
        ("npy HxW uint8", "application/x-npy", npy(digits[2][:, :, 0]), [digits[2]]),
        ("npy HxWxC uint8", "application/x-npy", npy(china), [china]),
        (
            "npy HxWxC float",
            "application/x-npy",
            npy((coffee / 255.0).astype(np.float32)),
            [images.from_array((coffee / 255.0).astype(np.float32))],
        ),
        ("npy HxW uint16", "application/x-npy", npy(grey16), [images.from_array(grey16)]),
        ("npy NxHxWxC", "application/x-npy", npy(np.stack(digits)), digits),
        ("npy Fortran order", "application/x-npy", npy(np.asfortranarray(thumbnail)), [thumbnail]),
        (
            "json",
            "application/json; charset=utf-8",
            json.dumps({"instances": instances}).encode(),
            instance_images,
        ),
        (
            "jsonlines",
            "application/jsonlines",
            ("\n".join(json.dumps(i) for i in instances) + "\n\n").encode(),
            instance_images,
        ),
    ]


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
    for full, limited in zip(reference, predictions_of(top)):
        ranked = sorted(full["probabilities"].items(), key=lambda item: item[1], reverse=True)
        assert list(limited["probabilities"].items()) == ranked[:3]
        assert next(iter(limited["probabilities"])) == limited["label"] == full["label"]
    many = invoke(
        client, server, body, "application/json", {"X-Amzn-SageMaker-Custom-Attributes": "top_k=50"}
    )
    assert all(len(p["probabilities"]) == 10 for p in predictions_of(many))


# Bad input: its status, a sentence, and the server keeps serving ----------------------------


def bad_requests() -> list[tuple[str, int, str, dict[str, str], bytes, str]]:
    """(case, status, Content-Type, other headers, body, words the error must contain)."""
    china_png = encode(photo("china"), ".png")
    real = np.asarray(photo("coffee")[:64, :64], dtype=np.float32) / 255.0
    with_nan, with_inf = real.copy(), real.copy()
    with_nan[3, 3, 0], with_inf[5, 5, 1] = np.nan, np.inf
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    lines = json.dumps([[0, 255], [255, 0]]) + "\n" + '{"b64": 12}\n'
    payload_limit = 6 * 1024 * 1024
    png = "image/png"
    return [
        ("empty image", 400, png, {}, b"", "empty"),
        ("truncated image", 400, png, {}, china_png[: len(china_png) // 2], "truncated"),
        (
            "undecodable image",
            400,
            "image/jpeg",
            {},
            b"GIF89a? no, plain text",
            "not a readable image",
        ),
        ("over 40 megapixels", 400, png, {}, flat_png(7000, 6000), "megapixels"),
        (
            "array of the wrong shape",
            400,
            "application/x-npy",
            {},
            npy(np.zeros((2, 3, 4, 5, 1), np.uint8)),
            "shape",
        ),
        (
            "array with 8 channels",
            400,
            "application/x-npy",
            {},
            npy(np.zeros((4, 4, 8), np.uint8)),
            "N x H x W x 1",
        ),
        (
            "array of complex dtype",
            400,
            "application/x-npy",
            {},
            npy(real.astype(np.complex64)),
            "dtype",
        ),
        ("array of booleans", 400, "application/x-npy", {}, npy(real > 0.5), "dtype bool"),
        ("array with NaN", 400, "application/x-npy", {}, npy(with_nan), "NaN"),
        ("array with inf", 400, "application/x-npy", {}, npy(with_inf), "infinite"),
        ("float array out of [0, 1]", 400, "application/x-npy", {}, npy(real * 255), "[0, 1]"),
        ("truncated array", 400, "application/x-npy", {}, npy(real)[:-100], "truncated"),
        ("pickled objects", 400, "application/x-npy", {}, pickled.getvalue(), "dtype object"),
        ("not an npy file", 400, "application/x-npy", {}, china_png[:2000], ".npy"),
        ("malformed JSON", 400, "application/json", {}, b'{"instances": [', "not valid JSON"),
        ("JSON without instances", 400, "application/json", {}, b'{"images": []}', '"instances"'),
        ("JSON with no instances", 400, "application/json", {}, b'{"instances": []}', "empty"),
        ("bad base64", 400, "application/json", {}, b'{"instances": [{"b64": "%%%"}]}', "base64"),
        (
            "ragged pixel list",
            400,
            "application/json",
            {},
            b'{"instances": [[[1, 2], [3]]]}',
            "rectangular",
        ),
        ("text pixels", 400, "application/json", {}, b'{"instances": [[["a", "b"]]]}', "numbers"),
        ("number instance", 400, "application/json", {}, b'{"instances": [7]}', "Instance 0 is 7;"),
        ("bad second line", 400, "application/jsonlines", {}, lines.encode(), "Line 2"),
        (
            "over the payload limit",
            413,
            png,
            {},
            b"\0" * (payload_limit + 1),
            "SAGEMAKER_MAX_PAYLOAD_IN_MB",
        ),
        ("unsupported content type", 415, "text/plain", {}, b"hello", "image/png, "),
        ("no content type", 415, "", {}, china_png, "missing"),
        ("unsupported accept", 406, png, {"Accept": "application/xml"}, china_png, "text/csv"),
        (
            "bad top_k",
            400,
            png,
            {"X-Amzn-SageMaker-Custom-Attributes": "top_k=none"},
            china_png,
            "top_k",
        ),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bad_input_gets_its_status_and_the_server_keeps_serving(
    algorithm: str, servers: ServerPool, serving_jobs: JobDirs, client: httpx.Client
) -> None:
    server, job_dir = servers(algorithm), serving_jobs(algorithm)
    workers = server.worker_pids()
    for case, status, content_type, headers, body, words in bad_requests():
        response = invoke(client, server, body, content_type or None, headers)
        assert response.status_code == status, f"{case}: {response.status_code} {response.text}"
        assert response.headers["content-type"] == "application/json", case
        assert words in response.json()["error"], f"{case}: {response.json()['error']}"

    streamed = client.post(
        f"{server.url}/invocations",
        headers={"Content-Type": "image/png"},
        content=iter([b"\0" * 1024 * 1024] * 7),
    )
    assert streamed.status_code == 413, streamed.text
    assert client.get(f"{server.url}/invocations").status_code == 405
    assert client.post(f"{server.url}/ping").status_code == 405
    unknown = client.get(f"{server.url}/predict")
    assert unknown.status_code == 404 and "/invocations" in unknown.json()["error"]

    assert client.get(f"{server.url}/ping").status_code == 200
    assert server.worker_pids() == workers, "a worker died or was replaced"
    good = invoke(client, server, digit_png(job_dir), "image/png")
    expected = offline_file_probabilities(job_dir, [digit_png(job_dir)])
    assert_predictions_match(predictions_of(good), expected, CLASS_NAMES)


# Readiness, limits and shutdown -------------------------------------------------------------


@pytest.mark.slow
def test_ping_answers_503_within_2_s_while_a_slow_model_loads(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    job_dir = serving_jobs("resnet50")  # TensorFlow's import and the model load take seconds
    server = start_server(job_dir, tmp_path / "serve.log", env=job_environment(job_dir))
    answers: list[tuple[int, float]] = []
    early: list[httpx.Response] = []

    def invoke_while_loading() -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT) as http:
            early.append(invoke(http, server, digit_png(job_dir), "image/png"))

    during_load = threading.Thread(target=invoke_while_loading)
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT) as http:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and server.process.poll() is None:
                started = time.monotonic()
                try:
                    status = http.get(f"{server.url}/ping").status_code
                except httpx.TransportError:
                    status = 0  # not listening yet
                answers.append((status, time.monotonic() - started))
                if status == 503 and during_load.ident is None:
                    during_load.start()
                if status == 200:
                    break
                time.sleep(0.05)
        if during_load.ident is not None:
            during_load.join(timeout=120)
    finally:
        server.stop()
    statuses = [status for status, _ in answers]
    assert statuses[-1] == 200, server.log_tail()
    assert statuses.count(503) >= 3, statuses
    first_503 = statuses.index(503)
    assert set(statuses[first_503:]) == {503, 200}, statuses
    slowest = max(seconds for _, seconds in answers)
    assert slowest < 2.0, f"/ping took {slowest:.2f} s"
    # A request sent while the model was loading waited for it and was answered.
    expected = offline_file_probabilities(job_dir, [digit_png(job_dir)])
    assert_predictions_match(predictions_of(early[0]), expected, CLASS_NAMES)


@pytest.mark.slow
def test_sigterm_stops_accepting_and_drains_in_flight_requests(serving_jobs: JobDirs) -> None:
    job_dir = serving_jobs("svm")
    slow_body = json.dumps(
        {"instances": [{"b64": base64.b64encode(flat_png(6000, 6000)).decode()}] * 2}
    ).encode()
    results: list[tuple[int, int, float]] = []
    connected = threading.Barrier(4)

    def send() -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT) as http:
            assert http.get(f"{server.url}/ping").status_code == 200  # the connection is open
            connected.wait(timeout=60)
            response = invoke(http, server, slow_body, "application/json")
            count = len(response.json()["predictions"]) if response.status_code == 200 else 0
            results.append((response.status_code, count, time.monotonic()))

    env = {**job_environment(job_dir), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with running_server(job_dir, env=env) as server:
        senders = [threading.Thread(target=send) for _ in range(3)]
        for sender in senders:
            sender.start()
        connected.wait(timeout=60)
        time.sleep(0.5)  # the bodies are 100 kB each: received; decoding them takes seconds
        terminated = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/ping", timeout=5)
        for sender in senders:
            sender.join(timeout=60)
        returncode = server.process.wait(timeout=30)
        stopped = time.monotonic()
    assert [(status, count) for status, count, _ in results] == [(200, 2)] * 3, server.log_tail()
    assert max(finished for _, _, finished in results) > terminated + 0.5, "nothing was in flight"
    assert returncode == 0, server.log_tail()
    assert stopped - terminated < 30


@pytest.mark.slow
def test_a_request_over_the_timeout_gets_504_and_the_server_recovers(serving_jobs: JobDirs) -> None:
    job_dir = serving_jobs("svm")
    env = {
        **job_environment(job_dir),
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "0.5",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }
    slow_body = json.dumps(
        {"instances": [{"b64": base64.b64encode(flat_png(6000, 6000)).decode()}] * 4}
    ).encode()
    with running_server(job_dir, env=env) as server, httpx.Client(timeout=HTTP_TIMEOUT) as http:
        started = time.monotonic()
        response = invoke(http, server, slow_body, "application/json")
        assert response.status_code == 504, response.text
        assert time.monotonic() - started < 5
        assert "SAGEMAKER_MODEL_SERVER_TIMEOUT" in response.json()["error"]
        assert http.get(f"{server.url}/ping").status_code == 200
        deadline = time.monotonic() + 60
        while True:  # the abandoned work finishes in the background; then requests fit again
            answer = invoke(http, server, digit_png(job_dir), "image/png")
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert answer.status_code == 200, answer.text


@pytest.mark.slow
def test_execution_parameters_and_limits_follow_the_environment(
    serving_jobs: JobDirs, servers: ServerPool, client: httpx.Client
) -> None:
    for algorithm, workers in (("svm", cpu_count()), ("cnn", 1)):
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
    (ml / "model" / "model.joblib").write_bytes(b"not a joblib file")
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

    pings: list[tuple[int, float]] = []
    hammering = threading.Event()

    def ping_meanwhile() -> None:  # /ping must stay quick while the workers are busy
        with httpx.Client(timeout=HTTP_TIMEOUT) as http:
            while hammering.is_set():
                started = time.monotonic()
                status = http.get(f"{server.url}/ping").status_code
                pings.append((status, time.monotonic() - started))
                time.sleep(0.25)

    workers = server.worker_pids()
    hammering.set()
    pinger = threading.Thread(target=ping_meanwhile)
    pinger.start()
    try:
        answered = asyncio.run(
            clients_hammer(server.url, files, clients=8, requests_each=200, check=check)
        )
    finally:
        hammering.clear()
        pinger.join(timeout=30)
    assert answered == 1600
    assert server.worker_pids() == workers
    assert pings and {status for status, _ in pings} == {200}
    assert max(seconds for _, seconds in pings) < 2.0, pings
