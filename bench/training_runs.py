"""The trained job directories the benchmarks serve: real digits, `smvision.local train`.

svm, rf and cnn train on scikit-learn's digits (exported as PNG class folders) with
their default hyperparameters, except image_size 64 (pinned: "auto" would pick 32 for the
8x8 digits, and RESULTS.md measures serving at 64 px) and fewer cnn epochs: speed does not
depend on accuracy. resnet50 (only its start-up time is measured) trains one head
epoch from no starting weights, at its default 224 pixels, on a thirtieth of the digits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from smvision.local.job_dir import train_command
from smvision.local.samples import export_digits

HYPERPARAMETERS: dict[str, dict[str, str]] = {
    "svm": {"image_size": "64"},
    "rf": {"image_size": "64"},
    "cnn": {"image_size": "64", "epochs": "1"},
    "resnet50": {"epochs": "1", "fine_tune_epochs": "0", "weights": "none"},
}
SMALL_SUBSET_EVERY = 30


class TrainingFailedError(RuntimeError):
    """`smvision.local train` exited with an error; the message holds its output's tail."""


def digits(root: Path) -> Path:
    """scikit-learn's digits as PNG class folders in root/{train,validation,test}/<digit>/."""
    export_digits(root)
    return root


def subset(source: Path, destination: Path, every: int = SMALL_SUBSET_EVERY) -> Path:
    """Every `every`-th file of each class folder of each split (keeps every class)."""
    for folder in sorted(p for p in source.glob("*/*") if p.is_dir()):
        target = destination / folder.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.iterdir())[::every]:
            shutil.copy2(path, target / path.name)
    return destination


def channels(data: Path, splits: tuple[str, ...] = ("train", "validation")) -> dict[str, Path]:
    return {split: data / split for split in splits}


def train(
    algorithm: str,
    job_channels: Mapping[str, Path],
    job_dir: Path,
    hyperparameters: Mapping[str, str] | None = None,
) -> tuple[str, float]:
    """`python -m smvision.local train` into job_dir: (its output, seconds)."""
    hps = HYPERPARAMETERS[algorithm] if hyperparameters is None else hyperparameters
    command = train_command(algorithm, job_channels, job_dir, hps)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(job_dir / "opt" / "ml")}
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "train.log").write_text(output)
    if completed.returncode != 0:
        raise TrainingFailedError(
            f"{' '.join(command)} exited with {completed.returncode}:\n{output[-4000:]}"
        )
    return output, seconds
