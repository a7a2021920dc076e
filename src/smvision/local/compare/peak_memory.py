"""Peak resident memory of a job's whole process tree, sampled from /proc.

A local job is three processes that live together: the `smvision.local` wrapper, the
toolkit's `train` (which imports TensorFlow to classify exceptions, even for an svm) and
the training script. Their sum is what the machine must hold, so the peak is of the sum of
their resident sets, sampled every SAMPLE_INTERVAL_S. os.wait4's ru_maxrss is exact but is
the peak of the single largest process only; the larger of the two is reported (both are
lower bounds of the true peak). Without /proc (macOS) only ru_maxrss is available.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

SAMPLE_INTERVAL_S = 0.2
PROC = Path("/proc")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def descendants(pid: int) -> list[int]:
    """Every process below pid, parents before children, from /proc (empty without it)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited while we looked
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        below = sorted(child for parent in frontier for child in children.get(parent, []))
        found.extend(below)
        frontier = below
    return found


def tree_resident_bytes(root: int) -> int:
    """Resident bytes of a process and all its descendants now (0 where /proc is missing)."""
    total = 0
    for pid in [root, *descendants(root)]:
        try:
            total += int((PROC / str(pid) / "statm").read_text().split()[1]) * _PAGE_BYTES
        except (OSError, IndexError, ValueError):
            continue  # it exited while we looked
    return total


class TreeMemorySampler:
    """Samples a process tree's resident memory in a thread until stopped; keeps the peak."""

    def __init__(self, root: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.root = root
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    @property
    def available(self) -> bool:
        return PROC.is_dir()

    def __enter__(self) -> TreeMemorySampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_resident_bytes(self.root))
            self._stop.wait(self.interval)
