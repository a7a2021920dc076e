"""From rows to a verdict: intervals, paired tests, the recommendation, comparison.md/json.

    comparison = assess(rows)                  # pure: numbers and the recommendation
    write_report(rows, out_dir, title=...)     # comparison.md, comparison.json, the plots

The recommendation's rule: the most accurate row; and among the rows whose accuracy is not
significantly lower than it (exact McNemar test on the same images, p >= ALPHA; rows
evaluated on other images: the best accuracy lies inside their interval), the one that is
cheapest to serve (lowest per-image latency p50; rows without one after those with one,
then by cost per 1,000 images, then by model size). Standard library only, except that the
plots import matplotlib when drawn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smvision.comparison import stats
from smvision.comparison.rows import Row

ALPHA = 0.05
PLOT_FILES = {
    "accuracy_vs_training_time": "accuracy_vs_training_time.png",
    "accuracy_vs_latency": "accuracy_vs_latency.png",
    "per_class_f1": "per_class_f1.png",
}
RECOMMENDATION_RULE = (
    "the most accurate; among the rows whose accuracy is not significantly lower "
    f"(exact McNemar test on the same images, p >= {ALPHA}), the cheapest to serve: lowest "
    "per-image latency p50, then cost per 1,000 images, then model size"
)
QUALITY_RULES = {
    "Data needed": "the algorithm table's rule of thumb for how many labelled images the "
    "method needs to do well, then how many training images per class this run had",
    "Interpretability": "what a person can inspect of a decision: named hand-made features "
    "(HOG cells, colour bins) and tree importances rank above learned filters, which need "
    "saliency methods; a managed service shows label names only",
    "Setup": "what must exist before the first training run (libraries, weights, hardware, "
    "an AWS account)",
}


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


# Writing ------------------------------------------------------------------------------------


def write_report(
    rows: Sequence[Row],
    out_dir: Path,
    title: str = "Which algorithm for these images?",
    context: Sequence[str] = (),
    measured: Mapping[str, str] | None = None,
    plots: bool = True,
) -> Comparison:
    """Write comparison.md, comparison.json and (with `plots`) the three PNGs into out_dir.

    `context` lines open the report (the data set, the machine); `measured` says how each
    measured column was obtained where this run measured it (column name -> sentence).
    """
    comparison = assess(rows, title)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, str] = {}
    if plots:
        from smvision.comparison import plots as plotting

        drawn = plotting.draw_all(comparison, out_dir)
    (out_dir / "comparison.md").write_text(
        render_markdown(comparison, context, measured or {}, drawn)
    )
    (out_dir / "comparison.json").write_text(
        json.dumps(to_json(comparison, context, measured or {}), indent=2) + "\n"
    )
    return comparison


def to_json(
    comparison: Comparison, context: Sequence[str] = (), measured: Mapping[str, str] | None = None
) -> dict[str, Any]:
    rows = []
    for a in comparison.assessments:
        data = a.row.to_json()
        scores = a.row.scores
        data["derived"] = {
            "split": scores.split if scores else None,
            "count": scores.count if scores else None,
            "accuracy": scores.accuracy if scores else None,
            "accuracy_interval": a.accuracy_interval,
            "macro_f1": scores.macro_f1 if scores else None,
            "macro_f1_interval": a.macro_f1_interval,
            "per_class_f1": scores.per_class_f1() if scores else None,
            "versus_best": None
            if a.versus_best is None
            else {
                "shared_images": a.versus_best.shared,
                "only_best_right": a.versus_best.only_first_right,
                "only_this_right": a.versus_best.only_second_right,
                "p_value": a.versus_best.p_value,
            },
            "tied_with_best": a.tied_with_best,
            "on_pareto_front": a.on_pareto_front,
        }
        rows.append(data)
    return {
        "title": comparison.title,
        "context": list(context),
        "confidence": comparison.confidence,
        "alpha": ALPHA,
        "best": comparison.best,
        "recommended": comparison.recommended,
        "recommendation_rule": RECOMMENDATION_RULE,
        "quality_rules": QUALITY_RULES,
        "measured": dict(measured or {}),
        "rows": rows,
    }


def render_markdown(
    comparison: Comparison,
    context: Sequence[str] = (),
    measured: Mapping[str, str] | None = None,
    plots: Mapping[str, str] | None = None,
) -> str:
    lines = [f"# {comparison.title}", ""]
    lines += [f"{line}  " for line in context]
    lines += ["", *_verdict(comparison), ""]
    lines += ["## The guide's table, measured", "", *_guide_table(comparison), ""]
    lines += ["## What it costs to train and serve", "", *_cost_table(comparison), ""]
    per_class = _per_class_table(comparison)
    if per_class:
        lines += ["## F1 per class", "", *per_class, ""]
    failed = [a.row for a in comparison.assessments if a.row.failed]
    if failed:
        lines += ["## Failed runs", ""]
        lines += [f"- **{row.name}**: {_one_line(row.failure or '')}" for row in failed]
        lines.append("")
    notes = [(a.row.name, note) for a in comparison.assessments for note in a.row.notes]
    if notes:
        lines += ["## Notes", ""] + [f"- {name}: {note}" for name, note in notes] + [""]
    lines += ["## How each column was obtained", "", *_methods(comparison, measured or {}), ""]
    for key, file in (plots or {}).items():
        lines += [f"![{key.replace('_', ' ')}]({file})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _verdict(comparison: Comparison) -> list[str]:
    scored = comparison.scored
    if not scored:
        return ["**No row has scores**: every run failed (see below)."]
    best = comparison.get(comparison.best or "")
    assert best.row.scores is not None
    count, split = best.row.scores.count, best.row.scores.split
    margin = stats.smallest_detectable_difference(
        best.row.scores.accuracy, count, comparison.confidence
    )
    tied = [a.name for a in scored if a.tied_with_best and a.name != best.name]
    lines = [
        f"**Recommended: {comparison.recommended}** (rule: {RECOMMENDATION_RULE}).",
        "",
        f"Most accurate: {best.name}, {_percent(best.row.scores.accuracy)} on {count} {split} "
        "images"
        + (
            f"; not significantly better than {_and(tied)}."
            if tied
            else "; every other row is significantly less accurate."
        ),
        f"How sure: on {count} images the {comparison.confidence:.0%} interval around "
        f"{_percent(best.row.scores.accuracy)} spans ±{100 * margin:.1f} points; the "
        "'vs best' column gives the exact McNemar p-value on the same images (images only one "
        "of the two got right), which decides whether a difference is real.",
    ]
    return lines


def _guide_table(comparison: Comparison) -> list[str]:
    header = [
        "Algorithm",
        "Accuracy (95% CI)",
        "Macro-F1 (95% CI)",
        "vs best (McNemar)",
        "Training time",
        "Data needed",
        "Interpretability",
        "Setup",
    ]
    body = []
    for a in comparison.assessments:
        row = a.row
        data = row.qualities.data_needed or "n/a"
        if row.train_images is not None and row.scores is not None:
            per_class = row.train_images / max(1, len(row.scores.class_names))
            data += f"; this run: {per_class:.0f} per class"
        body.append(
            [
                _name(a, comparison),
                _with_interval(row.scores.accuracy if row.scores else None, a.accuracy_interval),
                _f1_with_interval(row.scores.macro_f1 if row.scores else None, a.macro_f1_interval),
                _versus_best(a, comparison),
                _seconds(row.training_seconds) if not row.failed else "failed",
                data,
                row.qualities.interpretability or "n/a",
                row.qualities.setup or "n/a",
            ]
        )
    return _table(header, body)


def _cost_table(comparison: Comparison) -> list[str]:
    header = [
        "Algorithm",
        "Where",
        "Train (s)",
        "Train images/s",
        "Peak memory",
        "Model size",
        "Latency p50, 1 image (ms)",
        "Images/s, batch 32",
        "Serve ready (s)",
        "Training cost",
        "Per 1,000 images",
    ]
    body = []
    for a in comparison.assessments:
        row = a.row
        body.append(
            [
                _name(a, comparison),
                " ".join(filter(None, (row.where, row.instance_type))),
                _number(row.training_seconds, 1),
                _number(row.training_images_per_second, 0),
                _bytes(row.peak_memory_bytes),
                _bytes(row.model_bytes),
                _number(row.latency_p50_ms, 2),
                _number(row.batch32_images_per_second, 0),
                _number(row.seconds_to_ready, 1),
                _dollars(row.training_cost_usd),
                _dollars(row.cost_per_1000_images_usd),
            ]
        )
    return _table(header, body)


def _per_class_table(comparison: Comparison) -> list[str]:
    scored = comparison.scored
    classes: list[str] = []
    for a in scored:
        assert a.row.scores is not None
        classes += [c for c in a.row.scores.class_names if c not in classes]
    if not scored or len(classes) > 20:
        return []
    body = []
    for a in scored:
        assert a.row.scores is not None
        f1 = a.row.scores.per_class_f1()
        body.append([a.name] + [_number(f1.get(c), 3) for c in classes])
    return _table(["Algorithm", *classes], body)


def _methods(comparison: Comparison, measured: Mapping[str, str]) -> list[str]:
    scored = comparison.scored
    split = ", ".join(sorted({a.row.scores.split for a in scored if a.row.scores})) or "n/a"
    lines = [
        f"- Accuracy and macro-F1: on the {split} split, from each job's evaluation.json. "
        f"Accuracy's interval is Wilson's score interval; macro-F1's is a percentile bootstrap "
        f"({stats.BOOTSTRAP_RESAMPLES} resamples of the images).",
        "- vs best: exact McNemar test against the most accurate row on the same images; "
        f"p < {ALPHA} means the difference is unlikely to be chance at this test-set size.",
    ]
    lines += [f"- {column}: {sentence}" for column, sentence in measured.items()]
    lines += [f"- {column} (judged): {rule}." for column, rule in QUALITY_RULES.items()]
    return lines


def _name(a: Assessment, comparison: Comparison) -> str:
    marks = []
    if a.name == comparison.recommended:
        marks.append("recommended")
    if a.on_pareto_front:
        marks.append("Pareto")
    return f"**{a.name}**" + (f" ({', '.join(marks)})" if marks else "")


def _versus_best(a: Assessment, comparison: Comparison) -> str:
    if a.row.scores is None:
        return "n/a"
    if a.name == comparison.best:
        return "best"
    if a.versus_best is None:
        return "other images" + (" (within CI)" if a.tied_with_best else "")
    test = a.versus_best
    verdict = "tied" if a.tied_with_best else "worse"
    return (
        f"{verdict}, p={_p_value(test.p_value)} "
        f"({test.only_first_right} vs {test.only_second_right} images)"
    )


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    rows = [header, ["---"] * len(header), *body]
    return ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]


def _with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return "n/a"
    if interval is None:
        return _percent(value)
    return f"{_percent(value)} ({100 * interval[0]:.1f}-{100 * interval[1]:.1f})"


def _f1_with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return "n/a"
    if interval is None:
        return f"{value:.3f}"
    return f"{value:.3f} ({interval[0]:.3f}-{interval[1]:.3f})"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _p_value(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _dollars(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _one_line(text: str) -> str:
    return " ".join(text.split())
