"""One evaluated split, as the pictures take it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smvision.data.dataset import Dataset


@dataclass(frozen=True)
class Evaluated:
    """One evaluated split: its images and labels, and the model's probabilities."""

    split: str
    dataset: Dataset
    probabilities: np.ndarray
