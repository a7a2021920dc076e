"""A distribution as baseline.json keeps it: the count and 101 quantiles (0%, 1%, ... 100%).

Quantiles are small, readable and enough for a two-sample test: `sample` rebuilds a sample
of the original size whose empirical distribution matches them, which the Kolmogorov-Smirnov
test and the population stability index then compare with the captured values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PROBABILITIES = np.linspace(0.0, 1.0, 101)


def summarize(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return {"count": 0, "mean": None, "std": None, "quantiles": []}
    return {
        "count": int(len(values)),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "quantiles": [float(q) for q in np.quantile(values, PROBABILITIES)],
    }


def sample(summary: Mapping[str, Any]) -> np.ndarray:
    """`count` values spread over the summary's quantiles (its empirical distribution)."""
    count = int(summary["count"])
    quantiles = np.asarray(summary["quantiles"], dtype=np.float64)
    if count < 1 or len(quantiles) != len(PROBABILITIES):
        raise ValueError(
            f"a distribution needs a count >= 1 and {len(PROBABILITIES)} quantiles; got "
            f"count {count} and {len(quantiles)} quantiles"
        )
    positions = (np.arange(count) + 0.5) / count
    return np.interp(positions, PROBABILITIES, quantiles)


def median(summary: Mapping[str, Any]) -> float | None:
    quantiles = summary.get("quantiles") or []
    return float(quantiles[len(quantiles) // 2]) if quantiles else None


def class_counts(labels: Sequence[str], class_names: Sequence[str]) -> dict[str, int]:
    """How often each class occurs, every class named (zero when absent)."""
    counts = dict.fromkeys(class_names, 0)
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return counts


def proportions(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: (count / total if total else 0.0) for name, count in counts.items()}
