"""Inspect the splits of a data set and report what needs a person's look.

Every image is decoded once, a chunk at a time (the data set's own storage: memory, cache
file or decoded as read): its perceptual hash and pixel digest, its quality measures, and
for up to `max_embedded` images per split (a seeded random subset beyond), its appearance
embedding for confident learning. The report keeps what it found as indices; `write`
draws the pictures from the data sets and writes data_report.json.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smvision.algorithms.features import appearance
from smvision.core.artifacts import write_json
from smvision.core.contract import DATA_REPORT_FILE
from smvision.data.dataset import UNREADABLE, Dataset, Sample
from smvision.inspection import duplicates, hashes, label_issues, pictures, quality
from smvision.inspection.duplicates import Pair
from smvision.inspection.label_issues import Issue
from smvision.inspection.pictures import Tile

log = logging.getLogger(__name__)

CHUNK = 512
# Entries listed in data_report.json per kind (the counts are always complete).
MAX_LISTED = 1000
HELD_OUT = ("validation", "test")
IMBALANCE_RATIO = 3.0
PICTURES = {
    "duplicates": "data_report_duplicates.png",
    "label_issues": "data_report_label_issues.png",
    "quality": "data_report_quality.png",
}


@dataclass(frozen=True)
class InspectedSplit:
    """One split's decoded images and, to read their stored sizes, what they came from."""

    name: str
    dataset: Dataset
    samples: Sequence[Sample] = ()


@dataclass(frozen=True)
class Settings:
    min_correlation: float = hashes.MIN_CORRELATION
    seed: int = 0
    multi_label: bool = False
    # Whether the algorithm takes class_weight (the balance suggestion names it if so).
    class_weight_available: bool = True
    max_embedded: int = 20_000


