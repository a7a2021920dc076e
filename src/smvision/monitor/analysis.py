"""Captured requests against the baseline: measure them as training measured its images,
then run each statistic's test."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smvision.monitor import distributions, drift
from smvision.monitor.capture import Captured
from smvision.monitor.thresholds import Thresholds


@dataclass
class Analysis:
    checks: list[drift.Check]
    # Captured values by feature name (and "confidence"), for the plots.
    values: dict[str, np.ndarray]
    predicted_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[drift.Check]:
        return [check for check in self.checks if check.violated]


def analyse(baseline: Mapping[str, Any], captured: Captured, thresholds: Thresholds) -> Analysis:
    class_names = list(baseline["class_names"])
    values = dict(captured.values)
    values["confidence"] = np.array([p.probability for p in captured.predictions])
    predicted = distributions.class_counts([p.label for p in captured.predictions], class_names)
    analysis = Analysis([], values, predicted)
    count = len(captured.shapes)
    if count < thresholds.min_images:
        analysis.notes.append(
            f"{count} captured images, fewer than min_images={thresholds.min_images}: "
            "too few to test; nothing was compared."
        )
        return analysis
    for name, summary in baseline["features"].items():
        if name in values and summary["count"]:
            analysis.checks.append(drift.compare_feature(name, summary, values[name], thresholds))
    model = baseline.get("model")
    if model:
        analysis.checks.append(
            drift.compare_feature(
                "confidence", model["confidence"], values["confidence"], thresholds
            )
        )
        analysis.checks.append(
            drift.compare_classes(model["predicted_classes"], predicted, thresholds)
        )
    else:
        analysis.notes.append(
            "The baseline holds no validation predictions (the job had no validation "
            "data), so confidence and predicted classes were not compared."
        )
    return analysis
