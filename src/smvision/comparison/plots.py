"""The report's three pictures. matplotlib is imported when a picture is drawn, not before.

- accuracy against training time (log scale), with each accuracy's interval;
- accuracy against per-image serving latency p50 (log scale): the Pareto front (no row is
  both more accurate and faster) as a step line, the recommended row ringed;
- F1 per class as a heatmap, a row per algorithm and a column per class.

Rows without the value a picture needs (no training time for a managed service, no
latency for a SageMaker job, no scores for a failed run) are named under the picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smvision.comparison.assessment import Assessment, Comparison, pareto_front

PLOT_FILES = {
    "accuracy_vs_training_time": "accuracy_vs_training_time.png",
    "accuracy_vs_latency": "accuracy_vs_latency.png",
    "per_class_f1": "per_class_f1.png",
}


def draw_all(comparison: Comparison, out_dir: Path) -> dict[str, str]:
    """Draw the three pictures into out_dir; returns {picture: file name}."""
    accuracy_vs_training_time(comparison, out_dir / PLOT_FILES["accuracy_vs_training_time"])
    accuracy_vs_latency(comparison, out_dir / PLOT_FILES["accuracy_vs_latency"])
    per_class_f1(comparison, out_dir / PLOT_FILES["per_class_f1"])
    return dict(PLOT_FILES)


def accuracy_vs_training_time(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    shown, missing = _split(comparison, lambda a: a.row.training_seconds)
    for a in shown:
        _point(axis, a, a.row.training_seconds, comparison)
    _finish(axis, "training time (s, log scale)", "Accuracy against training time", shown)
    _caption(figure, missing, "no training time")
    _save(plt, figure, path)


def accuracy_vs_latency(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    shown, missing = _split(comparison, lambda a: a.row.latency_p50_ms)
    for a in shown:
        _point(axis, a, a.row.latency_p50_ms, comparison)
    front = pareto_front(comparison)
    if front:
        xs = [a.row.latency_p50_ms for a in front]
        ys = [a.row.scores.accuracy * 100 for a in front if a.row.scores]
        axis.step(xs, ys, where="post", color="tab:green", alpha=0.6, label="Pareto front")
    recommended = next((a for a in shown if a.name == comparison.recommended), None)
    if recommended is not None and recommended.row.scores is not None:
        axis.scatter(
            [recommended.row.latency_p50_ms],
            [recommended.row.scores.accuracy * 100],
            s=320,
            facecolors="none",
            edgecolors="tab:red",
            linewidths=2,
            label=f"recommended: {recommended.name}",
            zorder=4,
        )
    _finish(
        axis,
        "serving latency p50, one image with decoding (ms, log scale)",
        "Accuracy against serving latency",
        shown,
    )
    _caption(figure, missing, "no latency measured")
    _save(plt, figure, path)


def per_class_f1(comparison: Comparison, path: Path) -> None:
    plt = _pyplot()
    scored = comparison.scored
    classes: list[str] = []
    for a in scored:
        assert a.row.scores is not None
        classes += [c for c in a.row.scores.class_names if c not in classes]
    values = [
        [a.row.scores.per_class_f1().get(c, float("nan")) for c in classes]
        for a in scored
        if a.row.scores is not None
    ]
    width = max(5.0, 0.6 * len(classes) + 2.5)
    figure, axis = plt.subplots(figsize=(width, max(3.0, 1.2 + 0.45 * len(scored))))
    if values:
        # The colour scale starts at the worst score (rounded down to a tenth), so that
        # 0.91 and 1.00 do not look alike.
        finite = [v for line in values for v in line if v == v]
        low = min(0.9, math.floor(10 * min(finite, default=0.0)) / 10)
        image = axis.imshow(values, cmap="viridis", vmin=low, vmax=1.0, aspect="auto")
        figure.colorbar(image, ax=axis, label="F1")
        axis.set_xticks(range(len(classes)), classes, rotation=90 if len(classes) > 12 else 0)
        axis.set_yticks(range(len(scored)), [a.name for a in scored])
        if len(classes) <= 20:
            for row, line in enumerate(values):
                for column, value in enumerate(line):
                    colour = "black" if value > low + 0.6 * (1 - low) else "white"
                    axis.text(
                        column,
                        row,
                        f"{value:.{3 if len(classes) <= 12 else 2}f}",
                        ha="center",
                        va="center",
                        color=colour,
                        fontsize=8,
                    )
        axis.set_xlabel("class")
    else:
        axis.text(0.5, 0.5, "no scored rows", ha="center", va="center")
        axis.set_axis_off()
    axis.set_title("F1 per class")
    missing = [a.name for a in comparison.assessments if a.row.scores is None]
    _caption(figure, missing, "no scores")
    _save(plt, figure, path)


def _split(comparison: Comparison, x: Any) -> tuple[list[Assessment], list[str]]:
    shown = [a for a in comparison.scored if x(a) is not None and x(a) > 0]
    missing = [a.name for a in comparison.assessments if a not in shown]
    return shown, missing


def _point(axis: Any, a: Assessment, x: float | None, comparison: Comparison) -> None:
    assert a.row.scores is not None
    y = a.row.scores.accuracy * 100
    low, high = a.accuracy_interval or (a.row.scores.accuracy, a.row.scores.accuracy)
    colour = "tab:blue" if a.tied_with_best else "tab:grey"
    below, above = max(0.0, y - low * 100), max(0.0, high * 100 - y)  # Wilson vs rounding
    axis.errorbar([x], [y], yerr=[[below], [above]], fmt="o", color=colour, capsize=4, zorder=3)
    axis.annotate(a.name, (x, y), textcoords="offset points", xytext=(7, 5), fontsize=9)


def _finish(axis: Any, xlabel: str, title: str, shown: Sequence[Assessment]) -> None:
    axis.set_xscale("log")
    plain = _plain_numbers()
    axis.xaxis.set_major_formatter(plain)
    axis.xaxis.set_minor_formatter(plain)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("accuracy (%), 95% interval")
    axis.set_title(title + "  (blue: not significantly below the best)", fontsize=10)
    axis.grid(alpha=0.3, which="both")
    if shown:
        xs = [line.get_xdata()[0] for line in axis.get_lines() if len(line.get_xdata())]
        if xs:
            axis.set_xlim(min(xs) / 2, max(xs) * 3)
    handles, _ = axis.get_legend_handles_labels()
    if handles:
        axis.legend(loc="best", fontsize=8)


def _plain_numbers() -> Any:
    """Log-axis tick labels as 0.5, 2, 30 (not 5x10^-1), only at 1, 2 and 5 times a power of 10."""
    from matplotlib.ticker import FuncFormatter

    def label(value: float, _position: object) -> str:
        leading = round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
        return f"{value:g}" if leading in (1, 2, 5) else ""

    return FuncFormatter(label)


def _caption(figure: Any, names: Sequence[str], reason: str) -> None:
    if names:
        figure.text(
            0.01, 0.01, f"not shown ({reason}): {', '.join(names)}", fontsize=8, color="dimgrey"
        )


def _save(plt: Any, figure: Any, path: Path) -> None:
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
