"""model/baseline.json: what the training images and the model's answers looked like.

`train` calls `build` with the training images as the model sees them, their original
sizes, their labels and the model's probabilities on validation; `monitor` reads the file
back with `read`. Every distribution is kept as `distributions.summarize` makes it.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from smvision.core.contract import BASELINE_FILE
from smvision.data import images
from smvision.data.dataset import Dataset, Sample
from smvision.monitor import distributions, features

VERSION = 1
# Statistics of more images than this come from a seeded random subset of them: the
# quantiles barely move, and a large job does not spend minutes measuring.
MAX_IMAGES = 5000


class BaselineError(ValueError):
    """A baseline that is missing or unreadable, with where it was looked for."""


def original_sizes(samples: Sequence[Sample]) -> np.ndarray:
    """Width and height of each sample as stored: the file's header, the header of a
    RecordIO record's image, or the array's shape."""
    sizes = np.zeros((len(samples), 2), dtype=np.int64)
    for row, sample in enumerate(samples):
        if sample.array is not None:
            sizes[row] = (sample.array.shape[1], sample.array.shape[0])
        elif sample.offset is not None:
            header = images.read_header(sample.read_bytes(), sample.source)
            sizes[row] = (header.width, header.height)
        else:
            # Pillow reads the header from the file and stops: training decoded these files
            # already, and a large JPEG need not be read whole again for its size.
            with Image.open(sample.path) as header_image:
                sizes[row] = header_image.size
    return sizes


def build(
    *,
    algorithm: str,
    class_names: Sequence[str],
    image_size: int,
    channels: int,
    train: Dataset,
    train_samples: Sequence[Sample],
    validation_probabilities: np.ndarray | None,
    seed: int = 0,
) -> dict[str, Any]:
    """The baseline document: statistics of the training images as the model saw them
    (`train`, with the `train_samples` it was loaded from for the sizes as stored), the
    class priors, and the model's answers on validation."""
    rows = np.arange(len(train))
    if len(rows) > MAX_IMAGES:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_IMAGES, replace=False))
    by_source = {sample.source: sample for sample in train_samples}
    measured = features.measure(
        train.take(rows), original_sizes([by_source[train.sources[r]] for r in rows])
    )
    labels = _label_names(train.labels, class_names)
    document: dict[str, Any] = {
        "version": VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "algorithm": algorithm,
        "class_names": list(class_names),
        "image_size": image_size,
        "channels": channels,
        "images": {"split": "train", "count": len(train), "measured": len(rows)},
        "features": {name: distributions.summarize(values) for name, values in measured.items()},
        "class_priors": distributions.proportions(distributions.class_counts(labels, class_names)),
        "model": None,
    }
    if validation_probabilities is not None and len(validation_probabilities):
        if train.labels.ndim == 2:  # multi-label: each label at or over 0.5
            predicted = _label_names(validation_probabilities >= 0.5, class_names)
        else:
            predicted = [class_names[int(i)] for i in validation_probabilities.argmax(axis=1)]
        document["model"] = {
            "split": "validation",
            "count": int(len(validation_probabilities)),
            "confidence": distributions.summarize(validation_probabilities.max(axis=1)),
            "predicted_classes": distributions.class_counts(predicted, class_names),
        }
    return document


def _label_names(labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Each image's class, or every label of a multi-label 0/1 matrix (priors per label)."""
    if labels.ndim == 2:
        return [class_names[int(i)] for row in labels for i in np.flatnonzero(row)]
    return [class_names[int(label)] for label in labels]


def read(path: Path) -> dict[str, Any]:
    """A baseline from baseline.json, a folder holding it, or a model.tar.gz holding it."""
    if path.is_dir():
        candidates = [path / BASELINE_FILE, *sorted(path.glob("*.tar.gz"))]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise BaselineError(
                f"{path} holds neither {BASELINE_FILE} nor a model.tar.gz; give the model "
                f"directory or model.tar.gz of a model trained by smvision."
            )
        path = found
    try:
        text = _from_archive(path) if path.name.endswith(".tar.gz") else path.read_text()
        document = json.loads(text)
    except (OSError, tarfile.TarError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BaselineError(f"{path}: cannot read the baseline ({error}).") from error
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise BaselineError(
            f"{path} is not a version-{VERSION} smvision baseline; retrain the model with this "
            "image, which writes model/baseline.json."
        )
    return document


def _from_archive(path: Path) -> str:
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            if member.isfile() and Path(member.name).name == BASELINE_FILE:
                handle = archive.extractfile(member)
                if handle is not None:
                    return io.TextIOWrapper(handle, encoding="utf-8").read()
    raise BaselineError(
        f"{path} holds no {BASELINE_FILE}: the model was trained before smvision wrote "
        "baselines; retrain it to monitor its endpoint."
    )
