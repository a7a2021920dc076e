"""The docs tier: the documentation and the tooling checked against the code. Selected
with `-m docs`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiers import mark_tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "docs")
