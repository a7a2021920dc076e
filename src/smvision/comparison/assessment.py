"""From rows to a verdict: intervals, paired tests, the Pareto front and the recommendation.

    comparison = assess(rows)      # pure: numbers and the recommendation

The recommendation's rule: the most accurate row; and among the rows whose accuracy is not
significantly lower than it (exact McNemar test on the same images, p >= ALPHA; rows
evaluated on other images: the best accuracy lies inside their interval), the one that is
cheapest to serve (lowest per-image latency p50; rows without one after those with one,
then by cost per 1,000 images, then by model size). Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from smvision.comparison import stats
from smvision.comparison.rows import Row

ALPHA = 0.05


RECOMMENDATION_RULE = (
    "the most accurate; among the rows whose accuracy is not significantly lower "
    f"(exact McNemar test on the same images, p >= {ALPHA}), the cheapest to serve: lowest "
    "per-image latency p50, then cost per 1,000 images, then model size"
)


@dataclass(frozen=True)
class Assessment:
    """One row and what the report derives from it."""

    row: Row
    accuracy_interval: tuple[float, float] | None
    macro_f1_interval: tuple[float, float] | None
    # The paired test against the best row (None for the best itself and unscored rows).
    versus_best: stats.PairedTest | None
    # Not significantly less accurate than the best (the best is tied with itself).
    tied_with_best: bool
    on_pareto_front: bool

    @property
    def name(self) -> str:
        return self.row.name


@dataclass(frozen=True)
class Comparison:
    title: str
    assessments: tuple[Assessment, ...]
    best: str | None
    recommended: str | None
    confidence: float = stats.CONFIDENCE

    def get(self, name: str) -> Assessment:
        return next(a for a in self.assessments if a.name == name)

    @property
    def scored(self) -> tuple[Assessment, ...]:
        return tuple(a for a in self.assessments if a.row.scores is not None)


def assess(
    rows: Sequence[Row],
    title: str = "Which algorithm for these images?",
    confidence: float = stats.CONFIDENCE,
    seed: int = 0,
) -> Comparison:
    """Intervals for every scored row, paired tests against the best, the recommendation."""
    names = [row.name for row in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"Row names must be unique; got {', '.join(names)}.")
    scored = [row for row in rows if row.scores is not None and row.scores.count]
    best = max(scored, key=_accuracy_rank, default=None)
    front = _pareto_front(scored)
    assessments = []
    for row in rows:
        scores = row.scores
        if scores is None or not scores.count or best is None:
            assessments.append(Assessment(row, None, None, None, False, False))
            continue
        accuracy_interval = stats.wilson_interval(scores.correct, scores.count, confidence)
        labels = [p.label for p in scores.predictions]
        guesses = [p.predicted for p in scores.predictions]
        f1_interval = stats.bootstrap_macro_f1(
            labels, guesses, scores.class_names, confidence, seed=seed
        )
        paired = None
        tied = row is best
        if row is not best and best.scores is not None:
            paired = stats.mcnemar(best.scores.outcomes(), scores.outcomes())
            if paired.shared == scores.count == best.scores.count:
                tied = paired.p_value >= ALPHA
            else:  # other images: fall back to the interval
                tied = accuracy_interval[1] >= best.scores.accuracy - 1e-9
                paired = paired if paired.shared else None
        assessments.append(
            Assessment(row, accuracy_interval, f1_interval, paired, tied, row.name in front)
        )
    candidates = [a.row for a in assessments if a.tied_with_best]
    recommended = min(candidates, key=_serving_cost, default=None)
    return Comparison(
        title=title,
        assessments=tuple(assessments),
        best=best.name if best else None,
        recommended=recommended.name if recommended else None,
        confidence=confidence,
    )


def why_recommended(comparison: Comparison) -> str | None:
    """One sentence: why the recommended row wins (an accuracy tie at a lower cost, or
    significantly better accuracy)."""
    if comparison.recommended is None or comparison.best is None:
        return None
    chosen, best = comparison.get(comparison.recommended), comparison.get(comparison.best)
    assert chosen.row.scores is not None and best.row.scores is not None
    tied = [a for a in comparison.scored if a.tied_with_best and a.name != chosen.name]
    if chosen is best and not tied:
        return (
            f"{chosen.name} wins on accuracy: {_percent(chosen.row.scores.accuracy)}, and every "
            f"other row is significantly less accurate (McNemar p < {ALPHA})."
        )
    if chosen is best:
        return (
            f"{chosen.name} wins as the most accurate row "
            f"({_percent(chosen.row.scores.accuracy)}) and the cheapest to serve of those that "
            f"tie it ({_and([a.name for a in tied])}): {_costs(chosen.row, tied[0].row)}."
        )
    paired = chosen.versus_best
    p_value = f"McNemar p={paired.p_value:.2f}" if paired is not None else "within its interval"
    return (
        f"{chosen.name} wins on an accuracy tie with the most accurate row, {best.name} "
        f"({_percent(chosen.row.scores.accuracy)} against {_percent(best.row.scores.accuracy)}, "
        f"{p_value}), at a lower cost: {_costs(chosen.row, best.row)}."
    )


def _costs(row: Row, other: Row) -> str:
    """'p50 12 ms against 128 ms, trained in 106 s against 630 s' (what both rows have)."""
    parts = []
    if row.latency_p50_ms is not None and other.latency_p50_ms is not None:
        parts.append(f"p50 {row.latency_p50_ms:.1f} ms against {other.latency_p50_ms:.1f} ms")
    if row.training_seconds is not None and other.training_seconds is not None:
        parts.append(
            f"trained in {row.training_seconds:.0f} s against {other.training_seconds:.0f} s"
        )
    return ", ".join(parts) or "the lower serving cost"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _accuracy_rank(row: Row) -> tuple[float, float, float]:
    assert row.scores is not None
    latency = row.latency_p50_ms if row.latency_p50_ms is not None else math.inf
    return (row.scores.accuracy, row.scores.macro_f1, -latency)


def _serving_cost(row: Row) -> tuple[bool, float, float, float]:
    return (
        row.latency_p50_ms is None,
        row.latency_p50_ms if row.latency_p50_ms is not None else 0.0,
        row.cost_per_1000_images_usd if row.cost_per_1000_images_usd is not None else math.inf,
        row.model_bytes if row.model_bytes is not None else math.inf,
    )


def _pareto_front(rows: Sequence[Row]) -> set[str]:
    """Rows no other row beats on both accuracy (higher) and latency p50 (lower)."""
    points = [
        (row.name, row.scores.accuracy, row.latency_p50_ms)
        for row in rows
        if row.scores is not None and row.latency_p50_ms is not None
    ]
    return {
        name
        for name, accuracy, latency in points
        if not any(
            a >= accuracy and t <= latency and (a > accuracy or t < latency) for _, a, t in points
        )
    }


def pareto_front(comparison: Comparison) -> list[Assessment]:
    """The front's rows from fastest to slowest."""
    front = [a for a in comparison.assessments if a.on_pareto_front]
    return sorted(front, key=lambda a: a.row.latency_p50_ms or 0.0)
