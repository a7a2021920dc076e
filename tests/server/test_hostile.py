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
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from smvision.core import contract
from smvision.serving import models as models_module
from smvision.serving import process_memory
from smvision.serving.app import BATCHER_STOP_S
from smvision.serving.model_table import LOADER_THREADS
from tests.support.gated_algorithm import (
    LOAD_GATE,
    PREDICT_GATE,
    SPEC,
    gated_model,
    make_gate,
    release,
    write_plugin_site,
)
from tests.support.multi_model import Models
from tests.support.photos import encode, photo
from tests.support.server_process import RunningServer, free_port, running_server, start_server
from tests.support.serving import JobDirs, gated_environment, job_environment
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


# Model folders that are not what they say ----------------------------------------------------


def svm_copy(serving_jobs: JobDirs, destination: Path, compiled: bool = False) -> Path:
    """The svm's model folder; without its ONNX export unless `compiled` (as train wrote it
    before it compiled svms), so that serve loads model.joblib."""
    shutil.copytree(serving_jobs("svm") / "opt" / "ml" / "model", destination)
    if not compiled:
        (destination / contract.EXPORT_FILE).unlink()
        (destination / "model.onnx").unlink()
    return destination


def named_as(model_dir: Path, algorithm: str) -> Path:
    metadata_file = model_dir / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata_file.write_text(json.dumps({**metadata, "algorithm": algorithm}))
    return model_dir


