"""The launch tier: `python -m launch ...` against a moto server on 127.0.0.1
(tests/support/moto_server.py). Selected with `-m launch`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.moto_server import REGION, MotoServer, clean_aws
from tests.support.tiers import mark_tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "launch")


@pytest.fixture
def aws(moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The module's moto server, emptied but for the test bucket, with this process's
    environment pointed at it and no request recorded yet. A module that needs more in
    AWS before each test (a model in S3, an endpoint) overrides it."""
    return clean_aws(moto_server, tmp_path, monkeypatch)


@pytest.fixture
def s3(aws: MotoServer) -> Any:
    """The server's S3, one client per test (each new boto3 session reloads the models)."""
    import boto3

    return boto3.session.Session(region_name=REGION).client("s3")
