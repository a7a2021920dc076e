"""A schema-driven fuzz (schemathesis) of the real `serve` against its OpenAPI description,
docs/reference/openapi.yaml.

Schemathesis generates requests for each operation from the description (valid ones and,
in its negative mode, ones that break it: wrong types, missing fields, odd headers) and
sends them to a real server: one serving the digits svm for /ping, /invocations and
/execution-parameters, one multi-model server (with the svm loaded as `digits`, the
description's example name) for the /models routes. Every answer must be no 5xx, a status
and a Content-Type the description lists, a body its schema admits, and, when it is not a
200, a JSON {"error": sentence}. The number of cases per operation is the hypothesis
profile's (tests/support/hypothesis_profiles.py); the counts are printed at the end.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.server_process import RunningServer, running_server
from tests.support.serving import JobDirs, job_environment

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTION = ROOT / "docs" / "reference" / "openapi.yaml"
MODEL_NAME = "digits"  # the description's example for model_name
CALL_TIMEOUT_S = 120.0  # a guard against a hang, never reached when it works
ONE_MODEL_PATHS = "^/(ping|invocations|execution-parameters)$"
MANY_MODEL_PATHS = "^/(ping|execution-parameters|models.*)$"

description = schemathesis.openapi.from_path(DESCRIPTION)
Operation = APIOperation[Any, Any, Any, Any]
CASES: Counter[str] = Counter()


def operations(paths: str) -> list[Operation]:
    found = []
    for result in description.include(path_regex=paths).get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the description itself is wrong
        found.append(result.ok())
    return found


def generated(operation: Operation, check: Callable[[Case[Any]], None]) -> None:
    """`check` over the profile's number of requests that schemathesis generates for the
    operation, valid ones and ones that break the description."""
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Case[Any]) -> None:
        check(case)

    run()


def error_is_a_sentence(response: Response) -> None:
    """Every answer other than 200 is {"error": "<what was wrong and what to do>"}."""
    if response.status_code == 200:
        return
    document = json.loads(response.content)
    assert list(document) == ["error"], document
    message = document["error"]
    assert isinstance(message, str) and message[:1].isupper() and len(message) > 10, message


def fuzz(case: Case[Any], server: RunningServer) -> None:
    response = case.call(base_url=server.url, timeout=CALL_TIMEOUT_S)
    CASES[f"{case.method} {case.path} -> {response.status_code}"] += 1
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    error_is_a_sentence(response)


@pytest.fixture(scope="module", autouse=True)
def report_the_counts() -> Iterator[None]:
    yield
    print(f"\nschemathesis: {sum(CASES.values())} generated requests")
    for key, count in sorted(CASES.items()):
        print(f"  {count:4d}  {key}")


@pytest.fixture(scope="module")
def one_model_server(serving_jobs: JobDirs) -> Iterator[RunningServer]:
    job_dir = serving_jobs("svm")
    env = {**job_environment(job_dir), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with running_server(job_dir, env=env) as server:
        yield server


@dataclass(frozen=True)
class ManyModels:
    server: RunningServer
    models_dir: Path  # its /opt/ml/models

    def ensure_loaded(self) -> None:
        """The example model, loaded again after a generated DELETE unloaded it."""
        with httpx.Client(base_url=self.server.url, timeout=CALL_TIMEOUT_S) as client:
            if client.get(f"/models/{MODEL_NAME}").status_code == 200:
                return
            url = str(self.models_dir / MODEL_NAME / "model")
            loaded = client.post("/models", json={"model_name": MODEL_NAME, "url": url})
            assert loaded.status_code == 200, loaded.text


@pytest.fixture(scope="module")
def many_model_server(
    serving_jobs: JobDirs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManyModels]:
    job_dir = tmp_path_factory.mktemp("fuzzed-models")
    models = job_dir / "opt" / "ml" / "models"
    shutil.copytree(serving_jobs("svm") / "opt" / "ml" / "model", models / MODEL_NAME / "model")
    env = {**job_environment(job_dir), "SAGEMAKER_MULTI_MODEL": "true"}
    with running_server(job_dir, env=env) as server:
        yield ManyModels(server, models)


@pytest.mark.slow
@pytest.mark.parametrize("operation", operations(ONE_MODEL_PATHS), ids=lambda op: op.label)
def test_one_model_server_answers_generated_requests_as_described(
    operation: Operation, one_model_server: RunningServer
) -> None:
    generated(operation, lambda case: fuzz(case, one_model_server))


@pytest.mark.slow
@pytest.mark.parametrize("operation", operations(MANY_MODEL_PATHS), ids=lambda op: op.label)
def test_multi_model_server_answers_generated_requests_as_described(
    operation: Operation, many_model_server: ManyModels
) -> None:
    def check(case: Case[Any]) -> None:
        many_model_server.ensure_loaded()
        fuzz(case, many_model_server.server)

    generated(operation, check)