@pytest.mark.slow
def test_a_model_folder_that_is_not_what_it_says_gets_404_naming_the_file(
    stall_models: Models, serving_jobs: JobDirs, tmp_path: Path
) -> None:
    root = stall_models.root
    missing = svm_copy(serving_jobs, root / "missing" / "model")
    (missing / "model.joblib").unlink()
    empty = svm_copy(serving_jobs, root / "empty" / "model")
    (empty / "model.joblib").write_bytes(b"")
    truncated = svm_copy(serving_jobs, root / "truncated" / "model")
    whole = (truncated / "model.joblib").read_bytes()
    (truncated / "model.joblib").write_bytes(whole[: len(whole) // 2])
    fifo = svm_copy(serving_jobs, root / "fifo" / "model")
    (fifo / "model.joblib").unlink()
    os.mkfifo(fifo / "model.joblib")  # opening it would block until a writer came
    named_as(svm_copy(serving_jobs, root / "mislabelled" / "model"), "rf")
    onnx_missing = svm_copy(serving_jobs, root / "onnx-missing" / "model", compiled=True)
    (onnx_missing / "model.onnx").unlink()
    onnx_empty = svm_copy(serving_jobs, root / "onnx-empty" / "model", compiled=True)
    (onnx_empty / "model.onnx").write_bytes(b"")
    cases = [
        ("onnx-missing", 404, ["export.json names model.onnx, which is missing"]),
        ("onnx-empty", 404, ["model.onnx is empty (0 bytes)"]),
        ("missing", 404, ["model.joblib is missing"]),
        ("empty", 404, ["model.joblib is empty (0 bytes)"]),
        ("truncated", 404, ["model.joblib cannot be read", "truncated"]),
        ("fifo", 404, ["model.joblib is not a regular file"]),
        (
            "mislabelled",
            404,
            ["holds a CalibratedClassifierCV pipeline, not the RandomForestClassifier"],
        ),
    ]
    for folder, status, sentences in cases:
        response = stall_models.load(folder)
        assert response.status_code == status, f"{folder}: {response.text}"
        message = response.json()["error"]
        assert message.startswith("No model "), message
        assert stall_models.url(folder) in message, message
        for sentence in sentences:
            assert sentence in message, f"{folder}: {message}"
    assert stall_models.listed() == {"models": []}
    assert stall_models.client.get("/ping").status_code == 200


@pytest.mark.slow
def test_post_models_loads_only_from_under_the_model_root(
    stall_models: Models, serving_jobs: JobDirs, tmp_path: Path
) -> None:
    outside = svm_copy(serving_jobs, tmp_path / "outside" / "model")
    linked = stall_models.root / "linked"
    linked.mkdir()
    (linked / "model").symlink_to(outside, target_is_directory=True)
    through = svm_copy(serving_jobs, stall_models.root / "through" / "model")
    (through / "model.joblib").unlink()
    (through / "model.joblib").symlink_to(outside / "model.joblib")
    relative = f"{stall_models.root}/svm/model/../../../outside"
    for name, url in [
        ("outside", str(outside)),
        ("linked", stall_models.url("linked")),
        ("through", stall_models.url("through")),
        ("relative", relative),
        ("etc", "/etc"),
    ]:
        response = stall_models.load(name, url=url)
        assert response.status_code == 404, f"{name}: {response.text}"
        message = response.json()["error"]
        assert f"outside {stall_models.root}, where SageMaker puts the models" in message, message
    assert stall_models.listed() == {"models": []}
    inside = stall_models.load("inside", "svm")
    assert inside.status_code == 200, inside.text
    assert stall_models.unload("inside").status_code == 200


# The memory plan -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_cnn_already_compiled_is_planned_without_the_compile(
    serving_jobs: JobDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SMVISION_MODELS_MEMORY_MB=500 holds a cnn on TFLite (about 40 MiB) but not its
    compile's child (COMPILE_CHILD_MB): once the flatbuffer is in the compile cache (the
    server's TMPDIR here, /tmp on an endpoint), the cnn loads within the budget."""
    cnn = serving_jobs("cnn") / "opt" / "ml" / "model"
    job_dir = tmp_path / "job"
    root = job_dir / "opt" / "ml" / "models"
    shutil.copytree(cnn, root / "cnn" / "model")
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    env = {
        **job_environment(job_dir),
        "SAGEMAKER_MULTI_MODEL": "true",
        "SMVISION_MODELS_MEMORY_MB": "500",
        "TMPDIR": str(server_tmp),
    }
    assert process_memory.COMPILE_CHILD_MB > 500
    with running_server(job_dir, env=env) as server:
        models = Models(server, root)
        refused = models.load("first", "cnn")  # not compiled yet: the compile does not fit
        assert refused.status_code == 413, refused.text
        assert "compile" in refused.json()["error"], refused.text
        # Compiled as the server compiles, into the cache the server reads.
        monkeypatch.setattr(models_module, "COMPILE_CACHE", server_tmp / "smvision-tflite")
        models_module.compile_in_child(root / "cnn" / "model")
        loaded = models.load("cached", "cnn")
        assert loaded.status_code == 200, loaded.text
        answer = models.invoke("cached", png(), "image/png")
        assert answer.status_code == 200, answer.text
        models.client.close()


# Loads that never end ------------------------------------------------------------------------

LOAD_DEADLINE_S = 8  # SMVISION_MODEL_LOAD_TIMEOUT where a test waits for it to pass


def gated_models(serving_jobs: JobDirs, job_dir: Path, **env: str) -> tuple[Path, dict[str, str]]:
    """/opt/ml/models with the digits svm and the svm as GatedSVM (which waits at its load
    gate, job_dir/load-gate), and the environment of a multi-model server over them."""
    root = job_dir / "opt" / "ml" / "models"
    svm_copy(serving_jobs, root / "svm" / "model")
    gated = gated_model(serving_jobs("svm"), job_dir / "gated") / "opt" / "ml" / "model"
    shutil.copytree(gated, root / "gated" / "model")
    site = write_plugin_site(job_dir / "site", {SPEC.name: "tests.support.gated_algorithm:SPEC"})
    gate = make_gate(job_dir / "load-gate")
    environment = {
        **gated_environment(job_dir, site, **{LOAD_GATE: gate}),
        "SAGEMAKER_MULTI_MODEL": "true",
        **env,
    }
    return root, environment


def wait_until_loading(models: Models, name: str, load: Future[httpx.Response]) -> None:
    """Until GET /models/NAME says the load is under way (it has passed its plan)."""
    deadline = time.monotonic() + ANSWER_GUARD_S
    while "is still loading" not in models.client.get(f"/models/{name}").text:
        assert not load.done(), load.result().text
        assert time.monotonic() < deadline, f"{name} never started loading"
        time.sleep(0.01)  # waits on the load reaching its plan's end (GET shows it)


def wait_for_log(server: RunningServer, line: str, count: int) -> None:
    deadline = time.monotonic() + ANSWER_GUARD_S
    while server.log().count(line) < count:
        assert time.monotonic() < deadline, f"{count} x {line!r} never logged: {server.log_tail()}"
        time.sleep(0.05)  # waits on the server's log: the threads end with nobody waiting


@pytest.mark.slow
def test_loads_stuck_in_their_files_get_408_and_free_their_slots(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    """LOADER_THREADS GatedSVM loads wait at their gate for good: each is answered 408 once
    SMVISION_MODEL_LOAD_TIMEOUT passes, and its slot is free at once for a healthy load,
    while its thread still waits; let through later, those threads end and are stopped."""
    root, env = gated_models(
        serving_jobs, tmp_path, SMVISION_MODEL_LOAD_TIMEOUT=str(LOAD_DEADLINE_S)
    )
    gate = Path(env[LOAD_GATE])
    with (
        running_server(tmp_path, env=env) as server,
        ThreadPoolExecutor(LOADER_THREADS) as pool,
    ):
        models = Models(server, root)
        stuck = [f"stuck-{index}" for index in range(LOADER_THREADS)]
        loads = [pool.submit(models.load, name, "gated") for name in stuck]
        for name, load in zip(stuck, loads):
            answer = load.result(timeout=ANSWER_GUARD_S)
            assert answer.status_code == 408, answer.text
            message = answer.json()["error"]
            assert f"Model {name} did not load within {LOAD_DEADLINE_S} s" in message, message
            assert "(SMVISION_MODEL_LOAD_TIMEOUT)" in message, message
            assert "reading its files, compiling and warming it up took all" in message, message
            gone = models.client.get(f"/models/{name}")
            assert gone.status_code == 404 and "is not loaded" in gone.text
        healthy = models.load("healthy", "svm")  # every slot is free again
        assert healthy.status_code == 200, healthy.text
        for _ in stuck:
            release(gate)
        wait_for_log(server, "the thread of its given-up load ended", LOADER_THREADS)
        assert [m["modelName"] for m in models.listed()["models"]] == ["healthy"]
        again = models.load("stuck-0", "svm")
        assert again.status_code == 200, again.text
        models.client.close()


@pytest.mark.slow
def test_delete_cancels_a_load_and_a_waiting_load_takes_its_slot(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    root, env = gated_models(serving_jobs, tmp_path)
    gate = Path(env[LOAD_GATE])
    with (
        running_server(tmp_path, env=env) as server,
        ThreadPoolExecutor(LOADER_THREADS + 1) as pool,
    ):
        models = Models(server, root)
        held = [f"held-{index}" for index in range(LOADER_THREADS)]
        loads = {name: pool.submit(models.load, name, "gated") for name in held}
        for name, load in loads.items():
            wait_until_loading(models, name, load)
        waiting = pool.submit(models.load, "waiting", "svm")  # no slot is free
        wait_until_loading(models, "waiting", waiting)

        cancelled = models.unload("held-0")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json() == {"modelName": "held-0", "status": "cancelled"}
        answer = loads["held-0"].result(timeout=ANSWER_GUARD_S)
        assert answer.status_code == 409, answer.text
        assert "The load of model held-0 was cancelled by DELETE /models/held-0." in answer.text
        loaded = waiting.result(timeout=ANSWER_GUARD_S)  # in the slot held-0 gave up
        assert loaded.status_code == 200, loaded.text

        for name in held[1:]:
            assert models.unload(name).json()["status"] == "cancelled"
            assert loads[name].result(timeout=ANSWER_GUARD_S).status_code == 409
        assert [m["modelName"] for m in models.listed()["models"]] == ["waiting"]
        for _ in held:
            release(gate)
        wait_for_log(server, "the thread of its given-up load ended", LOADER_THREADS)
        assert [m["modelName"] for m in models.listed()["models"]] == ["waiting"]
        models.client.close()


@pytest.mark.slow
def test_a_single_model_that_never_loads_stops_the_server_with_a_sentence(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    job_dir = gated_model(serving_jobs("svm"), tmp_path / "job")
    site = write_plugin_site(tmp_path / "site", {SPEC.name: "tests.support.gated_algorithm:SPEC"})
    gate = make_gate(tmp_path / "load-gate")  # never opened: the load waits for good
    env = {
        **gated_environment(job_dir, site, **{LOAD_GATE: gate}),
        "SMVISION_MODEL_LOAD_TIMEOUT": "3",
    }
    server = start_server(job_dir, tmp_path / "serve.log", env=env)
    try:
        returncode = server.process.wait(timeout=ANSWER_GUARD_S)
    finally:
        if server.process.poll() is None:
            server.stop()
    assert returncode == 3, server.log_tail()
    assert "model in" in server.log() and "did not load within 3 s" in server.log()
    assert "(SMVISION_MODEL_LOAD_TIMEOUT)" in server.log(), server.log_tail()


# Unloads that wait -----------------------------------------------------------------------------


def wait_until_said(models: Models, path: str, sentence: str) -> None:
    deadline = time.monotonic() + ANSWER_GUARD_S
    while sentence not in (said := models.client.get(path).text):
        assert time.monotonic() < deadline, f"GET {path} never said {sentence!r}: {said}"
        time.sleep(0.01)  # waits on the server's table changing (GET shows it)


@pytest.mark.slow
def test_delete_of_a_model_whose_prediction_never_ends_answers_504_and_unloads_it_later(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    """GatedSVM holds a prediction at its gate: the request gets its 504, then DELETE waits
    for the inference thread until the unload's deadline (the request timeout and
    BATCHER_STOP_S more) and answers 504; once the prediction ends, the model is gone and
    can be loaded again."""
    predict_gate = make_gate(tmp_path / "predict-gate")
    root, env = gated_models(
        serving_jobs,
        tmp_path,
        SAGEMAKER_MODEL_SERVER_TIMEOUT=str(STALL_TIMEOUT_S),
        **{PREDICT_GATE: str(predict_gate)},
    )
    load_gate = Path(env[LOAD_GATE])
    white = encode(np.full((32, 32), 255, np.uint8), ".png")  # held at the predict gate
    with running_server(tmp_path, env=env) as server, ThreadPoolExecutor(1) as pool:
        models = Models(server, root)
        for attempt in ("first", "again"):
            loading = pool.submit(models.load, "busy", "gated")
            release(load_gate)
            loaded = loading.result(timeout=ANSWER_GUARD_S)
            assert loaded.status_code == 200, f"{attempt}: {loaded.text}"
            if attempt == "again":
                break
            stuck = models.invoke("busy", white, "image/png")
            assert stuck.status_code == 504, stuck.text
            deleted = models.unload("busy")
            assert deleted.status_code == 504, deleted.text
            unload_deadline = STALL_TIMEOUT_S + BATCHER_STOP_S
            assert deleted.json()["error"] == (
                "Model busy takes no more requests, but its inference thread was still busy "
                f"{unload_deadline:g} s after DELETE (a prediction that does not end); it is "
                "unloaded, and its memory freed, once that prediction ends."
            )
            assert "is being unloaded" in models.client.get("/models/busy").text
            refused = models.load("busy", "gated")
            assert refused.status_code == 409 and "is being unloaded" in refused.text
            release(predict_gate)
            wait_until_said(models, "/models/busy", "Model busy is not loaded")
        assert models.invoke("busy", png(), "image/png").status_code == 200
        models.client.close()


@pytest.mark.slow
def test_model_files_that_would_block_take_no_load_slot(
    stall_models: Models, serving_jobs: JobDirs
) -> None:
    """As many loads as there are load slots, each of a folder whose model.joblib is a FIFO
    (opening it waits for a writer that never comes), then a healthy load: the FIFOs are
    refused before they load, and the healthy load takes a slot at once."""
    names = [f"blocking-{index}" for index in range(LOADER_THREADS)]
    for name in names:
        folder = svm_copy(serving_jobs, stall_models.root / name / "model")
        (folder / "model.joblib").unlink()
        os.mkfifo(folder / "model.joblib")
    with ThreadPoolExecutor(LOADER_THREADS) as pool:
        refused = list(pool.map(stall_models.load, names))
    for response in refused:
        assert response.status_code == 404, response.text
        assert "model.joblib is not a regular file" in response.json()["error"]
    healthy = stall_models.load("healthy", "svm")
    assert healthy.status_code == 200, healthy.text
    assert stall_models.unload("healthy").status_code == 200
