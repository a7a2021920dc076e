"""What lets serve say "I don't know", set at training time on the validation split: the
split-conformal calibration (smvision.model.conformal) and the out-of-distribution model
(smvision.model.ood); and what evaluation.json reports of them on the test split.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from smvision.algorithms.features import appearance
from smvision.core.contract import CONFORMAL_FILE, OOD_FILE
from smvision.data.dataset import Dataset
from smvision.inspection import DataReport
from smvision.model import conformal, ood
from smvision.model.conformal import Calibration
from smvision.model.ood import OodModel
from smvision.schema.hyperparameters import Hyperparameters
from smvision.training.inputs import JobData

log = logging.getLogger(__name__)

# Embedded images at most per split for the out-of-distribution model (a seeded subset).
MAX_EMBEDDED = 20_000
# Coverages evaluation.json tabulates besides the job's `coverage`.
COVERAGES = (0.8, 0.9, 0.95, 0.99)


class Abstention:
    """The calibration and the out-of-distribution model of one job (either may be None)."""

    def __init__(self, calibration: Calibration | None, detector: OodModel | None) -> None:
        self.calibration = calibration
        self.detector = detector

    @classmethod
    def fit(
        cls,
        hp: Hyperparameters,
        job: JobData,
        probabilities: dict[str, dict[str, np.ndarray]],
        report: DataReport | None,
    ) -> Abstention:
        """`probabilities`: by augmentation mode ('none', and the job's tta), by split."""
        if job.validation is None or not len(job.validation):
            log.info(
                "No validation images: serve answers without prediction sets or an "
                "out-of-distribution flag."
            )
            return cls(None, None)
        calibration = None
        if not job.multi_label:
            calibration = conformal.calibrate(
                {mode: split["validation"] for mode, split in probabilities.items()},
                job.validation.labels,
                hp.integer("seed"),
            )
        train = embeddings_of(job.train, "train", report, hp.integer("seed"))
        validation = embeddings_of(job.validation, "validation", report, hp.integer("seed") + 1)
        labels = None if job.multi_label else job.train.labels[train[0]]
        detector = ood.fit(train[1], labels, validation[1], hp.real("ood_false_alarm_rate"))
        log.info(
            "Abstention set on %d validation images: prediction sets %s; out-of-distribution "
            "threshold %.4g (flags %.1f%% of ordinary images in expectation).",
            len(job.validation),
            "calibrated" if calibration else "not offered (multi-label)",
            detector.threshold,
            100 * detector.false_alarm_rate,
        )
        return cls(calibration, detector)

    def save(self, model_dir: Path) -> None:
        if self.calibration is not None:
            self.calibration.save(model_dir / CONFORMAL_FILE)
        if self.detector is not None:
            self.detector.save(model_dir / OOD_FILE)

    def evaluation(
        self,
        hp: Hyperparameters,
        job: JobData,
        probabilities: dict[str, dict[str, np.ndarray]],
    ) -> dict[str, Any]:
        """evaluation.json's `conformal` and `out_of_distribution`, on the test split."""
        found: dict[str, Any] = {}
        test = job.test
        if test is None or not len(test):
            return found
        if self.calibration is not None:
            coverage = hp.real("coverage")
            plain = probabilities["none"]["test"]
            found["conformal"] = {
                "method": conformal.METHOD,
                "validation_images": self.calibration.images,
                "test_images": len(test),
                **conformal.evaluate(self.calibration, plain, test.labels, coverage),
                "by_coverage": [
                    conformal.evaluate(self.calibration, plain, test.labels, level)
                    for level in sorted({*COVERAGES, coverage})
                ],
            }
        if self.detector is not None:
            rows = appearance.sample_rows(len(test), MAX_EMBEDDED, hp.integer("seed") + 2)
            flags = self.detector.flags(appearance.embed_rows(test, rows))
            found["out_of_distribution"] = self.detector.summary() | {
                "test_images_scored": len(rows),
                "test_flagged_rate": float(flags.mean()) if len(flags) else None,
            }
        return found


def embeddings_of(
    dataset: Dataset, split: str, report: DataReport | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A split's embedded rows and embeddings: the data report's, else computed here."""
    if report is not None and split in report.embeddings:
        return report.embeddings[split]
    rows = appearance.sample_rows(len(dataset), MAX_EMBEDDED, seed)
    return rows, appearance.embed_rows(dataset, rows)


def tta_evaluation(
    mode: str,
    results: dict[str, dict[str, Any]],
    augmented: dict[str, np.ndarray],
    job: JobData,
) -> dict[str, Any]:
    """evaluation.json's `tta`: accuracy with and without the views, per split."""
    found: dict[str, Any] = {"mode": mode}
    for split, dataset in (("validation", job.validation), ("test", job.test)):
        if dataset is None or split not in augmented or dataset.labels.ndim != 1:
            continue
        found[split] = {
            "accuracy_without": results[split]["accuracy"],
            "accuracy": float((augmented[split].argmax(axis=1) == dataset.labels).mean()),
        }
    return found
