"""Things a test run makes once and every process of the run shares: the digits on disk,
the models the serving tests train.

Under pytest-xdist (`pytest -n 2`) each worker is a process with its own session
fixtures; without sharing, each would train the same models again. The workers' base
temporary folders (`.../pytest-N/popen-gw0`, `popen-gw1`) sit in the run's own folder
(`.../pytest-N`), so that is where the shared things go, each built by the first worker
that asks for it while the others wait on a file lock (fcntl.flock: released by the
kernel if its holder dies, so a crashed worker cannot wedge the rest). Without xdist the
run's folder is the session's base temporary folder itself.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

DONE_SUFFIX = ".done"


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run that every xdist worker of the run sees, and no other run."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    shared = base / "shared"
    shared.mkdir(exist_ok=True)
    return shared


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created if missing) for the block."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(target: Path, build: Callable[[Path], object]) -> Path:
    """`target`, made by `build(target)` in the first process of the run that asks for it.

    A build that raised leaves no mark: the next process to ask clears what it left and
    builds again (and most likely fails the same way, with its own message)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    done = target.with_name(target.name + DONE_SUFFIX)
    with exclusive(target.with_name(target.name + ".lock")):
        if not done.exists():
            if target.exists():
                shutil.rmtree(target)
            build(target)
            done.touch()
    return target
