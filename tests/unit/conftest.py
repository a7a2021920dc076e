"""The unit tier: functions and classes in the test process; no `train` or `serve`
subprocess, no AWS. Selected with `-m unit`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiers import mark_tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_tier(items, Path(__file__).parent, "unit")
