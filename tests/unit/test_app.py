"""The ASGI app in this process: `ServingApp` driven through scope, receive and send.

No subprocess and no socket: each test runs the app's lifespan and requests on its own
event loop, over the digits svm that the `serving_jobs` fixture (tests/conftest.py) trains
once per session, or over `tests.support.gated_algorithm.GatedSVM` (the same model) where
a test needs the model to be loading, busy or failing for certain.
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from smvision.core import contract
from smvision.data import images
from smvision.schema import specs
from smvision.serving.app import ServingApp
from smvision.serving.http import HTTPError, read_body
from smvision.serving.inference import MAX_BATCH_IMAGES
from smvision.serving.settings import settings_from
from tests.support.gated_algorithm import (
    BATCH_LOG,
    LOAD_GATE,
    PREDICT_GATE,
    SPEC,
    batch_sizes,
    gated_model,
    make_gate,
    release,
    write_plugin_site,
)
from tests.support.photos import encode
from tests.support.serving import JobDirs, assert_predictions_match, npy, offline_probabilities

READY_TIMEOUT_S = 120.0
WHITE = encode(np.full((32, 32), 255, np.uint8), ".png")  # GatedSVM waits at its gate
BLACK = encode(np.zeros((32, 32), np.uint8), ".png")  # GatedSVM raises
PNG = {"content-type": "image/png"}


# Driving the app ------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    parts_read: int  # how many parts of the request body the app asked for

    def json(self) -> Any:
        assert self.headers["content-type"] == "application/json"
        return json.loads(self.body)

    def error(self) -> str:
        message: str = self.json()["error"]
        return message


@dataclass
class InProcess:
    """One ServingApp, started through its lifespan on the running event loop."""

    app: ServingApp
    stopped: bool = False
    to_app: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    from_app: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def lifespan(self, event: str) -> None:
        await self.to_app.put({"type": f"lifespan.{event}"})
        answer = await asyncio.wait_for(self.from_app.get(), READY_TIMEOUT_S)
        assert answer == {"type": f"lifespan.{event}.complete"}
        self.stopped = event == "shutdown"

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | Sequence[bytes] = b"",
        headers: dict[str, str] | None = None,
        disconnect_after_body: bool = False,
    ) -> Response:
        """The app's answer; a list of bytes for `body` arrives as that many parts."""
        parts = [body] if isinstance(body, bytes) else list(body)
        read = 0

        async def receive() -> dict[str, Any]:
            nonlocal read
            if read == len(parts):
                if disconnect_after_body:
                    return {"type": "http.disconnect"}
                await asyncio.Event().wait()  # the client sends nothing more
            read += 1
            more = read < len(parts) or disconnect_after_body
            return {"type": "http.request", "body": parts[read - 1], "more_body": more}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "path": path,
            "headers": [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
            ],
        }
        await self.app(scope, receive, send)
        start, *bodies = sent
        assert start["type"] == "http.response.start" and bodies[-1].get("more_body") is not True
        response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
        payload = b"".join(message["body"] for message in bodies)
        assert int(response_headers["content-length"]) == len(payload)
        return Response(start["status"], response_headers, payload, read)

    async def ping(self) -> int:
        return (await self.request("GET", "/ping")).status

    async def until_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while await self.ping() != 200:
            assert asyncio.get_running_loop().time() < deadline, "/ping never said 200"
            await asyncio.sleep(0.01)

    async def invoke(self, body: bytes | Sequence[bytes], **headers: str) -> Response:
        return await self.request("POST", "/invocations", body, {**PNG, **headers})


@asynccontextmanager
async def started(
    job_dir: Path, ready: bool = True, env: Mapping[str, str] | None = None
) -> AsyncIterator[InProcess]:
    """The app over job_dir's model, its lifespan started (and /ping 200 when `ready`)."""
    ml = job_dir / "opt" / "ml"
    settings = settings_from(contract.load({"SAGEMAKER_BASE_DIR": str(ml), **(env or {})}))
    server = InProcess(ServingApp(settings))
    lifespan = asyncio.create_task(
        server.app({"type": "lifespan"}, server.to_app.get, server.from_app.put)
    )
    await server.lifespan("startup")
    try:
        if ready:
            await server.until_ready()
        yield server
    finally:
        if not server.stopped:
            await server.lifespan("shutdown")
        await lifespan


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 300))


# Fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def opencv_threads() -> Iterator[None]:
    """The app sets OpenCV's threads for its process; give this one its own back."""
    threads = cv2.getNumThreads()
    yield
    cv2.setNumThreads(threads)


@pytest.fixture
def svm_job(serving_jobs: JobDirs) -> Path:
    return serving_jobs("svm")


@dataclass
class Gated:
    job_dir: Path
    svm_job_dir: Path  # the same model as plain svm: the offline reference
    load_gate: Path
    predict_gate: Path
    batch_log: Path

    def batch_sizes(self) -> list[int]:
        return batch_sizes(self.batch_log)


@pytest.fixture
def gated(
    serving_jobs: JobDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Gated]:
    """GatedSVM in the algorithm table (an entry point on sys.path), a model that names it,
    and its gates; the load gate is open unless a test sets SMVISION_TEST_LOAD_GATE."""
    site = write_plugin_site(tmp_path / "site", {SPEC.name: "tests.support.gated_algorithm:SPEC"})
    job = Gated(
        gated_model(serving_jobs("svm"), tmp_path / "job"),
        serving_jobs("svm"),
        make_gate(tmp_path / "load-gate"),
        make_gate(tmp_path / "predict-gate"),
        tmp_path / "batches.log",
    )
    monkeypatch.setenv(PREDICT_GATE, str(job.predict_gate))
    monkeypatch.setenv(BATCH_LOG, str(job.batch_log))
    with monkeypatch.context() as path:
        path.syspath_prepend(str(site))
        specs.table.cache_clear()
        yield job
    specs.table.cache_clear()


def digit_pngs(job_dir: Path, count: int) -> list[bytes]:
    test = job_dir / "opt" / "ml" / "input" / "data" / "test"
    return [path.read_bytes() for path in sorted(test.rglob("*.png"))[:count]]


CLASS_NAMES = [str(d) for d in range(10)]


# /ping and loading ------------------------------------------------------------------------------


def test_ping_says_503_while_the_model_loads_and_200_once_it_is_warm(
    gated: Gated, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOAD_GATE, str(gated.load_gate))
    [digit] = digit_pngs(gated.svm_job_dir, 1)

    async def scenario() -> None:
        async with started(gated.job_dir, ready=False) as server:
            loading = await server.request("GET", "/ping")
            assert loading.status == 503 and "still loading" in loading.error()
            early = asyncio.create_task(server.invoke(digit))  # waits for the model
            await asyncio.to_thread(release, gated.load_gate)
            await server.until_ready()
            assert (await server.request("GET", "/ping")).json() == {"status": "ready"}
            answer = await early
            assert answer.status == 200, answer.body
            expected = offline_probabilities(gated.svm_job_dir, [images.decode_image(digit)])
            assert_predictions_match(answer.json()["predictions"], expected, CLASS_NAMES)

    run(scenario)


# /invocations and /execution-parameters ---------------------------------------------------------


def test_invocations_answer_as_the_offline_model_does(svm_job: Path) -> None:
    pngs = digit_pngs(svm_job, 5)
    decoded = [images.decode_image(data) for data in pngs]

    async def scenario() -> None:
        async with started(svm_job) as server:
            one = await server.invoke(pngs[0])
            assert one.status == 200, one.body
            expected = offline_probabilities(svm_job, decoded)
            assert_predictions_match(one.json()["predictions"], expected[:1], CLASS_NAMES)
            batch = await server.request(
                "POST",
                "/invocations",
                npy(np.stack(decoded)),
                {"content-type": "application/x-npy"},
            )
            assert_predictions_match(batch.json()["predictions"], expected, CLASS_NAMES)
            table = await server.invoke(pngs[0], accept="text/csv")
            assert table.status == 200 and table.headers["content-type"] == "text/csv"
            assert table.body.decode().split(",")[0] == one.json()["predictions"][0]["label"]

    run(scenario)


