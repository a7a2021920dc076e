"""A multi-model `serve` (SAGEMAKER_MULTI_MODEL=true), driven as SageMaker drives it.

The real server runs as a subprocess over a job directory whose /opt/ml/models holds
the digits svm and cnn that the `serving_jobs` fixture (tests/conftest.py) trains once
per session, and is spoken to over HTTP: POST /models to load, GET /models to list, POST
/models/NAME/invoke to classify, DELETE /models/NAME to unload. A model that is loading
is made certain by `tests.support.gated_algorithm.GatedSVM`, which waits at a gate in its load.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from smvision.algorithms.base import CLASSICAL_MODEL_FILE, KERAS_MODEL_FILE
from smvision.core import contract
from smvision.core.contract import ContractError
from smvision.model.exports import MODEL_FILES
from smvision.serving import models as models_module
from smvision.serving import process_memory
from smvision.serving.inference import MAX_BATCH_IMAGES
from smvision.serving.loading import plan
from smvision.serving.model_table import (
    LOADER_THREADS,
    decode_page_token,
    default_budget_mb,
    encode_page_token,
)
from smvision.serving.settings import settings_from
from tests.support.gated_algorithm import (
    BATCH_LOG,
    LOAD_GATE,
    PREDICT_GATE,
    SPEC,
    batch_sizes,
    gated_model,
    let_through,
    make_gate,
    release,
    waiter_at,
    write_plugin_site,
)
from tests.support.multi_model import MULTI_MODEL, Models, lay_out_models
from tests.support.photos import encode
from tests.support.server_process import running_server
from tests.support.serving import (
    CLASS_NAMES,
    JobDirs,
    assert_predictions_match,
    content_type_cases,
    digit_png,
    gated_environment,
    offline_file_probabilities,
    offline_probabilities,
)

ONNX_FILE = MODEL_FILES["onnx"]  # what train compiles an svm to, and serve loads
FIFTY = 50


@pytest.fixture(scope="module")
def models(serving_jobs: JobDirs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Models]:
    """A multi-model server with the digits svm and cnn, and the svm as GatedSVM, on disk."""
    job_dir = tmp_path_factory.mktemp("multi-model")
    root, site, gate = svm_cnn_and_gated(serving_jobs, job_dir)
    predict_gate = make_gate(job_dir / "predict-gate")
    batches = job_dir / "batches.log"
    env = {
        **gated_environment(job_dir, site, **{LOAD_GATE: gate, PREDICT_GATE: predict_gate}),
        BATCH_LOG: str(batches),
        **MULTI_MODEL,
    }
    with running_server(job_dir, env=env) as server:
        api = Models(server, root, gate, batches, predict_gate)
        yield api
        api.client.close()


def model_of(job_dir: Path) -> Path:
    return job_dir / "opt" / "ml" / "model"


def svm_cnn_and_gated(serving_jobs: JobDirs, job_dir: Path) -> tuple[Path, Path, Path]:
    """job_dir's models folder holding the digits svm and cnn and the svm as GatedSVM; the
    plugin site that registers GatedSVM; its load gate."""
    root = job_dir / "opt" / "ml" / "models"
    gated = gated_model(serving_jobs("svm"), job_dir / "gated") / "opt" / "ml" / "model"
    lay_out_models(
        root,
        {
            "svm": model_of(serving_jobs("svm")),
            "cnn": model_of(serving_jobs("cnn")),
            "gated": gated,
        },
    )
    site = write_plugin_site(job_dir / "site", {SPEC.name: "tests.support.gated_algorithm:SPEC"})
    return root, site, make_gate(job_dir / "load-gate")


@pytest.mark.slow
def test_an_svm_and_a_cnn_load_serve_side_by_side_and_unload(
    models: Models, serving_jobs: JobDirs
) -> None:
    assert models.client.get("/ping").status_code == 200
    for algorithm in ("svm", "cnn"):
        loaded = models.load(f"digits-{algorithm}", algorithm)
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["status"] == "loaded"
    assert models.listed()["models"] == [
        {"modelName": "digits-cnn", "modelUrl": models.url("cnn")},
        {"modelName": "digits-svm", "modelUrl": models.url("svm")},
    ]
    assert "nextPageToken" not in models.listed()
    described = models.client.get("/models/digits-cnn")
    assert described.json() == {"modelName": "digits-cnn", "modelUrl": models.url("cnn")}

    for algorithm in ("svm", "cnn"):
        job_dir = serving_jobs(algorithm)
        latencies = []
        for index in range(6):
            png = digit_png(job_dir, index)
            started = time.perf_counter()
            answer = models.invoke(f"digits-{algorithm}", png, "image/png")
            latencies.append(1000 * (time.perf_counter() - started))
            assert answer.status_code == 200, answer.text
            expected = offline_file_probabilities(job_dir, [png])
            assert_predictions_match(answer.json()["predictions"], expected, CLASS_NAMES)
        print(
            f"\n{algorithm}: first request after the load {latencies[0]:.1f} ms, the next "
            f"five {statistics.median(latencies[1:]):.1f} ms (median)"
        )

    freed = models.unload("digits-svm")
    assert freed.status_code == 200, freed.text
    assert freed.json()["status"] == "unloaded" and "freedMemoryMiB" in freed.json()
    gone = models.invoke("digits-svm", digit_png(serving_jobs("svm")), "image/png")
    assert gone.status_code == 404
    assert "Model digits-svm is not loaded; POST /models loads it." in gone.json()["error"]
    assert models.client.get("/models/digits-svm").status_code == 404
    still = models.invoke("digits-cnn", digit_png(serving_jobs("cnn")), "image/png")
    assert still.status_code == 200, still.text
    assert models.unload("digits-cnn").status_code == 200
    assert models.listed() == {"models": []}
    for line in models.server.log().splitlines():
        if "Model digits-" in line:
            print(line.split(" INFO ", 1)[-1])


@pytest.mark.slow
def test_invoke_takes_every_content_type_accept_attribute_and_error_of_invocations(
    models: Models, serving_jobs: JobDirs
) -> None:
    job_dir = serving_jobs("svm")
    assert models.load("types", "svm").status_code == 200
    try:
        for name, content_type, body, decoded in content_type_cases(job_dir):
            answer = models.invoke("types", body, content_type)
            assert answer.status_code == 200, f"{name}: {answer.text}"
            expected = offline_probabilities(job_dir, decoded)
            assert_predictions_match(answer.json()["predictions"], expected, CLASS_NAMES)
        png = digit_png(job_dir, 5)
        csv = models.invoke("types", png, "image/png", {"Accept": "text/csv"})
        assert csv.headers["content-type"] == "text/csv" and csv.text.count("\n") == 1
        top = models.invoke(
            "types", png, "image/png", {"X-Amzn-SageMaker-Custom-Attributes": "top_k=2"}
        )
        assert len(top.json()["predictions"][0]["probabilities"]) == 2
        refusals = [
            (models.invoke("types", png, "image/gif"), 415),
            (models.invoke("types", png, "image/png", {"Accept": "image/png"}), 406),
            (models.invoke("types", b"not a PNG", "image/png"), 400),
            (
                models.invoke(
                    "types", png, "image/png", {"X-Amzn-SageMaker-Custom-Attributes": "top_k=0"}
                ),
                400,
            ),
            (models.invoke("types", b"\0" * (6 * 1024 * 1024 + 1), "application/x-npy"), 413),
        ]
        for response, status in refusals:
            assert response.status_code == status, response.text
    finally:
        models.unload("types")


@pytest.mark.slow
def test_a_model_that_loads_blocks_no_other_and_is_warm_when_loaded(
    models: Models, serving_jobs: JobDirs
) -> None:
    """GatedSVM waits at its gate inside its load: meanwhile the loaded model answers, the
    server answers /ping and /models, and a third model loads; then the gated load ends
    with its warm-up prediction made, before SageMaker sends it a request."""
    png = digit_png(serving_jobs("svm"))
    gate, batches = models.gate, models.batches
    assert gate is not None and batches is not None
    assert models.load("steady", "svm").status_code == 200
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(models.load, "held", "gated")
        waiting = waiter_at(gate)  # the load is in progress, by construction
        try:
            assert models.invoke("steady", png, "image/png").status_code == 200
            assert models.client.get("/ping").status_code == 200
            assert [m["modelName"] for m in models.listed()["models"]] == ["steady"]
            loading = models.client.get("/models/held")
            assert loading.status_code == 404 and "is still loading" in loading.text
            again = models.load("held", "gated")
            assert again.status_code == 409 and "is already loading" in again.text
            assert models.load("third", "svm").status_code == 200
            assert batch_sizes(batches) == []  # GatedSVM has predicted nothing yet
        finally:
            let_through(waiting)
        response = held.result(timeout=120)
    assert response.status_code == 200, response.text
    assert batch_sizes(batches) == [1]  # the warm-up, inside the load
    answer = models.invoke("held", png, "image/png")
    assert answer.status_code == 200, answer.text
    assert batch_sizes(batches) == [1, 1]
    for name in ("steady", "held", "third"):
        assert models.unload(name).status_code == 200


def load_gated(models: Models, name: str) -> None:
    """Load GatedSVM as `name`, letting its load through the gate."""
    assert models.gate is not None
    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(models.load, name, "gated")
        release(models.gate)
        response = loading.result(timeout=120)
    assert response.status_code == 200, response.text


def json_line(image: bytes) -> bytes:
    return json.dumps({"b64": base64.b64encode(image).decode()}).encode() + b"\n"


@pytest.mark.slow
def test_delete_waits_for_the_requests_in_flight_and_later_ones_get_404(
    models: Models, serving_jobs: JobDirs
) -> None:
    """A JSON Lines request holds GatedSVM at its predict gate with the rest of its body
    unsent when DELETE comes: the request is answered in full by the running model (no
    503, no cancelled decode), and only then does DELETE answer; new requests get 404."""
    assert models.predict_gate is not None
    load_gated(models, "draining")
    digits = [digit_png(serving_jobs("svm"), index) for index in range(MAX_BATCH_IMAGES)]
    first = [json_line(encode(np.full((32, 32), 255, np.uint8), ".png"))]  # held at the gate
    first += [json_line(png) for png in digits[1:]]
    rest_may_go = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"".join(first)
        rest_may_go.wait(timeout=300)
        yield b"".join(json_line(png) for png in digits)

    with ThreadPoolExecutor(2) as pool:
        invoked = pool.submit(
            models.invoke,
            "draining",
            body(),
            "application/jsonlines",
            {"Accept": "application/jsonlines"},
        )
        held = waiter_at(models.predict_gate)  # the request is in flight, by construction
        try:
            deleted = pool.submit(models.unload, "draining")
            deadline = time.monotonic() + 60
            while models.client.get("/models/draining").status_code != 404:
                assert time.monotonic() < deadline, "the server never took the DELETE"
                time.sleep(0.01)  # waits on the server taking the DELETE (GET shows it)
            refused = models.invoke("draining", digits[0], "image/png")
            assert refused.status_code == 404, refused.text
            assert "Model draining is being unloaded" in refused.json()["error"]
            again = models.load("draining", "gated")
            assert again.status_code == 409 and "is being unloaded" in again.text
        finally:
            let_through(held)
            rest_may_go.set()
        answer = invoked.result(timeout=300)
        unloaded = deleted.result(timeout=300)
    assert answer.status_code == 200, answer.text
    assert len(answer.text.splitlines()) == 2 * MAX_BATCH_IMAGES
    assert unloaded.status_code == 200, unloaded.text
    gone = models.invoke("draining", digits[0], "image/png")
    assert gone.status_code == 404
    assert "Model draining is not loaded" in gone.json()["error"]


@pytest.mark.slow
def test_fifty_svm_models_in_one_server_and_the_memory_each_takes(
    models: Models, serving_jobs: JobDirs
) -> None:
    """SageMaker gives each model a folder of its own; here the fifty share the svm's
    files, and each load reads them into objects of its own."""
    names = [f"site-{index:02d}" for index in range(FIFTY)]
    before = models.worker_resident_mib()
    first = models.load(names[0], "svm")
    assert first.status_code == 200, first.text
    after_first = models.worker_resident_mib()
    for name in names[1:]:
        response = models.load(name, "svm")
        assert response.status_code == 200, response.text
    after_all = models.worker_resident_mib()
    per_model = (after_all - after_first) / (FIFTY - 1)
    size = process_memory.size_on_disk_mb([model_of(serving_jobs("svm")) / ONNX_FILE])
    estimate = process_memory.serving_memory("onnx").model_mb(size)
    print(
        f"\nMulti-model memory: worker {before:.0f} MiB before; the first svm "
        f"{after_first - before:+.1f} MiB (ONNX Runtime's own too, unless loaded before); then "
        f"{per_model:.2f} MiB per svm of {size:.2f} MB on disk (reserved: {estimate:.2f} "
        f"MiB); {after_all:.0f} MiB with {FIFTY}"
    )

    pages = [models.listed(limit="20")]
    while "nextPageToken" in pages[-1]:
        pages.append(models.listed(limit="20", next_page_token=pages[-1]["nextPageToken"]))
    assert [len(page["models"]) for page in pages] == [20, 20, 10]
    assert [m["modelName"] for page in pages for m in page["models"]] == names
    png = digit_png(serving_jobs("svm"), 7)
    answer = models.invoke("site-37", png, "image/png")
    expected = offline_file_probabilities(serving_jobs("svm"), [png])
    assert_predictions_match(answer.json()["predictions"], expected, CLASS_NAMES)

    freed = [models.unload(name).json()["freedMemoryMiB"] for name in names]
    after_unload = models.worker_resident_mib()
    print(
        f"Unloading the {FIFTY}: {sum(freed):.1f} MiB freed as each reported; worker "
        f"{after_unload:.0f} MiB after"
    )
    assert per_model <= estimate
    assert after_all - after_unload >= 0.5 * (after_all - after_first)


@pytest.mark.slow
def test_409_404_and_requests_that_are_not_the_api(models: Models, tmp_path: Path) -> None:
    empty = models.root / "empty"  # under the model root: POST /models loads from there only
    empty.mkdir()
    unknown = models.root / "unknown"
    shutil.copytree(Path(models.url("svm")), unknown)
    metadata = json.loads((unknown / "metadata.json").read_text())
    (unknown / "metadata.json").write_text(json.dumps({**metadata, "algorithm": "lda"}))
    assert models.load("twice", "svm").status_code == 200
    try:
        cases = [
            (models.load("twice", "svm"), 409, "Model twice is already loaded"),
            (models.load("absent", url=str(models.root / "absent")), 404, "No model at"),
            (models.load("empty", url=str(empty)), 404, "metadata.json is missing"),
            (models.load("lda", url=str(unknown)), 404, "algorithm' has value 'lda'"),
            (models.client.post("/models", content=b"{"), 400, "is not JSON"),
            (
                models.client.post("/models", json={"model_name": "x"}),
                400,
                'takes {"model_name": NAME, "url": DIR}',
            ),
            (models.client.get("/models/nothing"), 404, "Model nothing is not loaded"),
            (models.unload("nothing"), 404, "Model nothing is not loaded"),
            (models.invoke("nothing", b"x", "image/png"), 404, "Model nothing is not loaded"),
            (
                models.client.post("/invocations", content=b"x"),
                404,
                "multi-model server (SAGEMAKER_MULTI_MODEL=true): POST /models/NAME/invoke",
            ),
            (models.client.put("/models"), 405, "use GET or POST"),
            (
                models.client.get("/models", params={"next_page_token": "%%%"}),
                400,
                "is not one this server gave",
            ),
            (models.client.get("/models", params={"limit": "0"}), 400, "from 1 to 1000"),
        ]
        for response, status, message in cases:
            assert response.status_code == status, response.text
            assert message in response.json()["error"], response.text
    finally:
        models.unload("twice")


@pytest.mark.slow
def test_a_model_over_the_memory_budget_gets_507_until_another_is_unloaded(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    svm = model_of(serving_jobs("svm"))
    size = process_memory.size_on_disk_mb([svm / ONNX_FILE])
    figures = process_memory.serving_memory("onnx")
    budget = figures.runtime_mb + 1.5 * figures.model_mb(size)  # room for one svm
    root = lay_out_models(
        tmp_path / "opt" / "ml" / "models", {"svm": svm, "cnn": model_of(serving_jobs("cnn"))}
    )
    env = {
        **MULTI_MODEL,
        "SAGEMAKER_BASE_DIR": str(tmp_path / "opt" / "ml"),
        "SMVISION_MODELS_MEMORY_MB": f"{budget:.3f}",
    }
    with running_server(tmp_path, env=env) as server:
        models = Models(server, root)
        assert models.load("first", "svm").status_code == 200
        refused = models.load("second", "svm")
        assert refused.status_code == 507, refused.text
        assert "Model second needs about" in refused.json()["error"]
        assert "(SMVISION_MODELS_MEMORY_MB) are taken; unload a model first." in refused.text
        assert models.load("cnn", "cnn").status_code == 413  # its compile alone is over budget
        assert models.unload("first").status_code == 200  # SageMaker evicts, then retries
        assert models.load("second", "svm").status_code == 200
        assert [m["modelName"] for m in models.listed()["models"]] == ["second"]
        models.client.close()
        assert f"{budget:.0f} MiB of memory for them" in server.log()


def test_a_multi_model_server_runs_one_worker(tmp_path: Path) -> None:
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), **MULTI_MODEL}
    settings = settings_from(contract.load(environ), cores=8)
    assert (settings.multi_model, settings.workers, settings.threads_per_worker) == (True, 1, 8)
    assert settings.model_dir == tmp_path / "models"
    with pytest.raises(ContractError, match="a multi-model server runs one worker"):
        settings_from(contract.load({**environ, "SAGEMAKER_MODEL_SERVER_WORKERS": "4"}))


def test_the_default_budget_leaves_headroom_and_tokens_round_trip() -> None:
    assert default_budget_mb(8192, 300) == pytest.approx(8192 * 0.9 - 300)
    assert default_budget_mb(None, 300) == float("inf")
    assert default_budget_mb(256, 300) == 0
    for name in ("site-1", "a/b c", "ünïcode"):
        assert decode_page_token(encode_page_token(name)) == name


@pytest.mark.slow
def test_delete_goes_through_while_every_load_slot_is_held_and_413_for_never(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    """LOADER_THREADS GatedSVM loads wait at their gate (each has passed its plan, so each
    holds a load slot): a DELETE sent to make room is answered meanwhile. A model that
    could not fit even with no other loaded gets 413, not the 507 that would make
    SageMaker evict everything and ask again forever."""
    root, site, gate = svm_cnn_and_gated(serving_jobs, tmp_path)
    budget = 400.0  # ONNX Runtime and a few svms; not a cnn's compile (memory.COMPILE_CHILD_MB)
    (tmp_path / "server-tmp").mkdir()
    env = {
        **gated_environment(tmp_path, site, **{LOAD_GATE: gate}),
        **MULTI_MODEL,
        "SMVISION_MODELS_MEMORY_MB": str(budget),
        # A compile cache of its own, empty: a cnn compiled before would need no compile.
        "TMPDIR": str(tmp_path / "server-tmp"),
    }
    with (
        running_server(tmp_path, env=env) as server,
        ThreadPoolExecutor(LOADER_THREADS + 1) as pool,
    ):
        models = Models(server, root, gate)
        assert models.load("room", "svm").status_code == 200
        held = [
            pool.submit(models.load, f"held-{index}", "gated") for index in range(LOADER_THREADS)
        ]
        deadline = time.monotonic() + 300
        for index in range(LOADER_THREADS):
            while "is still loading" not in models.client.get(f"/models/held-{index}").text:
                assert not held[index].done(), held[index].result().text
                assert time.monotonic() < deadline, f"held-{index} never started loading"
                time.sleep(0.01)  # waits on the load reaching its gate (GET shows it)
        try:
            deleted = pool.submit(models.unload, "room")
            # A guard against a hang, not a speed check: before the fix it waited for a load.
            assert deleted.result(timeout=60).status_code == 200
            never = models.load("cnn", "cnn")
            assert never.status_code == 413, never.text
            message = never.json()["error"]
            assert "Model cnn needs about" in message and "(tflite, " in message
            assert f"(SMVISION_MODELS_MEMORY_MB is {budget:.0f} MiB)" in message
        finally:
            for _ in held:
                release(gate)
        assert all(load.result(timeout=120).status_code == 200 for load in held)
        models.client.close()


def test_the_memory_plan_counts_the_files_loaded_and_deep_features_as_tensorflow(
    serving_jobs: JobDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plots and reports beside the model are not loaded; an svm on features=deep runs
    ResNet50 on TensorFlow, whose weights it loads too."""
    model_dir = tmp_path / "model"
    shutil.copytree(model_of(serving_jobs("svm")), model_dir)
    onnx_mb = (model_dir / ONNX_FILE).stat().st_size / process_memory.MIB
    (model_dir / "confusion_matrix.png").write_bytes(b"\0" * 5 * process_memory.MIB)
    settings = settings_from(contract.load({"SAGEMAKER_BASE_DIR": str(tmp_path)}), cores=1)
    plain = plan(model_dir, settings)
    assert (plain.engine, plain.loading_mb) == ("onnx", 0.0)  # train compiled it to ONNX
    assert plain.size_on_disk_mb == pytest.approx(onnx_mb)

    # A features=deep model has no ONNX form: serve loads the pipeline and the backbone.
    (model_dir / "export.json").unlink()
    (model_dir / ONNX_FILE).unlink()
    joblib_mb = (model_dir / CLASSICAL_MODEL_FILE).stat().st_size / process_memory.MIB
    metadata = json.loads((model_dir / "metadata.json").read_text())
    weights = "backbone.weights.h5"
    (model_dir / weights).write_bytes(b"\0" * 3 * process_memory.MIB)
    record = {
        "network": "resnet50",
        "weights": "pretrained",
        "file": weights,
        "sha256": hashlib.sha256((model_dir / weights).read_bytes()).hexdigest(),
        "in_model_dir": True,
    }
    metadata["preprocessing"] = {**metadata.get("preprocessing", {}), "backbone": record}
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    deep = plan(model_dir, settings)
    assert (deep.engine, deep.loading_mb) == ("tflite", process_memory.COMPILE_CHILD_MB)
    assert deep.size_on_disk_mb == pytest.approx(joblib_mb + 3)

    cnn_dir = model_of(serving_jobs("cnn"))
    cnn_settings = settings_from(contract.load({"SAGEMAKER_BASE_DIR": str(cnn_dir.parent)}))
    monkeypatch.setattr(models_module, "COMPILE_CACHE", tmp_path / "empty-cache")
    cnn = plan(cnn_dir, cnn_settings)
    assert (cnn.engine, cnn.loading_mb) == ("tflite", process_memory.COMPILE_CHILD_MB)


