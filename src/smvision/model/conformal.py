"""Split-conformal prediction sets: which classes an image may be, with a coverage guarantee.

Calibration (at training time, on the validation split, which the model never trained on):
for each of the n validation images, the score s_i = 1 - p(y_i | x_i), one minus the
probability the model gives the image's true class. The scores are kept, sorted.

Prediction, for a chosen coverage 1 - alpha (serve's custom attribute `coverage=0.9`):

    k     = ceil((n + 1) * (1 - alpha))
    q     = the k-th smallest score            (q = +inf when k > n)
    C(x)  = { y : 1 - p(y | x) <= q }          = { y : p(y | x) >= 1 - q }

When the validation and the new images are exchangeable (drawn alike), the set holds the
true class with probability at least 1 - alpha, and at most 1 - alpha + 1 / (n + 1) when
scores do not tie (Vovk et al. 2005; Sadinle, Lei and Wasserman 2019, "least ambiguous
set-valued classifiers"; Angelopoulos and Bates 2021, section 1). The guarantee is
marginal, over calibration sets and images: for one calibration set the coverage on new
images is a draw from Beta(n + 1 - l, l), l = floor((n + 1) * alpha).

The model abstains (answers no label) when the set is empty (no class is likely enough)
or holds more than `max_set_size` classes (several are; default 1: it answers only
when exactly one class is left). Numpy only: serve runs it without scikit-learn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

METHOD = "split-conformal, score 1 - p(true class) (LAC), calibrated on the validation split"
# Kept scores at most: beyond this many validation images a seeded random subset (still
# exchangeable with new images, and a coverage within 1/10,001 of the target).
MAX_SCORES = 10_000
DEFAULT_MAX_SET_SIZE = 1


class ConformalError(ValueError):
    """A coverage that cannot be given, or a calibration file that cannot be read."""


@dataclass(frozen=True)
class Calibration:
    """The sorted nonconformity scores of the validation images, by test-time augmentation
    (`none`, and the job's `tta` mode when it has one)."""

    scores: Mapping[str, np.ndarray]

    @property
    def images(self) -> int:
        return len(self.scores["none"])

    def threshold(self, coverage: float, tta: str = "none") -> float:
        """q for this coverage (+inf when the validation split is too small for it)."""
        check_coverage(coverage)
        scores = self.scores.get(tta, self.scores["none"])
        k = math.ceil((len(scores) + 1) * coverage - 1e-9)
        return float(scores[k - 1]) if k <= len(scores) else math.inf

    def sets(self, probabilities: np.ndarray, coverage: float, tta: str = "none") -> np.ndarray:
        """Boolean matrix (images x classes): the classes each image's set holds."""
        return 1.0 - probabilities.astype(np.float64) <= self.threshold(coverage, tta)

    def as_json(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "validation_images": self.images,
            "scores": {mode: [float(s) for s in values] for mode, values in self.scores.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "conformal.json") -> Calibration:
        try:
            scores = {
                str(mode): np.sort(np.asarray(values, dtype=np.float64))
                for mode, values in data["scores"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ConformalError(f"{where} holds no readable scores ({error}).") from None
        if "none" not in scores or not len(scores["none"]):
            raise ConformalError(f"{where} holds no scores without test-time augmentation.")
        return cls(scores)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json()) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConformalError(f"{path} cannot be read ({error}).") from None
        return cls.from_json(data, str(path))


def check_coverage(coverage: float) -> None:
    if not 0.0 < coverage < 1.0:
        raise ConformalError(f"coverage {coverage!r}: use a probability between 0 and 1.")


def scores_of(probabilities: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Sorted scores 1 - p(true class), at most MAX_SCORES of them."""
    if labels.ndim != 1 or len(labels) != len(probabilities):
        raise ConformalError("calibration needs one class index per image (single-label).")
    scores = 1.0 - probabilities[np.arange(len(labels)), labels].astype(np.float64)
    if len(scores) > MAX_SCORES:
        scores = np.random.default_rng(seed).choice(scores, MAX_SCORES, replace=False)
    return np.sort(scores)


def calibrate(
    probabilities: Mapping[str, np.ndarray], labels: np.ndarray, seed: int = 0
) -> Calibration:
    """A calibration from validation probabilities by augmentation mode ('none' required)."""
    return Calibration({mode: scores_of(p, labels, seed) for mode, p in probabilities.items()})


def abstains(sets: np.ndarray, max_set_size: int = DEFAULT_MAX_SET_SIZE) -> np.ndarray:
    """Per image: whether the model answers no label (an empty set, or too large a one)."""
    sizes = sets.sum(axis=1)
    found: np.ndarray = (sizes == 0) | (sizes > max_set_size)
    return found


def evaluate(
    calibration: Calibration,
    probabilities: np.ndarray,
    labels: np.ndarray,
    coverage: float,
    max_set_size: int = DEFAULT_MAX_SET_SIZE,
    tta: str = "none",
) -> dict[str, Any]:
    """Empirical coverage, set sizes, abstention rate and accuracy on the answered images."""
    sets = calibration.sets(probabilities, coverage, tta)
    covered = sets[np.arange(len(labels)), labels]
    abstained = abstains(sets, max_set_size)
    answered = ~abstained
    right = probabilities.argmax(axis=1) == labels
    sizes = sets.sum(axis=1)
    return {
        "target_coverage": coverage,
        "coverage": float(covered.mean()) if len(labels) else None,
        "threshold": _finite(calibration.threshold(coverage, tta)),
        "mean_set_size": float(sizes.mean()) if len(labels) else None,
        "empty_sets": int((sizes == 0).sum()),
        "max_set_size": max_set_size,
        "abstention_rate": float(abstained.mean()) if len(labels) else None,
        "answered": int(answered.sum()),
        "accuracy_answered": float(right[answered].mean()) if answered.any() else None,
        "accuracy_all": float(right.mean()) if len(labels) else None,
    }


def _finite(value: float) -> float | None:
    """JSON has no infinity: None stands for 'every class' (too few validation images)."""
    return value if math.isfinite(value) else None
