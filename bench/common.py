"""What every benchmark shares: repeated figures, their store, and a description of the machine."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "tensorflow-cpu",
    "keras",
    "scikit-learn",
    "scikit-image",
    "numpy",
    "opencv-python-headless",
    "gunicorn",
    "uvicorn",
    "uvloop",
    "httptools",
    "flask",
)


@dataclass
class Figure:
    """One measured quantity over repeated runs."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


def key(*parts: str) -> str:
    return "/".join(parts)


class Store(dict[str, Figure]):
    """Figures by key ('svm/china.jpg/serve/c8/rps'), filled one value at a time."""

    def add(self, name: str, unit: str, value: float) -> None:
        self.setdefault(name, Figure(name, unit)).values.append(float(value))

    def merge(self, figures: dict[str, Figure]) -> None:
        for name, figure in figures.items():
            self[name] = figure

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({k: asdict(v) for k, v in self.items()}, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Store:
        store = cls()
        for name, figure in json.loads(path.read_text()).items():
            store[name] = Figure(**figure)
        return store


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine_description() -> list[str]:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    cores = len(os.sched_getaffinity(0))
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {commit or 'unknown'}",
        f"- Machine: {cores} cores ({cpu}){memory}; {platform.platform()}",
        f"- Python {platform.python_version()}",
        "- " + ", ".join(versions),
    ]
