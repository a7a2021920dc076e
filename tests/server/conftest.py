"""The server tier: the real `serve` (gunicorn, uvicorn workers) as a subprocess on
127.0.0.1, over the models of the `serving_jobs` fixture (tests/conftest.py). Selected
with `-m server`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.tiers import mark_tier

HTTP_TIMEOUT = httpx.Timeout(120.0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "server")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """An HTTP client with a timeout far above any answer's (a hang fails, not waits)."""
    with httpx.Client(timeout=HTTP_TIMEOUT) as http:
        yield http