@pytest.mark.slow
def test_a_keras_model_compiles_once_and_within_sagemakers_load_limit(
    serving_jobs: JobDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cnn loaded again after an eviction takes its flatbuffer from the cache in /tmp,
    keyed by its Keras file; no compile may outlast the 360 s SageMaker gives a load."""
    assert models_module.COMPILE_TIMEOUT_S <= 300
    monkeypatch.setattr(models_module, "COMPILE_CACHE", tmp_path / "cache")
    cnn = model_of(serving_jobs("cnn"))
    compiled = models_module.compile_in_child(cnn)
    (cached,) = (tmp_path / "cache").iterdir()
    digest = hashlib.sha256((cnn / KERAS_MODEL_FILE).read_bytes()).hexdigest()
    assert cached.name == f"{digest}.tflite" and cached.read_bytes() == compiled
    # Loaded again, the model gets what the cache holds, not a new compile's flatbuffer.
    cached.write_bytes(b"the flatbuffer in the cache")
    assert models_module.compile_in_child(cnn) == b"the flatbuffer in the cache"


@pytest.mark.slow
def test_sigterm_while_a_model_loads_ends_the_worker_without_sigkill(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    """A load that never ends (GatedSVM held at its gate for good) neither keeps the worker
    from exiting nor makes gunicorn kill it: the request is cancelled after uvicorn's
    graceful timeout, the models stop, and the loader thread does not hold the process."""
    root = tmp_path / "opt" / "ml" / "models"
    gated = gated_model(serving_jobs("svm"), tmp_path / "gated") / "opt" / "ml" / "model"
    lay_out_models(root, {"gated": gated})
    site = write_plugin_site(tmp_path / "site", {SPEC.name: "tests.support.gated_algorithm:SPEC"})
    gate = make_gate(tmp_path / "load-gate")
    env = {**gated_environment(tmp_path, site, **{LOAD_GATE: gate}), **MULTI_MODEL}
    with running_server(tmp_path, env=env) as server, ThreadPoolExecutor(1) as pool:
        models = Models(server, root, gate)
        held = pool.submit(models.load, "held", "gated")
        waiting = waiter_at(gate)  # the load is under way and stays so
        try:
            assert server.stop() == 0
        finally:
            os.close(waiting)
        if held.exception(timeout=60) is None:  # answered, as uvicorn answers a cancelled task
            assert held.result().status_code == 500, held.result().text
        models.client.close()
        log = server.log()
    assert "timeout graceful shutdown exceeded" in log, log[-3000:]
    assert "Application shutdown complete" in log and "was sent SIGKILL" not in log
