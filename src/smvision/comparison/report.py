"""The comparison written for people: comparison.md, comparison.json and the plots.

    write_report(rows, out_dir, title=...)     # assess(rows), then the files

The numbers and the recommendation come from comparison.assessment. Standard library
only, except that the plots import matplotlib when drawn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from smvision.comparison import stats
from smvision.comparison.assessment import (
    ALPHA,
    RECOMMENDATION_RULE,
    Assessment,
    Comparison,
    assess,
    why_recommended,
)
from smvision.comparison.plots import draw_all
from smvision.comparison.rows import Row

QUALITY_RULES = {
    "Data needed": "the algorithm table's rule of thumb for how many labelled images the "
    "method needs to do well, then how many training images per class this run had",
    "Interpretability": "what a person can inspect of a decision: named hand-made features "
    "(HOG cells, colour bins) and tree importances rank above learned filters, which need "
    "saliency methods; a managed service shows label names only",
    "Setup": "what must exist before the first training run (libraries, weights, hardware, "
    "an AWS account)",
}


# Writing ------------------------------------------------------------------------------------


def write_report(
    rows: Sequence[Row],
    out_dir: Path,
    title: str = "Which algorithm for these images?",
    context: Sequence[str] = (),
    measured: Mapping[str, str] | None = None,
    plots: bool = True,
    data: Mapping[str, Any] | None = None,
) -> Comparison:
    """Write comparison.md, comparison.json and (with `plots`) the three PNGs into out_dir.

    `context` lines open the report (the data set, the machine); `measured` says how each
    measured column was obtained where this run measured it (column name -> sentence);
    `data` is the data report's summary (`summary` lines, `source`, `pictures` relative to
    out_dir), shown as the report's section on the data.
    """
    comparison = assess(rows, title)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, str] = {}
    if plots:
        drawn = draw_all(comparison, out_dir)
    (out_dir / "comparison.md").write_text(
        render_markdown(comparison, context, measured or {}, drawn, data)
    )
    document = to_json(comparison, context, measured or {})
    if data is not None:
        document["data_report"] = dict(data)
    (out_dir / "comparison.json").write_text(json.dumps(document, indent=2) + "\n")
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
        "why_recommended": why_recommended(comparison),
        "quality_rules": QUALITY_RULES,
        "measured": dict(measured or {}),
        "rows": rows,
    }


def render_markdown(
    comparison: Comparison,
    context: Sequence[str] = (),
    measured: Mapping[str, str] | None = None,
    plots: Mapping[str, str] | None = None,
    data: Mapping[str, Any] | None = None,
) -> str:
    lines = [f"# {comparison.title}", ""]
    lines += [f"{line}  " for line in context]
    lines += ["", *_verdict(comparison), ""]
    if data is not None:
        lines += ["## The data", "", *_data_section(data), ""]
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


def _data_section(data: Mapping[str, Any]) -> list[str]:
    """The data report's summary, where it came from, and its pictures."""
    lines = [f"- {line}" for line in data.get("summary", [])]
    if data.get("source"):
        lines += ["", f"From {data['source']}, which lists every finding."]
    for kind, file in dict(data.get("pictures", {})).items():
        lines += ["", f"![{kind.replace('_', ' ')}]({file})"]
    return lines


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
    why = why_recommended(comparison)
    lines = [
        f"**Recommended: {comparison.recommended}** (rule: {RECOMMENDATION_RULE}).",
        "",
        *([f"Why: {why}", ""] if why else []),
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
