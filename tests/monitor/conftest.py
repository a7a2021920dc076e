"""The monitor tier: the image's `monitor` and `gate` over data captured from the real
`serve`. Selected with `-m monitor`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiers import mark_tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "monitor")
