"""The terminal display of a comparison: which algorithm runs, its stage or epoch, elapsed
and estimated time, drawn by rich from the jobs' own log lines.

Each algorithm is a bar of steps: its data loaded, then one step per epoch (the classical
algorithms' fit counts as one), the model written, serve ready, latency measured. The bar's
estimate is rich's, from the pace of the steps so far.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_LOADED = re.compile(r"Loaded (\d+) train, (\d+) validation, (\d+) test images as (\d+)x\d+x(\d+)")
_FEATURES = re.compile(r"Extracted (\d+) '([^']+)' features from (\d+) images")
_EPOCH = re.compile(r"\bepoch (\d+)/(\d+) \((\S+)")
_TRAINED = re.compile(r"Training took ([\d.]+) s")
_WRITTEN = re.compile(r"Model written to ")
# Steps besides the epochs: data loaded, model written, serve ready, latency measured.
_OTHER_STEPS = 4


@dataclass(frozen=True)
class Update:
    """What one log line says about a job's progress."""

    stage: str
    step: int | None = None  # steps done, when the line says
    epochs: int | None = None  # the job's epoch count, when the line says


def read_line(line: str, epochs: int) -> Update | None:
    """The progress a job's log line reports, or None; `epochs` is the count expected so far."""
    if match := _LOADED.search(line):
        train, validation, test, size, channels = match.groups()
        return Update(
            f"data loaded: {train} train, {validation} validation, {test} test at {size} px",
            step=1,
        )
    if match := _FEATURES.search(line):
        return Update(f"{match[1]} {match[2]} features from {match[3]} images; fitting", step=1)
    if match := _EPOCH.search(line):
        done, total = int(match[1]), int(match[2])
        return Update(f"epoch {done}/{total} ({match[3]})", step=1 + done, epochs=total)
    if match := _TRAINED.search(line):
        return Update(f"trained in {float(match[1]):.1f} s; evaluating", step=1 + epochs)
    if _WRITTEN.search(line):
        return Update("model written; starting serve", step=2 + epochs)
    return None


class Display:
    """One rich progress bar per algorithm, and one for the whole comparison."""

    def __init__(self, progress: Any, algorithms: Sequence[str], epochs: dict[str, int]) -> None:
        self.progress = progress
        self.epochs = dict(epochs)
        self.overall = progress.add_task("compare", total=len(algorithms), stage="")
        self.tasks = {
            name: progress.add_task(
                name, total=self.epochs[name] + _OTHER_STEPS, stage="waiting", start=False
            )
            for name in algorithms
        }

    def start(self, algorithm: str) -> None:
        self.progress.start_task(self.tasks[algorithm])
        self.progress.update(self.tasks[algorithm], stage="training")

    def line(self, algorithm: str, text: str) -> None:
        update = read_line(text, self.epochs[algorithm])
        if update is None:
            return
        task = self.tasks[algorithm]
        if update.epochs is not None and update.epochs != self.epochs[algorithm]:
            self.epochs[algorithm] = update.epochs
            self.progress.update(task, total=update.epochs + _OTHER_STEPS)
        self.progress.update(task, stage=update.stage, completed=update.step)

    def stage(self, algorithm: str, stage: str, steps_left: int | None = None) -> None:
        task = self.tasks[algorithm]
        completed = None
        if steps_left is not None:
            completed = self.epochs[algorithm] + _OTHER_STEPS - steps_left
        self.progress.update(task, stage=stage, completed=completed)

    def finish(self, algorithm: str, summary: str) -> None:
        task = self.tasks[algorithm]
        self.progress.update(task, stage=summary, completed=self.epochs[algorithm] + _OTHER_STEPS)
        self.progress.stop_task(task)
        self.progress.advance(self.overall)
        done = int(self.progress.tasks[self.overall].completed)
        self.progress.update(self.overall, stage=f"{done} of {len(self.tasks)} done")
        self.progress.console.print(f"{algorithm}: {summary}")


@contextmanager
def display(algorithms: Sequence[str], epochs: dict[str, int]) -> Iterator[Display]:
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(bar_width=24),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stage]}"),
    )
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a log file or CI: room for the stage, drawn once at the end
        console = Console(width=160)
    with Progress(*columns, console=console) as progress:
        yield Display(progress, algorithms, epochs)
