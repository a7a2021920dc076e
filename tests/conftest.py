"""Shared fixtures: real data sets on disk, a clean environment, and job runners.

Every test runs with SAGEMAKER_BASE_DIR set (importing the sagemaker-training toolkit
without it creates ~/sagemaker_local) and with AWS credentials blanked, so nothing can
reach AWS by accident.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from smvision.local.job_dir import train_command
from smvision.local.samples import export_digits

ROOT = Path(__file__).resolve().parent.parent


STRAY_RECORDING = ROOT / "moto_recording"  # where moto records without MOTO_RECORDER_FILEPATH


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_recording_before] = STRAY_RECORDING.exists()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A moto server started without its recording path writes into the repository."""
    if STRAY_RECORDING.exists() and not session.config.stash.get(_recording_before, True):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\n{STRAY_RECORDING} was written by this run: start moto servers through "
              "tests/moto_server.py, which records under the test's own directory.")


_recording_before = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "unused-opt-ml"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's handwritten digits as PNG class folders: train/validation/test."""
    root = tmp_path_factory.mktemp("digits")
    export_digits(root)
    return root


@dataclass
class JobResult:
    returncode: int
    output: str
    ml: Path

    @property
    def failure(self) -> str:
        path = self.ml / "output" / "failure"
        return path.read_text() if path.exists() else ""

    @property
    def metadata(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.ml / "model" / "metadata.json").read_text())
        return document

    @property
    def evaluation(self) -> dict[str, Any]:
        path = self.ml / "output" / "data" / "evaluation.json"
        document: dict[str, Any] = json.loads(path.read_text())
        return document

    def metrics(self) -> dict[str, list[float]]:
        """Every NAME=VALUE metric line of the job's output, in order."""
        from smvision.core.metrics import METRIC_NAMES

        found: dict[str, list[float]] = {}
        for line in self.output.splitlines():
            name, _, value = line.partition("=")
            if name in METRIC_NAMES:
                found.setdefault(name, []).append(float(value))
        return found


def run_local_train(
    algorithm: str,
    channels: Mapping[str, Path],
    job_dir: Path,
    hps: Mapping[str, str] | None = None,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    manifests: Mapping[str, Path] | None = None,
    attribute_names: Sequence[str] = (),
    pipes: Sequence[str] = (),
) -> JobResult:
    """`python -m smvision.local train ...` as a subprocess, the way a user runs it."""
    completed = subprocess.run(
        train_command(algorithm, channels, job_dir, hps, manifests, attribute_names, pipes),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return JobResult(
        completed.returncode, completed.stdout + completed.stderr, job_dir / "opt" / "ml"
    )


class TrainJob(Protocol):
    """The train_job fixture: run_local_train in a fresh job directory."""

    def __call__(
        self,
        algorithm: str,
        channels: Mapping[str, Path],
        hps: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> JobResult: ...


@pytest.fixture
def train_job(tmp_path: Path) -> Iterator[TrainJob]:
    """Run a local training job in a fresh job directory under tmp_path."""
    counter = iter(range(1000))

    def run(
        algorithm: str,
        channels: Mapping[str, Path],
        hps: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> JobResult:
        return run_local_train(
            algorithm, channels, tmp_path / f"job-{next(counter)}", hps, **kwargs
        )

    yield run