@dataclass
class DataReport:
    splits: list[InspectedSplit]
    class_names: list[str]
    settings: Settings
    offsets: np.ndarray  # first global index of each split
    pairs: list[Pair]
    issues: list[Issue]  # global indices
    quality_flags: dict[str, np.ndarray]  # rule -> bool per global index
    # Per split: the rows embedded and their embeddings (the job reuses them for serve's
    # out-of-distribution model).
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]]
    seconds: float
    label_issue_note: str = ""
    model_accuracy: dict[str, Any] = field(default_factory=dict)
    drawn: dict[str, str] = field(default_factory=dict)

    # Where each global index lives ---------------------------------------------------------

    def locate(self, index: int) -> tuple[InspectedSplit, int]:
        position = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.splits[position], index - int(self.offsets[position])

    def path(self, index: int) -> str:
        split, row = self.locate(index)
        return split.dataset.sources[row]

    def split_of(self, index: int) -> str:
        return self.locate(index)[0].name

    @property
    def total(self) -> int:
        return int(sum(len(s.dataset) for s in self.splits))

    # Leakage -----------------------------------------------------------------------------

    def duplicated_rows(self, split: str) -> np.ndarray:
        """Rows of `split` with an exact or near duplicate in another split."""
        rows: set[int] = set()
        for pair in self.pairs:
            a, b = self.locate(pair.first), self.locate(pair.second)
            if a[0].name == b[0].name:
                continue
            for where, row in (a, b):
                if where.name == split:
                    rows.add(row)
        return np.array(sorted(rows), dtype=np.int64)

    def leakage(self) -> dict[str, dict[str, float | int]]:
        """Per held-out split: its images with a duplicate in another split, and their share."""
        found = {}
        for split in self.splits:
            if split.name in HELD_OUT and len(split.dataset):
                count = len(self.duplicated_rows(split.name))
                found[split.name] = {
                    "images": count,
                    "of": len(split.dataset),
                    "share": count / len(split.dataset),
                }
        return found

    def max_leakage(self) -> float:
        return max((v["share"] for v in self.leakage().values()), default=0.0)

    def add_model_accuracy(
        self, split: str, probabilities: np.ndarray, labels: np.ndarray, model: str
    ) -> None:
        """Accuracy on `split`, and without its images duplicated in other splits."""
        if labels.ndim != 1 or not len(labels):
            return
        right = probabilities.argmax(axis=1) == labels
        removed = self.duplicated_rows(split)
        keep = np.ones(len(labels), bool)
        keep[removed] = False
        self.model_accuracy[split] = {
            "model": model,
            "images": int(len(labels)),
            "accuracy": float(right.mean()),
            "duplicates_removed": int(len(removed)),
            "accuracy_without_duplicates": float(right[keep].mean()) if keep.any() else None,
        }

    # The document ------------------------------------------------------------------------

    def balance(self) -> dict[str, Any]:
        train = next((s for s in self.splits if s.name == "train"), self.splits[0])
        labels = train.dataset.labels
        counts = (
            labels.sum(axis=0)
            if labels.ndim == 2
            else np.bincount(labels, minlength=len(self.class_names))
        )
        per_class = {name: int(c) for name, c in zip(self.class_names, counts)}
        smallest, largest = int(counts.min()), int(counts.max())
        ratio = largest / smallest if smallest else math.inf
        suggestion = None
        if ratio > IMBALANCE_RATIO:
            rare = [n for n, c in per_class.items() if c * IMBALANCE_RATIO < largest]
            suggestion = (
                "class_weight=balanced weighs each class inversely to its share of train"
                if self.settings.class_weight_available
                else "this algorithm takes no class_weight: add images of the rare classes"
            ) + f" (rare: {', '.join(rare[:10])}{' ...' if len(rare) > 10 else ''})"
        return {
            "split": train.name,
            "per_class": per_class,
            "imbalance_ratio": None if math.isinf(ratio) else ratio,
            "suggestion": suggestion,
        }

    def duplicate_entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for pair in self.pairs:
            splits = [self.split_of(pair.first), self.split_of(pair.second)]
            entries.append(
                {
                    "paths": [self.path(pair.first), self.path(pair.second)],
                    "splits": splits,
                    "exact": pair.exact,
                    "correlation": round(pair.correlation, 4),
                    "phash_distance": pair.distance,
                    "across_splits": splits[0] != splits[1],
                }
            )
        entries.sort(key=lambda e: (not e["across_splits"], -e["correlation"]))
        return entries

    def label_issue_entries(self) -> list[dict[str, Any]]:
        return [
            {
                "path": self.path(issue.index),
                "split": self.split_of(issue.index),
                "given_label": self.class_names[issue.given],
                "suggested_label": self.class_names[issue.suggested],
                "self_confidence": round(issue.self_confidence, 6),
                "suggested_probability": round(issue.suggested_probability, 6),
            }
            for issue in self.issues
        ]

    def quality_entries(self) -> tuple[dict[str, int], list[dict[str, Any]]]:
        counts = {rule: 0 for rule in quality.ISSUES}
        listed: list[dict[str, Any]] = []
        for split in self.splits:
            for source, reason in split.dataset.skipped:
                counts["unreadable"] += 1
                listed.append(
                    {"path": source, "split": split.name, "issues": ["unreadable"], "why": reason}
                )
        flagged = np.zeros(self.total, bool)
        for rule, flags in self.quality_flags.items():
            counts[rule] = int(flags.sum())
            flagged |= flags
        for index in np.flatnonzero(flagged).tolist():
            rules = [rule for rule, flags in self.quality_flags.items() if flags[index]]
            listed.append(
                {"path": self.path(index), "split": self.split_of(index), "issues": rules}
            )
        return counts, listed

    def document(self) -> dict[str, Any]:
        duplicates_listed = self.duplicate_entries()
        issues_listed = self.label_issue_entries()
        counts, quality_listed = self.quality_entries()
        across = sum(1 for e in duplicates_listed if e["across_splits"])
        return {
            "summary": self.summary(),
            "seconds": round(self.seconds, 2),
            "images": {s.name: len(s.dataset) for s in self.splits},
            "class_names": self.class_names,
            "methods": {
                "duplicates": "exact: the same pixels as the model sees them; near: 16x16 "
                f"grey thumbnails correlating at {self.settings.min_correlation} or more "
                "(each pair also gives its 64-bit perceptual hashes' distance in bits)",
                "label_issues": label_issues.__doc__.strip().splitlines()[0]
                if label_issues.__doc__
                else "",
                "quality": (quality.__doc__ or "").strip(),
            },
            "duplicate_counts": {
                "pairs": len(self.pairs),
                "across_splits": across,
                "within_splits": len(self.pairs) - across,
                "exact": sum(1 for p in self.pairs if p.exact),
            },
            "leakage": self.leakage(),
            "accuracy_without_duplicates": self.model_accuracy,
            "duplicates": duplicates_listed[:MAX_LISTED],
            "label_issue_count": len(self.issues),
            "label_issues_note": self.label_issue_note,
            "label_issues": issues_listed[:MAX_LISTED],
            "quality_counts": counts,
            "quality": quality_listed[:MAX_LISTED],
            "class_balance": self.balance(),
            "pictures": {},
        }

    def summary(self) -> list[str]:
        images = ", ".join(f"{len(s.dataset):,} {s.name}" for s in self.splits)
        lines = [f"Data report: {images} images inspected in {self.seconds:.1f} s."]
        across = [p for p in self.pairs if self.split_of(p.first) != self.split_of(p.second)]
        leak = self.leakage()
        leaked = "; ".join(
            f"{v['images']} of {v['of']} {name} images ({v['share']:.1%}) have a duplicate in "
            "another split"
            for name, v in leak.items()
            if v["images"]
        )
        lines.append(
            f"Duplicates: {len(self.pairs) - len(across)} pairs within splits, {len(across)} "
            f"across splits" + (f"; {leaked}." if leaked else ".")
        )
        for split, found in self.model_accuracy.items():
            if found["duplicates_removed"]:
                lines.append(
                    f"{split.capitalize()} accuracy of {found['model']}: "
                    f"{found['accuracy']:.4f}; without its {found['duplicates_removed']} "
                    f"duplicated images: {found['accuracy_without_duplicates']:.4f}."
                )
        if self.issues:
            first = self.issues[0]
            lines.append(
                f"Label issues: {len(self.issues)} candidates ({len(self.issues) / self.total:.1%}"
                f" of images); the likeliest: {self.path(first.index)} labelled "
                f"'{self.class_names[first.given]}', looks like "
                f"'{self.class_names[first.suggested]}'."
            )
        else:
            lines.append(
                f"Label issues: none found{self.label_issue_note and '; ' + self.label_issue_note}."
            )
        counts, _ = self.quality_entries()
        flagged = ", ".join(f"{n} {rule}" for rule, n in counts.items() if n)
        lines.append(f"Quality: {flagged or 'nothing flagged'}.")
        balance = self.balance()
        per_class = balance["per_class"].values()
        ratio = balance["imbalance_ratio"]
        lines.append(
            f"Class balance: {min(per_class)} to {max(per_class)} {balance['split']} images per "
            f"class (ratio {'inf' if ratio is None else f'{ratio:.1f}'})"
            + (f"; suggestion: {balance['suggestion']}." if balance["suggestion"] else ".")
        )
        return lines

    # Writing -----------------------------------------------------------------------------

    def write(self, out_dir: Path, pictures_too: bool = True) -> Path:
        """data_report.json and the pictures (one per kind that found something)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        document = self.document()
        if pictures_too:
            self.drawn = self.draw(out_dir)
        document["pictures"] = dict(self.drawn)
        path = out_dir / DATA_REPORT_FILE
        write_json(path, document)
        return path

    def draw(self, out_dir: Path) -> dict[str, str]:
        drawn = {}
        kinds = {
            "duplicates": (self.duplicate_tiles(), "Duplicates (pairs side by side)"),
            "label_issues": (self.label_issue_tiles(), "Label-issue candidates"),
            "quality": (self.quality_tiles(), "Image quality"),
        }
        for kind, (tiles, title) in kinds.items():
            if tiles:
                pictures.draw(tiles, title, out_dir / PICTURES[kind])
                drawn[kind] = PICTURES[kind]
        return drawn

    def thumbnail(self, index: int) -> np.ndarray:
        split, row = self.locate(index)
        image: np.ndarray = split.dataset.take([row])[0]
        return image

    def duplicate_tiles(self) -> list[Tile]:
        ordered = sorted(
            self.pairs,
            key=lambda p: (self.split_of(p.first) == self.split_of(p.second), -p.correlation),
        )
        tiles = []
        for pair in ordered[: pictures.MAX_TILES // 2]:
            kind = "exact" if pair.exact else f"r = {pair.correlation:.3f}"
            for index in (pair.first, pair.second):
                caption = f"{self.split_of(index)}: {pictures.short(self.path(index))}"
                tiles.append(Tile(self.thumbnail(index), caption + f"\n{kind}"))
        return tiles

    def label_issue_tiles(self) -> list[Tile]:
        return [
            Tile(
                self.thumbnail(issue.index),
                f"{self.split_of(issue.index)}: {self.class_names[issue.given]} -> "
                f"{self.class_names[issue.suggested]} (p {issue.suggested_probability:.2f})\n"
                f"{pictures.short(self.path(issue.index))}",
            )
            for issue in self.issues[: pictures.MAX_TILES]
        ]

    def quality_tiles(self, per_rule: int = 4) -> list[Tile]:
        tiles = []
        for rule, flags in self.quality_flags.items():
            for index in np.flatnonzero(flags)[:per_rule].tolist():
                caption = f"{rule}\n{pictures.short(self.path(index))}"
                tiles.append(Tile(self.thumbnail(index), caption))
        return tiles


# Inspecting ------------------------------------------------------------------------------


def inspect(
    splits: Sequence[InspectedSplit], class_names: Sequence[str], settings: Settings = Settings()
) -> DataReport:
    """Look at every image of `splits` (train first) and report what needs a person's look."""
    started = time.perf_counter()
    present = [s for s in splits if len(s.dataset)]
    offsets = np.cumsum([0] + [len(s.dataset) for s in present[:-1]]).astype(np.int64)
    all_hashes: list[np.ndarray] = []
    all_digests: list[bytes] = []
    all_thumbnails: list[np.ndarray] = []
    measured: list[quality.Measured] = []
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    colour = False
    for position, split in enumerate(present):
        dataset = split.dataset
        sizes = stored_sizes(dataset.sources, split.samples)
        rows = appearance.sample_rows(len(dataset), settings.max_embedded, settings.seed + position)
        wanted = np.zeros(len(dataset), bool)
        wanted[rows] = True
        embedded: list[np.ndarray] = []
        for start in range(0, len(dataset), CHUNK):
            chunk = dataset.take(np.arange(start, min(start + CHUNK, len(dataset))))
            colour = colour or chunk.shape[3] == 3
            all_hashes.append(hashes.phash(chunk))
            all_digests.extend(hashes.digests(chunk))
            all_thumbnails.append(hashes.thumbnails(chunk))
            measured.append(quality.measure_chunk(chunk, sizes[start : start + len(chunk)]))
            chosen = wanted[start : start + len(chunk)]
            if chosen.any():
                embedded.append(appearance.embed(chunk[chosen]))
        embeddings[split.name] = (rows, np.concatenate(embedded))
    pairs = duplicates.find(
        np.concatenate(all_hashes),
        all_digests,
        np.concatenate(all_thumbnails),
        settings.min_correlation,
    )
    issues, note = find_label_issues(present, embeddings, offsets, len(class_names), settings)
    flags = quality.issues(quality.join(measured), colour)
    return DataReport(
        list(present),
        list(class_names),
        settings,
        offsets,
        pairs,
        issues,
        flags,
        embeddings,
        time.perf_counter() - started,
        note,
    )


