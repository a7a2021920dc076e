"""The job tier: the image's training command (`python -m smvision.local train`) as a
subprocess over a temporary /opt/ml. Selected with `-m job`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.tiers import mark_tier
from tests.support.training_jobs import JobResult, TrainJob, run_local_train


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "job")


@pytest.fixture
def train_job(tmp_path: Path) -> Iterator[TrainJob]:
    """train_job(algorithm, channels, hps, **run_local_train's options) -> JobResult: a
    local training job in a fresh job directory under tmp_path."""
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
