"""What a person looks at after training: pictures in output/data/ and the findings behind them.

`write` draws, for every algorithm, the confusion matrices beside per-class precision
and recall (confusion_matrix.png; per_label.png for a multi-label model, roc_pr_curves.png
for two classes) and the most confident mistakes (mistakes.png); for
models with feature importances (rf), where they look (feature_importance.png); for
models with saliency maps (cnn, resnet50), Grad-CAM over right and wrong images
(saliency.png); and training curves when there are epochs. It returns what
evaluation.json adds beside the per-split results.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from smvision.algorithms.base import Algorithm, History
from smvision.algorithms.features.columns import Column
from smvision.data.dataset import Dataset
from smvision.training.explain import charts, importance, mistakes, saliency
from smvision.training.explain.evaluated import Evaluated

__all__ = ["Evaluated", "HasFeatureImportances", "HasSaliency", "write"]

log = logging.getLogger(__name__)


@runtime_checkable
class HasFeatureImportances(Protocol):
    def feature_importances(self) -> np.ndarray | None: ...

    def columns(self) -> list[Column]: ...


@runtime_checkable
class HasSaliency(Protocol):
    def saliency(self, images: np.ndarray, classes: np.ndarray) -> np.ndarray | None:
        """Images and one class each -> a map in [0, 1] per image (None: not supported)."""


def write(
    out_dir: Path,
    algorithm: Algorithm,
    class_names: Sequence[str],
    train: Dataset,
    evaluated: Sequence[Evaluated],
    results: Mapping[str, Any],
    history: History,
) -> dict[str, Any]:
    """Draw every picture that applies into out_dir; return evaluation.json's additions."""
    findings: dict[str, Any] = {}
    charts.results(results, out_dir)
    if history:
        charts.training_curves(history, out_dir / "training_curves.png")
    if evaluated and evaluated[-1].dataset.labels.ndim == 1:  # one label per image
        shown = evaluated[-1]  # test when there is one, else validation
        mistakes.draw(shown, class_names, out_dir / "mistakes.png")
        if isinstance(algorithm, HasSaliency):
            _saliency(algorithm, shown, class_names, out_dir / "saliency.png")
    if isinstance(algorithm, HasFeatureImportances):
        importances = algorithm.feature_importances()
        if importances is not None:
            columns = algorithm.columns()
            mean_image = _mean_image(train)
            importance.draw(importances, columns, mean_image, out_dir / "feature_importance.png")
            findings["feature_importance"] = importance.summary(importances, columns)
    return findings


def _saliency(
    algorithm: HasSaliency, shown: Evaluated, class_names: Sequence[str], path: Path
) -> None:
    """Grad-CAM of the predicted class over the most confident right and wrong images."""
    labels, probabilities = shown.dataset.labels, shown.probabilities
    rows = saliency.choose(probabilities, labels)
    chosen = np.concatenate(rows)
    maps = algorithm.saliency(shown.dataset.take(chosen), probabilities[chosen].argmax(axis=1))
    if maps is None:
        log.info("No saliency.png: this model does not say where it looks.")
        return
    saliency.draw(shown, class_names, rows, maps, path)


def _mean_image(train: Dataset, chunk: int = 512) -> np.ndarray:
    """The mean training image, summed a chunk at a time (a streamed set need not fit)."""
    total = np.zeros(train.take([0]).shape[1:], dtype=np.float64)
    for images in train.chunks(chunk):
        total += images.sum(axis=0, dtype=np.float64)
    return total / len(train)
