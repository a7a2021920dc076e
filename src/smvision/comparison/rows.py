"""One row of a comparison: what was measured about one algorithm or managed service.

A `Row` holds measurements only; `report.py` derives the intervals, the paired tests and the
recommendation from them. Every measurement may be None (not measured where this row ran:
Rekognition trains nothing, a SageMaker job has no local memory figure, a failed job has
no scores), and the report renders None as "n/a". Standard library only.

Build `Scores` from a job's evaluation.json with `scores_from_evaluation`; it keeps each
image's label and prediction, which the bootstrap and the paired test need.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smvision.schema import specs

# evaluation.json's splits, in the order a report prefers them.
PREFERRED_SPLITS = ("test", "validation")


class ScoresError(ValueError):
    """An evaluation that cannot be scored (no usable split, missing predictions)."""


@dataclass(frozen=True)
class Prediction:
    source: str  # the image's path inside its channel: the key that pairs two rows
    label: str
    predicted: str

    @property
    def correct(self) -> bool:
        return self.label == self.predicted


@dataclass(frozen=True)
class Scores:
    """A classifier's results on one evaluated split."""

    split: str  # "test" or "validation": what the numbers were measured on
    class_names: tuple[str, ...]
    predictions: tuple[Prediction, ...]

    @property
    def count(self) -> int:
        return len(self.predictions)

    @property
    def correct(self) -> int:
        return sum(1 for p in self.predictions if p.correct)

    @property
    def accuracy(self) -> float:
        return self.correct / self.count

    def outcomes(self) -> dict[str, bool]:
        """Right or wrong per image source (McNemar pairs two rows on these)."""
        return {p.source: p.correct for p in self.predictions}

    def per_class_f1(self) -> dict[str, float]:
        f1 = {}
        for name in self.class_names:
            hits = sum(1 for p in self.predictions if p.label == name and p.predicted == name)
            actual = sum(1 for p in self.predictions if p.label == name)
            guessed = sum(1 for p in self.predictions if p.predicted == name)
            f1[name] = 2 * hits / (actual + guessed) if actual + guessed else 0.0
        return f1

    @property
    def macro_f1(self) -> float:
        values = self.per_class_f1().values()
        return sum(values) / len(values) if values else 0.0


@dataclass(frozen=True)
class Qualities:
    """The guide's qualitative columns for one row, as short phrases."""

    data_needed: str = ""
    interpretability: str = ""
    setup: str = ""


@dataclass(frozen=True)
class Row:
    """Everything measured about one algorithm (or managed service) on one data set.

    Units are in the names. `failure` is the sentence that ended a failed run (its
    output/failure file); a failed row usually has no scores.
    """

    name: str  # "svm", "cnn on ml.g5.xlarge", "rekognition"
    where: str  # "local", "sagemaker", "rekognition": where it ran
    instance_type: str | None = None  # "ml.m5.xlarge" for a SageMaker job
    scores: Scores | None = None
    training_seconds: float | None = None
    train_images: int | None = None
    training_images_per_second: float | None = None
    peak_memory_bytes: int | None = None
    model_bytes: int | None = None
    latency_p50_ms: float | None = None  # one image, decoding included
    batch32_images_per_second: float | None = None
    seconds_to_ready: float | None = None  # `serve` start to the first 200 on /ping
    training_cost_usd: float | None = None
    cost_per_1000_images_usd: float | None = None
    qualities: Qualities = field(default_factory=Qualities)
    failure: str | None = None
    # Facts a reader needs beside the numbers ("image_size auto -> 16", "2 unmapped labels").
    notes: tuple[str, ...] = ()
    # What produced the row: job directory, job name or ARN.
    source: str | None = None

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.scores is not None:
            data["scores"]["predictions"] = [
                [p.source, p.label, p.predicted] for p in self.scores.predictions
            ]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        """A row from `to_json` (or a comparison.json row: its derived numbers are dropped)."""
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        scores = values.get("scores")
        if scores is not None:
            values["scores"] = Scores(
                split=scores["split"],
                class_names=tuple(scores["class_names"]),
                predictions=tuple(Prediction(*p) for p in scores["predictions"]),
            )
        values["qualities"] = Qualities(**values.get("qualities", {}))
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def scores_from_evaluation(
    evaluation: Mapping[str, Any], splits: Sequence[str] = PREFERRED_SPLITS
) -> Scores:
    """The first of `splits` that evaluation.json (as train.py writes it) holds."""
    for split in splits:
        result = evaluation.get(split)
        if result is None:
            continue
        if "label_confusion" in result:
            raise ScoresError(
                f"evaluation.json's '{split}' result is a multi-label model's; the comparison "
                "ranks single-label models by accuracy and macro F1 (compare multi-label "
                "models by the f1_micro and hamming_loss of their evaluation.json)."
            )
        predictions = result.get("predictions")
        names = result.get("confusion_matrix", {}).get("labels")
        if not predictions or not names:
            raise ScoresError(
                f"evaluation.json's '{split}' result has no per-image predictions or class "
                "names; it was not written by smvision's train."
            )
        return Scores(
            split=split,
            class_names=tuple(names),
            predictions=tuple(
                Prediction(str(p["source"]), str(p["label"]), str(p["predicted"]))
                for p in predictions
            ),
        )
    raise ScoresError(
        f"evaluation.json holds none of the splits {', '.join(splits)} (it has "
        f"{', '.join(evaluation) or 'nothing'}); give the job a test or validation channel."
    )


def directory_bytes(path: Path) -> int:
    """Bytes of the files under a directory (a model's size on disk)."""
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def qualities_of(algorithm: str) -> Qualities:
    """The guide's qualitative columns for an algorithm, from the algorithm table."""
    spec = specs.get(algorithm)
    return Qualities(spec.data_needed, spec.interpretability, spec.setup)
