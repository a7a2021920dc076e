"""How each tier's conftest.py marks its tests, so that `-m unit`, `-m server` and the
rest select a tier (the markers are registered in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest


def mark_tier(items: list[pytest.Item], folder: Path, marker: str) -> None:
    """Add `marker` to every collected test whose file lies under `folder`.

    pytest hands every conftest's pytest_collection_modifyitems all of the session's
    items, not only those under its folder, hence the filter."""
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(marker)
