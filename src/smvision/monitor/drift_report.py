"""What `monitor` leaves in the processing job's output: the report, the plots and Model
Monitor's constraint_violations.json."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from smvision.core.artifacts import write_json
from smvision.monitor import drift, drift_plots
from smvision.monitor.analysis import Analysis
from smvision.monitor.capture import Captured
from smvision.monitor.thresholds import Thresholds

REPORT_FILE = "drift_report.json"
# Model Monitor's name and schema: {"violations": [{feature_name, constraint_check_type,
# description}]}; SageMaker marks the execution CompletedWithViolations from it.
VIOLATIONS_FILE = "constraint_violations.json"
FEATURES_PLOT = "features.png"
PREDICTIONS_PLOT = "predictions.png"
SKIPPED_SHOWN = 20


def report_document(
    baseline: Mapping[str, Any],
    captured: Captured,
    analysis: Analysis,
    thresholds: Thresholds,
    window: tuple[datetime | None, datetime | None],
) -> dict[str, Any]:
    return {
        "baseline": {
            key: baseline[key]
            for key in ("algorithm", "created", "class_names", "image_size", "channels", "images")
        },
        "window": {"since": _iso(window[0]), "until": _iso(window[1])},
        "captured": {
            "files": captured.files,
            "records": captured.records,
            "images": len(captured.shapes),
            "skipped_records": len(captured.skipped),
            "skipped": [
                {"where": where, "why": why} for where, why in captured.skipped[:SKIPPED_SHOWN]
            ],
        },
        "thresholds": asdict(thresholds),
        "violations": len(analysis.violations),
        "checks": [check.as_dict() for check in analysis.checks],
        "notes": analysis.notes,
    }


def violations_document(analysis: Analysis) -> dict[str, Any]:
    return {
        "violations": [
            {
                "feature_name": check.feature_name,
                "constraint_check_type": drift.DRIFT_CHECK,
                "description": check.description,
            }
            for check in analysis.violations
        ]
    }


def write(
    out_dir: Path, document: Mapping[str, Any], baseline: Mapping[str, Any], analysis: Analysis
) -> list[Path]:
    """Write every output file; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / REPORT_FILE, out_dir / VIOLATIONS_FILE]
    write_json(written[0], document)
    write_json(written[1], violations_document(analysis))
    if analysis.checks:
        written.append(drift_plots.plot_features(baseline, analysis, out_dir / FEATURES_PLOT))
        if baseline.get("model"):
            written.append(
                drift_plots.plot_predictions(baseline, analysis, out_dir / PREDICTIONS_PLOT)
            )
    return written


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
