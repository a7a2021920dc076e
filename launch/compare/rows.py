"""A report row per finished SageMaker training job, and the report of `compare`.

A row holds what the job itself reports: evaluation.json from its output.tar.gz (accuracy,
macro-F1 and per-image predictions on the test split, else validation), the final
train:images_per_second metric, TrainingTimeInSeconds, the size of model.tar.gz, and
BillableTimeInSeconds times the instance's hourly price. Serving figures are measured
locally (`python -m smvision.local compare`), not here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from launch.common import pricing
from launch.common.pricing import Prices
from launch.training.outputs import OutputMissing, model_bytes, read_evaluation
from launch.training.train import TrainingPlan
from smvision.comparison.report import write_report
from smvision.comparison.rows import Qualities, Row, ScoresError, scores_from_evaluation
from smvision.schema import configurations

IMAGES_PER_SECOND = "train:images_per_second"

MEASURED = {
    "Training time": "TrainingTimeInSeconds of each SageMaker job: from the instances "
    "starting the container to its end (the wait for an instance, the image pull and the "
    "upload of the model come on top)",
    "Train images/s": "the job's final train:images_per_second metric",
    "Model size": "model.tar.gz in S3, compressed",
    "Training cost": "BillableTimeInSeconds x instances x the instance's hourly price "
    f"({pricing.PRICE_REGION} on-demand as of {pricing.PRICES_TAKEN.isoformat()}, or "
    "--price); spot jobs report fewer billable seconds, so the saving is included",
    "Per 1,000 images": "Rekognition's per-image price for DetectLabels; the trained "
    "algorithms' serving cost depends on the endpoint, see the local comparison",
}


def sagemaker_rows(
    s3: Any,
    jobs: Sequence[TrainingPlan],
    described: Mapping[str, Mapping[str, Any]],
    failures: Mapping[str, str],
    prices: Prices,
    names: Sequence[str] | None = None,
) -> list[Row]:
    """One row per planned job, in the order planned: scored, failed, or never created.
    `names`: each job's row name (its configuration, such as svm+deep); by default its
    algorithm. `described` and `failures` are by row name."""
    rows = []
    for index, job in enumerate(jobs):
        name = names[index] if names is not None else job.definition.spec.algorithm
        if name in failures:
            rows.append(
                Row(
                    name,
                    "sagemaker",
                    job.definition.spec.instance_type,
                    qualities=_qualities(name),
                    failure=failures[name],
                    source=job.job_name,
                )
            )
        elif name in described:
            rows.append(job_row(s3, job, described[name], prices, name))
    return rows


def _qualities(name: str) -> Qualities:
    return Qualities(*configurations.parse(name).qualities())


def job_row(
    s3: Any,
    job: TrainingPlan,
    described: Mapping[str, Any],
    prices: Prices,
    name: str | None = None,
) -> Row:
    spec = job.definition.spec
    billable = described.get("BillableTimeInSeconds")
    spot = " (spot)" if job.definition.spot else ""
    notes = [
        f"{spec.instance_count} x {spec.instance_type}{spot}: {prices.source(spec.instance_type)}"
    ]
    if billable is None:
        notes.append("no BillableTimeInSeconds reported, so no training cost")
    name = name or spec.algorithm
    row = Row(
        name=name,
        where="sagemaker",
        instance_type=spec.instance_type,
        training_seconds=_training_seconds(described),
        training_images_per_second=_final_metric(described, IMAGES_PER_SECOND),
        training_cost_usd=prices.training_cost(spec.instance_type, spec.instance_count, billable),
        qualities=_qualities(name),
        source=job.job_name,
    )
    status = described["TrainingJobStatus"]
    if status != "Completed":
        reason = described.get("FailureReason") or "no reason given"
        failure = f"Training job {job.job_name} ended {status}: {reason}"
        return dataclasses.replace(row, failure=failure, notes=tuple(notes))
    try:
        scores = scores_from_evaluation(read_evaluation(s3, described))
    except (OutputMissing, ScoresError) as error:
        failure = f"no evaluation to score: {error}"
        return dataclasses.replace(row, failure=failure, notes=tuple(notes))
    return dataclasses.replace(
        row, scores=scores, model_bytes=model_bytes(s3, described), notes=tuple(notes)
    )


def report(rows: Sequence[Row], out_dir: Path, title: str, context: Sequence[str]) -> int:
    """Write the report; print where it is and its verdict. 0 when any row was scored."""
    # No plots here: matplotlib imports numpy, which the launchers never load.
    comparison = write_report(
        rows, out_dir, title=title, context=context, measured=MEASURED, plots=False
    )
    print(f"Report: {out_dir / 'comparison.md'} and comparison.json")
    print(f"Plots, where matplotlib is installed: python -m smvision.comparison {out_dir}")
    if comparison.recommended:
        print(f"Recommended: {comparison.recommended}")
    for row in rows:
        if row.failed:
            print(f"{row.name}: {row.failure}")
    return 0 if comparison.scored else 1


def _training_seconds(described: Mapping[str, Any]) -> float | None:
    seconds = described.get("TrainingTimeInSeconds")
    if seconds is not None:
        return float(seconds)
    start, end = described.get("TrainingStartTime"), described.get("TrainingEndTime")
    return (end - start).total_seconds() if start and end else None


def _final_metric(described: Mapping[str, Any], name: str) -> float | None:
    for metric in described.get("FinalMetricDataList") or []:
        if metric.get("MetricName") == name:
            return float(metric["Value"])
    return None
