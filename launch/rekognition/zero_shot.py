"""Rekognition as a classifier with no training: DetectLabels, then the user's label map.

The map is a TOML file with one key per class and the Rekognition label names that mean
it: `cat = ["Cat", "Kitten"]`. An image's predicted class is the class of its most
confident label that the map names (matched without regard to case); an image none of
whose labels the map names, or that Rekognition could not analyze, has no class: it counts
as wrong, and the report lists it with the labels Rekognition did see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch.common import pricing
from launch.common.errors import LaunchError
from launch.common.parsing import S3Uri, read_toml
from launch.rekognition.sources import Labelled, labelled_set
from smvision.comparison.rows import Prediction, Qualities, Row, Scores

# Enough labels that a mapped one is likely among them; low enough a threshold that a
# weak but right label still counts (the most confident mapped label decides).
ZERO_SHOT_MAX_LABELS = 50
ZERO_SHOT_MIN_CONFIDENCE = 50.0
NO_CLASS = "(no class)"
FAILED = "(not analyzed)"
# Unmapped images listed in the report; the rest are in the JSON lines file.
LISTED = 20
LABELS_FILE = "rekognition_labels.jsonl"
REKOGNITION_QUALITIES = Qualities(
    data_needed="none to start: zero-shot, through a label map",
    interpretability="label names with confidences; no view into the model",
    setup="an AWS account and a label map; nothing to train or host",
)


@dataclass(frozen=True)
class LabelMap:
    path: Path
    classes: Mapping[str, tuple[str, ...]]

    def classify(self, labels: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None]:
        """(class, the label that decided it) for one image's DetectLabels answer."""
        owner = {name.lower(): cls for cls, names in self.classes.items() for name in names}
        ranked = sorted(labels, key=lambda label: -float(label.get("Confidence", 0)))
        for label in ranked:
            found = owner.get(str(label.get("Name", "")).lower())
            if found is not None:
                return found, str(label["Name"])
        return None, None

    def check_classes(self, class_names: Sequence[str], option: str) -> None:
        """The map names exactly the classes of the labelled set."""
        missing = [name for name in class_names if name not in self.classes]
        extra = [name for name in self.classes if name not in class_names]
        if missing or extra:
            parts = []
            if missing:
                parts.append(
                    "maps no label to class "
                    + ", ".join(f"'{n}'" for n in missing)
                    + f' (add a line such as {missing[0]} = ["Label"])'
                )
            if extra:
                parts.append(
                    "names class "
                    + ", ".join(f"'{n}'" for n in extra)
                    + f", which {option} does not have"
                )
            raise LaunchError(f"--rekognition {self.path} " + "; it ".join(parts) + ".")


def read_label_map(path: Path) -> LabelMap:
    data = read_toml(path, "--rekognition")
    classes: dict[str, tuple[str, ...]] = {}
    owners: dict[str, str] = {}
    for cls, names in data.items():
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) and n.strip() for n in names)
        ):
            raise LaunchError(
                f"--rekognition {path}: class '{cls}' must map to a list of Rekognition label "
                f'names, such as {cls} = ["Cat", "Kitten"]; got {names!r}.'
            )
        for name in names:
            other = owners.setdefault(name.strip().lower(), cls)
            if other != cls:
                raise LaunchError(
                    f"--rekognition {path}: label '{name}' is mapped to both '{other}' and "
                    f"'{cls}'; map each label to one class."
                )
        classes[cls] = tuple(name.strip() for name in names)
    if len(classes) < 2:
        raise LaunchError(f"--rekognition {path}: map at least two classes, one per line.")
    return LabelMap(path, classes)


def top_labels(record: Mapping[str, Any], count: int = 3) -> str:
    labels = record.get("labels") or []
    shown = [f"{label['Name']} {float(label['Confidence']):.0f}%" for label in labels[:count]]
    return ", ".join(shown) or "no label"


@dataclass(frozen=True)
class TestSet:
    """The labelled test images, checked against the map before any job starts."""

    images: tuple[Labelled, ...]
    class_names: tuple[str, ...]


def test_set(s3: Any, uri: S3Uri, label_map: LabelMap) -> TestSet:
    images = labelled_set(s3, uri, "--test")
    class_names = tuple(sorted({item.label for item in images}))
    label_map.check_classes(class_names, f"--test {uri}")
    return TestSet(tuple(images), class_names)


def row(session: Any, images: TestSet, label_map: LabelMap, out_dir: Path, concurrency: int) -> Row:
    """Rekognition's row: DetectLabels on every test image, each mapped to a class."""
    from rich.progress import Progress

    from launch.rekognition.analyze import Analyzer, Request, run
    from launch.rekognition.retry import rekognition_client

    analyzer = Analyzer(
        rekognition_client(session),
        session.client("s3"),
        Request(max_labels=ZERO_SHOT_MAX_LABELS, min_confidence=ZERO_SHOT_MIN_CONFIDENCE),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    answers = out_dir / LABELS_FILE
    records: list[dict[str, Any]] = []
    with answers.open("w") as out, Progress() as progress:
        task = progress.add_task("Rekognition DetectLabels", total=len(images.images))

        def advance(record: dict[str, Any]) -> None:
            records.append(record)
            progress.advance(task)

        summary = run(analyzer, [item.image for item in images.images], out, concurrency, advance)
    return scored_row(images, label_map, records, summary.calls, answers)


def scored_row(
    images: TestSet,
    label_map: LabelMap,
    records: Sequence[Mapping[str, Any]],
    billed_calls: int,
    answers: Path,
) -> Row:
    """The row from DetectLabels' answers (one record per test image, in order)."""
    predictions = []
    missed = []
    for item, record in zip(images.images, records, strict=True):
        if record.get("error"):
            predicted = FAILED
            missed.append(f"{item.source} ({item.label}): not analyzed: {record['error']}")
        else:
            found, _ = label_map.classify(record.get("labels") or [])
            predicted = found or NO_CLASS
            if found is None:
                missed.append(
                    f"{item.source} ({item.label}): no mapped label among {top_labels(record)}"
                )
        predictions.append(Prediction(item.source, item.label, predicted))
    cost = billed_calls * pricing.REKOGNITION_IMAGE_USD
    notes = [
        f"zero-shot: DetectLabels (MaxLabels {ZERO_SHOT_MAX_LABELS}, MinConfidence "
        f"{ZERO_SHOT_MIN_CONFIDENCE:g}) mapped to classes by {label_map.path}; "
        f"{billed_calls} calls cost ${cost:.4f} at ${pricing.REKOGNITION_IMAGE_USD} an image "
        f"({pricing.PRICE_REGION}, first million a month, as of "
        f"{pricing.PRICES_TAKEN.isoformat()}); every answer is in {answers}",
    ]
    if missed:
        notes.append(
            f"{len(missed)} of {len(predictions)} images map to no class and count as "
            "wrong" + (f"; the first {LISTED}:" if len(missed) > LISTED else ":")
        )
        notes += missed[:LISTED]
    return Row(
        name="rekognition",
        where="rekognition",
        scores=Scores("test", images.class_names, tuple(predictions)),
        cost_per_1000_images_usd=pricing.rekognition_cost_per_1000_images(),
        qualities=REKOGNITION_QUALITIES,
        notes=tuple(notes),
        source=f"DetectLabels on {len(predictions)} images",
    )
