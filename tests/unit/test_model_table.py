"""The multi-model table in this process, over the digits svm that
`tests.support.serving` trains once per session: what many unloads at once cost
the event loop."""

from __future__ import annotations

import asyncio
import math
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from smvision.core import contract
from smvision.serving import process_memory
from smvision.serving.loading import LoadedModel, plan
from smvision.serving.model_table import ModelTable
from smvision.serving.settings import settings_from
from tests.support.serving import JobDirs

UNLOADS = 12
GUARD_S = 120.0  # a guard against a hang, never reached when it works


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        await asyncio.sleep(0.01)  # waits on threads of the table: they signal nothing


def test_unloads_at_once_share_the_memory_release(
    serving_jobs: JobDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A memory release (with a full garbage collection, which holds the GIL throughout,
    where the model leaves cycles) runs for every unload that asked before it began: while
    the first is held, the others queue up for one more, rather than each running its own
    and the event loop waiting for them all (sixty DELETEs at once had /ping wait 8.5 s).
    An svm leaves no cycles: its unloads collect nothing."""
    shutil.copytree(serving_jobs("svm") / "opt" / "ml" / "model", tmp_path / "models" / "svm")
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), "SAGEMAKER_MULTI_MODEL": "true"}
    settings = settings_from(contract.load(environ), cores=1)
    url = str(tmp_path / "models" / "svm")

    release = process_memory.release_freed_memory
    running: list[int] = []
    most_at_once = 0
    started = threading.Event()
    let_go = threading.Event()

    calls: list[bool] = []

    def held_release(collect: bool) -> None:
        nonlocal most_at_once
        calls.append(collect)
        running.append(1)
        most_at_once = max(most_at_once, len(running))
        started.set()
        let_go.wait(GUARD_S)
        release(collect)
        running.pop()

    monkeypatch.setattr(process_memory, "release_freed_memory", held_release)

    async def unload_all() -> list[str]:
        table = ModelTable(
            lambda path: plan(path, settings),
            lambda path, given_up: LoadedModel.load(path, settings, given_up),
            math.inf,
            5.0,
            load_timeout_s=GUARD_S,
            unload_timeout_s=GUARD_S,
        )
        names = [f"m{index}" for index in range(UNLOADS)]
        for name in names:
            await table.load(name, url)
        first = asyncio.ensure_future(table.unload(names[0]))
        await until(started.is_set)  # the first release runs, held
        rest = [asyncio.ensure_future(table.unload(name)) for name in names[1:]]
        await until(lambda: table.memory_release.waiting == len(rest))
        let_go.set()
        unloaded = await asyncio.gather(first, *rest)
        return [entry.name for entry in unloaded]

    assert asyncio.run(unload_all()) == [f"m{index}" for index in range(UNLOADS)]
    assert len(calls) == 2  # the held one, and one for the other UNLOADS - 1
    assert most_at_once == 1
    assert calls == [False, False]  # an svm leaves no cycles: no collection holds the GIL
