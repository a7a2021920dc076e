"""The monitor's pictures: each statistic's distribution, training images against captured
ones, and the model's predicted classes and confidence against validation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smvision.monitor import distributions, drift

if TYPE_CHECKING:
    from smvision.monitor.analysis import Analysis

BASELINE_COLOUR = "#4c72b0"
CURRENT_COLOUR = "#dd8452"
DRIFT_COLOUR = "#c44e52"


def plot_features(baseline: Mapping[str, Any], analysis: Analysis, path: Path) -> Path:
    """One panel per image statistic: the two empirical distribution functions."""
    plt = _pyplot()
    checks = [c for c in analysis.checks if c.feature_name in baseline["features"]]
    columns = 4
    rows = math.ceil(len(checks) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, check in zip(axes.flat, checks):
        _cdf(
            axis,
            baseline["features"][check.feature_name],
            analysis.values[check.feature_name],
            check,
        )
    for axis in list(axes.flat)[len(checks) :]:
        axis.set_visible(False)
    axes.flat[0].legend(loc="lower right", fontsize=8)
    figure.suptitle("Captured images against the training images (cumulative share)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_predictions(baseline: Mapping[str, Any], analysis: Analysis, path: Path) -> Path:
    """Predicted-class shares and the confidence distribution, validation against captured."""
    plt = _pyplot()
    model = baseline["model"]
    figure, (classes_axis, confidence_axis) = plt.subplots(1, 2, figsize=(13, 4.5))
    names = list(baseline["class_names"])
    shown = distributions.proportions(model["predicted_classes"])
    current = distributions.proportions(analysis.predicted_counts)
    positions = np.arange(len(names))
    classes_axis.bar(
        positions - 0.2,
        [shown.get(n, 0.0) for n in names],
        0.4,
        label="validation",
        color=BASELINE_COLOUR,
    )
    classes_axis.bar(
        positions + 0.2,
        [current.get(n, 0.0) for n in names],
        0.4,
        label="captured",
        color=CURRENT_COLOUR,
    )
    classes_axis.set_xticks(positions, names, rotation=90 if len(names) > 12 else 0)
    classes_axis.set_ylabel("share of predictions")
    tallest = max([*shown.values(), *current.values(), 0.01])
    classes_axis.set_ylim(0, tallest * 1.3)  # room for the legend above the bars
    by_name = {c.feature_name: c for c in analysis.checks}
    _title(classes_axis, by_name.get("predicted_class"), "predicted class")
    classes_axis.legend(fontsize=8)
    confidence = by_name.get("confidence")
    if confidence is not None:
        _cdf(
            confidence_axis,
            model["confidence"],
            analysis.values["confidence"],
            confidence,
            baseline_label="validation",
        )
        confidence_axis.legend(loc="upper left", fontsize=8)
        confidence_axis.set_xlabel("probability of the predicted class")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _cdf(
    axis: Any,
    baseline: Mapping[str, Any],
    current: np.ndarray,
    check: drift.Check,
    baseline_label: str = "training",
) -> None:
    """Both empirical distribution functions: the baseline's from its quantiles."""
    axis.step(
        baseline["quantiles"],
        distributions.PROBABILITIES,
        where="post",
        label=f"{baseline_label} ({baseline['count']})",
        color=BASELINE_COLOUR,
    )
    ordered = np.sort(current)
    shares = np.arange(1, len(ordered) + 1) / max(len(ordered), 1)
    axis.step(
        ordered, shares, where="post", label=f"captured ({len(ordered)})", color=CURRENT_COLOUR
    )
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    _title(axis, check, check.feature_name)


def _title(axis: Any, check: drift.Check | None, name: str) -> None:
    if check is None:
        axis.set_title(name)
        return
    short = {drift.PSI: "PSI", drift.KS: "KS D", drift.CHI_SQUARE: "chi2"}[check.test]
    verdict = "DRIFT" if check.violated else "ok"
    axis.set_title(
        f"{name}: {short} {check.statistic:.3g} - {verdict}",
        fontsize=10,
        color=DRIFT_COLOUR if check.violated else "black",
    )


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
