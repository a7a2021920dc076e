"""Trained job directories and running servers, shared by the serving tests.

Each algorithm is trained once per test session on the digits, with
`python -m smvision.local train` as a subprocess (small settings: a few seconds to a
minute each), and served by the real `serve` through `tests.support.server_process`.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from smvision import algorithms
from smvision.algorithms.base import Algorithm
from smvision.core.artifacts import read_metadata
from smvision.data import images
from smvision.local import cli
from smvision.schema import specs
from tests.support.server_process import RunningServer, running_server
from tests.support.training_jobs import run_local_train

ALGORITHMS = specs.names()
SERVING_HYPERPARAMETERS: dict[str, dict[str, str]] = {
    "svm": {"image_size": "32"},
    "rf": {"n_estimators": "50"},
    "cnn": {"image_size": "16", "epochs": "8"},
    "resnet50": {"image_size": "32", "epochs": "1", "fine_tune_epochs": "0", "weights": "none"},
}
TRAIN_TIMEOUT_S = 900
PROBABILITY_TOLERANCE = 1e-5


def trained_job_dir(algorithm: str, digits: Path, root: Path) -> Path:
    """A job directory whose model/ holds `algorithm` trained on the digits (trained once)."""
    job_dir = root / algorithm
    if not (job_dir / "opt" / "ml" / "model" / "metadata.json").is_file():
        channels = {split: digits / split for split in ("train", "validation", "test")}
        job = run_local_train(
            algorithm,
            channels,
            job_dir,
            SERVING_HYPERPARAMETERS[algorithm],
            timeout=TRAIN_TIMEOUT_S,
            env=job_environment(job_dir),
        )
        assert job.returncode == 0, job.output[-4000:]
    return job_dir


def job_environment(job_dir: Path) -> dict[str, str]:
    """Session fixtures run outside the per-test environment fixture: set the base dir here."""
    return {"SAGEMAKER_BASE_DIR": str(job_dir / "opt" / "ml")}


class JobDirs:
    def __init__(self, digits: Path, root: Path) -> None:
        self.digits = digits
        self.root = root

    def __call__(self, algorithm: str) -> Path:
        return trained_job_dir(algorithm, self.digits, self.root)


@pytest.fixture(scope="session")
def serving_jobs(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> JobDirs:
    """serving_jobs('svm') -> a job directory with a trained svm (trained on first use)."""
    return JobDirs(digits, tmp_path_factory.getbasetemp() / "serving-jobs")


class ServerPool:
    """One running server per algorithm, started on first use, stopped at the session's end."""

    def __init__(self, jobs: JobDirs, stack: ExitStack) -> None:
        self.jobs = jobs
        self.stack = stack
        self.servers: dict[str, RunningServer] = {}

    def __call__(self, algorithm: str) -> RunningServer:
        if algorithm not in self.servers:
            job_dir = self.jobs(algorithm)
            self.servers[algorithm] = self.stack.enter_context(
                running_server(job_dir, env=job_environment(job_dir))
            )
        return self.servers[algorithm]


@pytest.fixture(scope="session")
def servers(serving_jobs: JobDirs) -> Iterator[ServerPool]:
    with ExitStack() as stack:
        yield ServerPool(serving_jobs, stack)


@cache
def offline_model(job_dir: Path) -> tuple[Algorithm, list[str]]:
    """The model loaded in this process, as evaluation loads it: the reference for HTTP."""
    model_dir = job_dir / "opt" / "ml" / "model"
    metadata = read_metadata(model_dir)
    return algorithms.get(metadata["algorithm"]).load(model_dir), list(metadata["class_names"])


def offline_probabilities(job_dir: Path, decoded: list[np.ndarray]) -> np.ndarray:
    algorithm, _ = offline_model(job_dir)
    return algorithm.predict_proba(decoded)


def model_input(job_dir: Path) -> images.ModelInput:
    """How the job's model decodes files: its size, channels and JPEG rule, from metadata."""
    metadata = read_metadata(job_dir / "opt" / "ml" / "model")
    return images.ModelInput(
        metadata["image_size"], metadata["channels"], metadata.get("scaled_jpeg_decode") is True
    )


def offline_file_probabilities(job_dir: Path, files: list[bytes]) -> np.ndarray:
    decode = model_input(job_dir).from_file
    return offline_probabilities(job_dir, [decode(data) for data in files])


def assert_predictions_match(
    predictions: list[dict[str, Any]], expected: np.ndarray, class_names: list[str]
) -> None:
    """HTTP predictions against offline probabilities: labels equal, probabilities within 1e-5."""
    assert len(predictions) == len(expected)
    for prediction, row in zip(predictions, expected):
        best = int(np.argmax(row))
        assert prediction["label"] == class_names[best]
        assert abs(prediction["probability"] - float(row[best])) <= PROBABILITY_TOLERANCE
        got = np.array([prediction["probabilities"][name] for name in class_names])
        np.testing.assert_allclose(got, row, rtol=0, atol=PROBABILITY_TOLERANCE)


def invoke(
    client: httpx.Client,
    server: RunningServer,
    body: bytes,
    content_type: str | None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    return client.post(f"{server.url}/invocations", content=body, headers=sent)


def npy(array: np.ndarray) -> bytes:
    """An application/x-npy body: the bytes numpy.save writes."""
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def exported_copy(serving_jobs: JobDirs, tmp_path: Path, fmt: str, quantize: str) -> Path:
    """A copy of the session's cnn job (the shared one stays as trained), exported."""
    job_dir = tmp_path / "job"
    shutil.copytree(serving_jobs("cnn"), job_dir)
    command = ["export", "--job-dir", str(job_dir), "--format", fmt, "--quantize", quantize]
    assert cli.main(command) == 0
    return job_dir