def test_execution_parameters_follow_the_settings(svm_job: Path) -> None:
    async def scenario() -> None:
        env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "3", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1.5"}
        async with started(svm_job, env=env) as server:
            answer = await server.request("GET", "/execution-parameters")
            assert answer.status == 200
            assert answer.json() == {
                "MaxConcurrentTransforms": 3,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": 1.5,
            }

    run(scenario)


# Routes, methods, sizes and headers: 404, 405, 413, 400, 406, 415 ------------------------------


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        pytest.param("GET", "/invocations", "POST", id="GET /invocations"),
        pytest.param("PUT", "/invocations", "POST", id="PUT /invocations"),
        pytest.param("POST", "/ping", "GET", id="POST /ping"),
        pytest.param("DELETE", "/execution-parameters", "GET", id="DELETE /execution-parameters"),
    ],
)
def test_a_wrong_method_is_405_and_says_which_is_allowed(
    svm_job: Path, method: str, path: str, allowed: str
) -> None:
    async def scenario() -> None:
        async with started(svm_job) as server:
            answer = await server.request(method, path)
            assert answer.status == 405 and answer.headers["allow"] == allowed
            assert f"Method {method} is not allowed here; use {allowed}." == answer.error()

    run(scenario)


@pytest.mark.parametrize("path", ["/", "/predict", "/ping/", "/invocations/x"])
def test_an_unknown_route_is_404_and_lists_the_routes(svm_job: Path, path: str) -> None:
    async def scenario() -> None:
        async with started(svm_job) as server:
            answer = await server.request("GET", path)
            assert answer.status == 404
            assert f"No route {path};" in answer.error() and "POST /invocations" in answer.error()

    run(scenario)


MIB = 1024 * 1024


@pytest.mark.parametrize(
    "headers, parts, read",
    [
        pytest.param({"content-length": str(6 * MIB + 1)}, [b"\0" * MIB] * 7, 0, id="declared"),
        pytest.param({}, [b"\0" * MIB] * 7, 7, id="streamed"),
    ],
)
def test_a_body_over_the_payload_limit_is_413_and_closes_the_connection(
    svm_job: Path, headers: dict[str, str], parts: list[bytes], read: int
) -> None:
    async def scenario() -> None:
        async with started(svm_job) as server:
            answer = await server.request("POST", "/invocations", parts, {**PNG, **headers})
            assert answer.status == 413 and answer.headers["connection"] == "close"
            assert "SAGEMAKER_MAX_PAYLOAD_IN_MB" in answer.error() and "6 MB" in answer.error()
            assert answer.parts_read == read  # a declared size is refused before reading

    run(scenario)


BAD_REQUESTS = [
    pytest.param(
        {"content-length": "lots"},
        b"x",
        False,
        400,
        "Content-Length 'lots'",
        id="content-length not a number",
    ),
    pytest.param(
        {"content-type": "text/plain"},
        b"x",
        False,
        415,
        "'text/plain' is not supported",
        id="unsupported content type",
    ),
    pytest.param(
        {"content-type": ""}, b"x", False, 415, "Content-Type missing", id="no content type"
    ),
    pytest.param(
        {"accept": "application/xml"},
        b"x",
        False,
        406,
        "Accept 'application/xml'",
        id="unsupported accept",
    ),
    pytest.param(
        {"x-amzn-sagemaker-custom-attributes": "top_k=0"},
        b"x",
        False,
        400,
        "top_k='0'",
        id="bad top_k",
    ),
    pytest.param({}, b"GIF89a? no", False, 400, "not a readable image", id="undecodable image"),
    pytest.param(
        {}, b"", True, 400, "disconnected before sending the whole body", id="client gone mid-body"
    ),
]


@pytest.mark.parametrize("headers, body, disconnect, status, words", BAD_REQUESTS)
def test_a_bad_request_gets_its_status_and_a_sentence(
    svm_job: Path,
    headers: dict[str, str],
    body: bytes,
    disconnect: bool,
    status: int,
    words: str,
) -> None:
    [digit] = digit_pngs(svm_job, 1)

    async def scenario() -> None:
        async with started(svm_job) as server:
            answer = await server.request(
                "POST", "/invocations", body, {**PNG, **headers}, disconnect_after_body=disconnect
            )
            assert answer.status == status and words in answer.error(), answer.body
            assert (await server.invoke(digit)).status == 200

    run(scenario)


