"""Checkpoints of the Keras training loop: what a restarted job resumes from.

At every epoch end the first host writes the weights, the optimizer's variables and the
loop state (phase, epoch, history, early-stopping counters) to the checkpoint directory,
which SageMaker syncs with S3 and gives back to a restarted job (managed spot training).
The state is written last and renamed into place, and only then are older epochs
removed, so the state on disk always names files that exist. A state written for other
hyperparameters or data (its fingerprint differs) is ignored, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
BEST_WEIGHTS_FILE = "best.weights.h5"
EPOCH_PREFIX = "epoch-"


@dataclass
class LoopState:
    """Everything a restarted job needs besides weights, written at every epoch end."""

    fingerprint: str
    phase: int = 0
    epoch_in_phase: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    best_loss: float | None = None
    # The epoch (counted over all phases, from 1) whose validation loss is best_loss.
    best_epoch: int | None = None
    bad_epochs: int = 0
    stopped_early: bool = False

    @property
    def epochs_done(self) -> int:
        return len(next(iter(self.history.values()), []))

    def as_record(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "phase": self.phase,
            "epoch_in_phase": self.epoch_in_phase,
            "history": self.history,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_record(cls, saved: dict[str, Any]) -> LoopState:
        best_loss, best_epoch = saved.get("best_loss"), saved.get("best_epoch")
        return cls(
            fingerprint=str(saved["fingerprint"]),
            phase=int(saved["phase"]),
            epoch_in_phase=int(saved["epoch_in_phase"]),
            history={str(k): [float(x) for x in v] for k, v in saved["history"].items()},
            best_loss=None if best_loss is None else float(best_loss),
            best_epoch=None if best_epoch is None else int(best_epoch),
            bad_epochs=int(saved.get("bad_epochs", 0)),
            stopped_early=bool(saved.get("stopped_early", False)),
        )


@dataclass(frozen=True)
class _SavedEpoch:
    weights: Path
    optimizer: Path


class Checkpoints:
    """Per-epoch weights, optimizer variables and loop state in one directory.

    `writer` is False on every host but the first: they read checkpoints, never write.
    """

    def __init__(self, directory: Path, fingerprint: str, writer: bool) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self.writer = writer
        self._saved: _SavedEpoch | None = None

    def restore_state(self) -> LoopState:
        """The saved loop state of this job, or a fresh one (nothing saved, or not ours)."""
        path = self.directory / STATE_FILE
        if not path.is_file():
            return LoopState(self.fingerprint)
        try:
            saved = json.loads(path.read_text())
            state = LoopState.from_record(saved)
            files = _SavedEpoch(
                self.directory / str(saved["weights"]), self.directory / str(saved["optimizer"])
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("Ignoring %s, which is not a state smvision wrote (%s).", path, error)
            return LoopState(self.fingerprint)
        if state.fingerprint != self.fingerprint:
            log.warning(
                "Ignoring the checkpoint in %s: it belongs to a job with other "
                "hyperparameters or data; training starts afresh.",
                self.directory,
            )
            return LoopState(self.fingerprint)
        missing = [p.name for p in (files.weights, files.optimizer) if not p.is_file()]
        if missing:
            log.warning(
                "Ignoring the checkpoint in %s: %s names %s, which are missing; training "
                "starts afresh.",
                self.directory,
                STATE_FILE,
                ", ".join(missing),
            )
            return LoopState(self.fingerprint)
        self._saved = files
        return state

    def restore_weights(self, model: Any, optimizer: Any) -> None:
        """Load the weights and optimizer variables that restore_state() found."""
        if self._saved is None:
            raise RuntimeError("restore_weights() without a checkpoint that restore_state() found.")
        model.load_weights(self._saved.weights)
        with np.load(self._saved.optimizer) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(values) != len(optimizer.variables):
            raise RuntimeError(
                f"{self._saved.optimizer} holds {len(values)} optimizer variables, the "
                f"optimizer has {len(optimizer.variables)}."
            )
        for variable, value in zip(optimizer.variables, values):
            variable.assign(value)

    def save(self, model: Any, optimizer: Any, state: LoopState, best: bool = False) -> None:
        """This epoch's files, then the state that names them, then drop older epochs.
        `best`: keep this epoch's weights as the best too (a hard link: ResNet50's 94 MB
        are written once an epoch, not twice)."""
        if not self.writer:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tag = f"{EPOCH_PREFIX}{state.epochs_done:04d}"
        weights, optimizer_file = f"{tag}.weights.h5", f"{tag}.optimizer.npz"
        model.save_weights(self.directory / weights)
        if best:
            self._keep_as_best(self.directory / weights, model)
        np.savez(self.directory / optimizer_file, *[np.asarray(v) for v in optimizer.variables])
        record = state.as_record() | {"weights": weights, "optimizer": optimizer_file}
        temporary = self.directory / f".{STATE_FILE}.tmp"
        with open(temporary, "w") as stream:
            json.dump(record, stream)
        os.replace(temporary, self.directory / STATE_FILE)
        for old in self.directory.glob(f"{EPOCH_PREFIX}*"):
            if not old.name.startswith(tag):
                old.unlink(missing_ok=True)

    def save_best(self, model: Any) -> None:
        if not self.writer:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{BEST_WEIGHTS_FILE}"
        model.save_weights(temporary)
        os.replace(temporary, self.directory / BEST_WEIGHTS_FILE)

    def _keep_as_best(self, weights: Path, model: Any) -> None:
        temporary = self.directory / f".{BEST_WEIGHTS_FILE}"
        temporary.unlink(missing_ok=True)
        try:
            os.link(weights, temporary)
        except OSError:  # a file system without hard links: write them again
            model.save_weights(temporary)
        os.replace(temporary, self.directory / BEST_WEIGHTS_FILE)

    def has_best(self) -> bool:
        return (self.directory / BEST_WEIGHTS_FILE).is_file()

    def restore_best(self, model: Any) -> None:
        model.load_weights(self.directory / BEST_WEIGHTS_FILE)


def workers_agree(strategy: Any, epochs_done: int) -> bool:
    """Whether every replica resumes from the same epoch (all-reduce: n*sum(e^2) == sum(e)^2)."""
    import tensorflow as tf

    local = tf.constant([epochs_done, epochs_done * epochs_done], dtype=tf.float64)
    totals = strategy.reduce("SUM", strategy.run(lambda: tf.identity(local)), axis=None).numpy()
    return bool(strategy.num_replicas_in_sync * totals[1] == totals[0] ** 2)