def find_label_issues(
    splits: Sequence[InspectedSplit],
    embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    offsets: np.ndarray,
    classes: int,
    settings: Settings,
) -> tuple[list[Issue], str]:
    """Confident learning over every embedded image of every split, as one set."""
    if settings.multi_label:
        return [], "not searched: the job is multi-label"
    indices = np.concatenate(
        [embeddings[s.name][0] + offsets[i] for i, s in enumerate(splits)]
    ).astype(np.int64)
    vectors = np.concatenate([embeddings[s.name][1] for s in splits])
    labels = np.concatenate([s.dataset.labels[embeddings[s.name][0]] for s in splits])
    probabilities = label_issues.out_of_fold(vectors, labels, classes, settings.seed)
    if probabilities is None:
        return [], "not searched: a class has fewer than two images"
    found = label_issues.find(labels, probabilities)
    return [
        Issue(
            int(indices[i.index]), i.given, i.suggested, i.self_confidence, i.suggested_probability
        )
        for i in found
    ], ""


def stored_sizes(sources: Sequence[str], samples: Sequence[Sample]) -> np.ndarray:
    """Width and height of each image as stored (N x 2; NaN where unknown)."""
    by_source = {s.source: s for s in samples}
    sizes = np.full((len(sources), 2), np.nan)
    for row, source in enumerate(sources):
        sample = by_source.get(source)
        if sample is None:
            continue
        try:
            if sample.array is not None:
                sizes[row] = (sample.array.shape[1], sample.array.shape[0])
            else:
                header = sample.header()
                sizes[row] = (header.width, header.height)
        except UNREADABLE:
            continue
    return sizes