# 500, 503, 504 ---------------------------------------------------------------------------------


def test_a_request_the_model_raises_on_gets_500_alone_and_the_app_goes_on(gated: Gated) -> None:
    digits = digit_pngs(gated.svm_job_dir, 2)

    async def scenario() -> None:
        async with started(gated.job_dir) as server:
            failed = await server.invoke(BLACK)
            assert failed.status == 500
            assert failed.error().startswith("Internal error (FailsOnBlackError: GatedSVM refuses")
            together = await asyncio.gather(
                *(server.invoke(body) for body in (digits[0], BLACK, digits[1]))
            )
            assert [answer.status for answer in together] == [200, 500, 200]
            assert (await server.request("GET", "/ping")).status == 200

    run(scenario)


def test_a_request_over_the_timeout_gets_504_and_the_app_recovers(gated: Gated) -> None:
    [digit] = digit_pngs(gated.svm_job_dir, 1)

    async def scenario() -> None:
        async with started(gated.job_dir, env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "0.2"}) as server:
            stuck = await server.invoke(WHITE)  # waits at the gate past the timeout
            assert stuck.status == 504 and "SAGEMAKER_MODEL_SERVER_TIMEOUT" in stuck.error()
            # The inference thread still waits at the gate: /ping does not wait for it.
            assert await server.ping() == 200
            await asyncio.to_thread(release, gated.predict_gate)
            answer = await server.invoke(digit)
            assert answer.status == 200, answer.body

    run(scenario)


def test_a_request_after_the_inference_thread_stopped_gets_503(svm_job: Path) -> None:
    [digit] = digit_pngs(svm_job, 1)

    async def scenario() -> None:
        async with started(svm_job) as server:
            await server.lifespan("shutdown")
            answer = await server.invoke(digit)
            assert answer.status == 503 and "shutting down" in answer.error()

    run(scenario)


# Micro-batches are bounded by images ------------------------------------------------------------


def test_a_request_of_a_thousand_images_is_predicted_in_batches_of_at_most_32(
    gated: Gated,
) -> None:
    digits = [images.decode_image(data) for data in digit_pngs(gated.svm_job_dir, 100)]
    thousand = np.stack([digits[i % len(digits)] for i in range(1000)])
    expected = offline_probabilities(gated.svm_job_dir, list(thousand))
    npy_type = {"content-type": "application/x-npy"}

    async def scenario() -> None:
        async with started(gated.job_dir) as server:
            big, *small = await asyncio.gather(
                server.request("POST", "/invocations", npy(thousand), npy_type),
                *(server.invoke(encode(digit, ".png")) for digit in digits[:3]),
            )
            assert big.status == 200, big.body
            assert_predictions_match(big.json()["predictions"], expected, CLASS_NAMES)
            assert [answer.status for answer in small] == [200] * 3

    run(scenario)
    sizes = gated.batch_sizes()
    assert sum(sizes) == 1 + 1000 + 3  # the warm-up, then the requests
    assert max(sizes) <= MAX_BATCH_IMAGES, sizes


def test_a_large_body_is_read_into_one_buffer_not_held_twice() -> None:
    """A 64 MiB body in 1 MiB messages, as uvicorn hands it over: reading it whole
    allocates about the body once (chunks kept, then joined, held it twice)."""
    size, step = 64 * MIB, MIB
    source = memoryview(bytes(range(256)) * (size // 256))
    offsets = iter(range(0, size, step))

    async def receive() -> dict[str, Any]:
        start = next(offsets)
        return {
            "type": "http.request",
            "body": bytes(source[start : start + step]),
            "more_body": start + step < size,
        }

    scope = {"headers": [(b"content-length", str(size).encode())]}

    def too_large(what: str) -> HTTPError:
        return HTTPError(413, what)

    async def read() -> tuple[bytes, int]:
        tracemalloc.start()
        try:
            body = await read_body(scope, receive, 2 * size, too_large)
            return body, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    body, peak = asyncio.run(read())
    assert len(body) == size and body[-step:] == source[-step:]
    assert peak < 1.2 * size, f"{peak / MIB:.0f} MiB allocated for a {size // MIB} MiB body"
