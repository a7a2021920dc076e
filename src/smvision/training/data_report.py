"""The job's data report: inspected after the data is loaded, before training (a job whose
splits leak past `max_leakage` fails at once), completed with the model's accuracy on
test without its duplicated images once the model is evaluated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from smvision.data.dataset import DataError
from smvision.inspection import DataReport, InspectedSplit, Settings, inspect
from smvision.schema.hyperparameters import Hyperparameters
from smvision.training.inputs import JobData

log = logging.getLogger(__name__)


def inspect_job(out_dir: Path, hp: Hyperparameters, job: JobData) -> DataReport | None:
    """The report of this job's splits, written to out_dir; None with data_report=false.

    Raises DataError (the job fails) when validation or test leak past max_leakage."""
    if not hp.flag("data_report"):
        return None
    splits = [InspectedSplit("train", job.train, job.train_samples)]
    if job.validation is not None:
        splits.append(InspectedSplit("validation", job.validation, job.validation_samples))
    if job.test is not None:
        splits.append(InspectedSplit("test", job.test, job.test_samples))
    settings = Settings(
        min_correlation=hp.real("duplicate_correlation"),
        seed=hp.integer("seed"),
        multi_label=job.multi_label,
        class_weight_available=any(p.name == "class_weight" for p in hp.spec.parameters),
    )
    report = inspect(splits, job.class_names, settings)
    report.write(out_dir)
    for line in report.summary():
        log.info("%s", line)
    limit = hp.real("max_leakage")
    leakage = report.leakage()
    worst = max(leakage.items(), key=lambda item: item[1]["share"], default=None)
    if worst is not None and worst[1]["share"] > limit:
        name, found = worst
        examples = [
            f"{e['splits'][0]}:{e['paths'][0]} = {e['splits'][1]}:{e['paths'][1]}"
            for e in report.duplicate_entries()
            if e["across_splits"]
        ][:3]
        raise DataError(
            f"{found['images']} of {found['of']} {name} images ({found['share']:.1%}) have an "
            f"exact or near duplicate in another split, over max_leakage={limit:g}: accuracy "
            f"measured on them is inflated. For example {'; '.join(examples)}. Remove the "
            "duplicates (output/data/data_report.json lists them all), or raise max_leakage."
        )
    return report


def complete(
    report: DataReport,
    out_dir: Path,
    algorithm: str,
    probabilities: dict[str, np.ndarray],
    job: JobData,
) -> None:
    """Add the model's test (else validation) accuracy without duplicates; write again."""
    for split, dataset in (("test", job.test), ("validation", job.validation)):
        if dataset is not None and split in probabilities:
            report.add_model_accuracy(split, probabilities[split], dataset.labels, algorithm)
            break
    report.write(out_dir, pictures_too=False)
    line = next((ln for ln in report.summary() if "without its" in ln), None)
    if line:
        log.info("%s", line)
