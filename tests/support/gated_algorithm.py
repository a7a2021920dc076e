"""An algorithm for training and serving tests that makes "slow", "busy" and "failing" certain
by construction.

`GatedSVM` is the digits svm (a real model, loaded from the files train wrote) whose
behaviour a test steers through environment variables, read when it is called, so the
same class works in this process and inside a real `serve`:

- SMVISION_TEST_FIT_GATE, a FIFO: `fit` (in a training job) waits there, for a test that
  stops the job while it trains;
- SMVISION_TEST_LOAD_GATE, a FIFO: `load` waits until the test `release`s it;
- SMVISION_TEST_PREDICT_GATE, a FIFO: `predict_proba` on a batch that holds an all-white
  image waits until the test `release`s it (once per call);
- a batch that holds an all-black image makes `predict_proba` raise;
- SMVISION_TEST_BATCH_LOG, a file: each `predict_proba` call appends its batch size.

A gate is a FIFO because opening one for reading blocks until a writer comes: `release`
succeeds only once the algorithm waits at the gate, and the algorithm goes on only
after `release`, so neither side depends on how fast the other is.

It joins the algorithm table as any added algorithm does, through the
`smvision.algorithms` entry point of a distribution on the path (`write_plugin_site`).
"""

from __future__ import annotations

import array
import dataclasses
import fcntl
import json
import os
import shutil
import termios
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smvision.algorithms.base import History, RunContext
from smvision.algorithms.svm import SVMAlgorithm
from smvision.core.contract import EXPORT_FILE, METADATA_FILE
from smvision.data.dataset import Dataset
from smvision.schema import specs
from smvision.schema.hyperparameters import Hyperparameters

FIT_GATE = "SMVISION_TEST_FIT_GATE"
LOAD_GATE = "SMVISION_TEST_LOAD_GATE"
PREDICT_GATE = "SMVISION_TEST_PREDICT_GATE"
BATCH_LOG = "SMVISION_TEST_BATCH_LOG"
RELEASE_TIMEOUT_S = 120.0

# The svm's row of the table under another name: not through specs.get, which would load
# the entry points while this module is being loaded by them.
SPEC = dataclasses.replace(
    next(spec for spec in specs.BUILT_IN if spec.name == "svm"),
    name="gated-svm",
    implementation="tests.support.gated_algorithm:GatedSVM",
    summary="the digits svm, steered by a test (tests/support/gated_algorithm.py)",
    serve_workers=1,
)


class FailsOnBlackError(ValueError):
    """What predict_proba raises on a batch that holds an all-black image."""


class GatedSVM(SVMAlgorithm):
    def fit(
        self, train: Dataset, validation: Dataset | None, hp: Hyperparameters, run: RunContext
    ) -> History:
        _wait_at(FIT_GATE)
        return super().fit(train, validation, hp, run)

    @classmethod
    def load(cls, model_dir: Path) -> GatedSVM:
        _wait_at(LOAD_GATE)
        algorithm = super().load(model_dir)
        assert isinstance(algorithm, GatedSVM)
        return algorithm

    def predict_proba(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        log = os.environ.get(BATCH_LOG)
        if log:
            with open(log, "a") as stream:
                stream.write(f"{len(batch)}\n")
        if any(image.min() == 255 for image in batch):
            _wait_at(PREDICT_GATE)
        if any(image.max() == 0 for image in batch):
            raise FailsOnBlackError("GatedSVM refuses all-black images (as the test asked).")
        return super().predict_proba(batch)


def _wait_at(variable: str) -> None:
    gate = os.environ.get(variable)
    if not gate:
        return
    while True:  # end of file: a writer came and went without a byte; wait for the next
        with open(gate, "rb", buffering=0) as fifo:
            if fifo.read(1):
                return


def make_gate(path: Path) -> Path:
    os.mkfifo(path)
    return path


def waiter_at(gate: Path, timeout: float = RELEASE_TIMEOUT_S) -> int:
    """Once something waits at `gate` (within `timeout` seconds): a descriptor that
    `let_through` lets it go on with; until then it stays waiting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody waits at the gate yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"Nothing waited at {gate} within {timeout:g} s.") from None
            time.sleep(0.01)  # waits on a reader opening the FIFO (open has no blocking poll)


def let_through(descriptor: int, timeout: float = RELEASE_TIMEOUT_S) -> None:
    """Write the byte that lets one waiter through, and keep the gate open until a waiter
    has read it: several may wait at one gate, and those that found it empty (another
    waiter took the last byte) close and open it again; had every one of them closed it
    between this write and a read, the byte would go with the pipe and nobody would pass."""
    try:
        os.write(descriptor, b"x")
        deadline = time.monotonic() + timeout
        while _unread(descriptor):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Nobody took the byte let through within {timeout:g} s.")
            time.sleep(0.01)  # waits on a reader taking the byte (a pipe signals no reads)
    finally:
        os.close(descriptor)


def _unread(descriptor: int) -> int:
    """Bytes written to the FIFO and not read yet."""
    count = array.array("i", [0])
    fcntl.ioctl(descriptor, termios.FIONREAD, count)
    return count[0]


def release(gate: Path, timeout: float = RELEASE_TIMEOUT_S) -> None:
    """Let one waiter through `gate`, once one waits there."""
    while True:
        try:
            return let_through(waiter_at(gate, timeout), timeout)
        except BrokenPipeError:  # the waiters all closed the gate to open it again: try again
            continue


def batch_sizes(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def write_plugin_site(site: Path, entry_points: dict[str, str]) -> Path:
    """A directory that, on the path, holds a distribution adding `entry_points`
    (name -> "module:attribute") to the `smvision.algorithms` group."""
    info = site / "smvision_test_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: smvision-test-plugin\nVersion: 0.1\n"
    )
    lines = [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text(
        f"[{specs.ENTRY_POINT_GROUP}]\n" + "\n".join(lines) + "\n"
    )
    return site


def gated_model(trained_job_dir: Path, job_dir: Path) -> Path:
    """A copy of a trained svm job's model/ whose metadata.json names gated-svm, without the
    ONNX that train compiled the svm to (serve would run that in GatedSVM's place)."""
    model_dir = job_dir / "opt" / "ml" / "model"
    shutil.copytree(
        trained_job_dir / "opt" / "ml" / "model",
        model_dir,
        ignore=shutil.ignore_patterns(EXPORT_FILE, "model.onnx"),
    )
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    (model_dir / METADATA_FILE).write_text(json.dumps({**metadata, "algorithm": SPEC.name}))
    return job_dir
