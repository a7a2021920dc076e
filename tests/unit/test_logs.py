"""logs.py: the one log setup of `train` and `serve`."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from smvision.core import logs


@pytest.fixture
def restored_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("given, kept", [(None, "2"), ("0", "0"), ("3", "3")])
def test_tensorflow_native_logs_are_quieted_unless_the_user_chose_a_level(
    monkeypatch: pytest.MonkeyPatch, restored_root_logger: None, given: str | None, kept: str
) -> None:
    if given is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", given)
    logs.configure_logging()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == kept
