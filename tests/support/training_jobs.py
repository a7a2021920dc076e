"""A local training job run as a user runs it, and what it left behind."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from smvision.local.job_dir import train_command


@dataclass
class JobResult:
    returncode: int
    output: str
    ml: Path

    @property
    def failure(self) -> str:
        path = self.ml / "output" / "failure"
        return path.read_text() if path.exists() else ""

    @property
    def metadata(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.ml / "model" / "metadata.json").read_text())
        return document

    @property
    def evaluation(self) -> dict[str, Any]:
        path = self.ml / "output" / "data" / "evaluation.json"
        document: dict[str, Any] = json.loads(path.read_text())
        return document

    def metrics(self) -> dict[str, list[float]]:
        """Every NAME=VALUE metric line of the job's output, in order."""
        from smvision.core.metrics import METRIC_NAMES

        found: dict[str, list[float]] = {}
        for line in self.output.splitlines():
            name, _, value = line.partition("=")
            if name in METRIC_NAMES:
                found.setdefault(name, []).append(float(value))
        return found


def run_local_train(
    algorithm: str,
    channels: Mapping[str, Path],
    job_dir: Path,
    hps: Mapping[str, str] | None = None,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    manifests: Mapping[str, Path] | None = None,
    attribute_names: Sequence[str] = (),
    pipes: Sequence[str] = (),
) -> JobResult:
    """`python -m smvision.local train ...` as a subprocess, the way a user runs it."""
    completed = subprocess.run(
        train_command(algorithm, channels, job_dir, hps, manifests, attribute_names, pipes),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return JobResult(
        completed.returncode, completed.stdout + completed.stderr, job_dir / "opt" / "ml"
    )


class TrainJob(Protocol):
    """The train_job fixture: run_local_train in a fresh job directory."""

    def __call__(
        self,
        algorithm: str,
        channels: Mapping[str, Path],
        hps: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> JobResult: ...
