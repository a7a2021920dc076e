"""mistakes.png: the images a model got wrong most confidently, with what it said."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smvision.explain.plotting import pyplot, save, show_image

MAX_SHOWN = 16
COLUMNS = 4


def most_confident_mistakes(
    probabilities: np.ndarray, labels: np.ndarray, limit: int = MAX_SHOWN
) -> np.ndarray:
    """Row indices of wrong predictions, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:limit]


def draw(
    split: str,
    pixels: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
) -> int:
    """A grid of the most confident mistakes of one split; returns how many it shows."""
    plt = pyplot()
    rows_shown = most_confident_mistakes(probabilities, labels)
    wrong = int((probabilities.argmax(axis=1) != labels).sum())
    if not len(rows_shown):
        figure, axis = plt.subplots(figsize=(6, 2))
        axis.axis("off")
        axis.text(
            0.5,
            0.5,
            f"No mistakes: every one of the {len(labels)} {split} images is right.",
            ha="center",
            va="center",
            fontsize=12,
        )
        save(figure, path)
        return 0
    grid_rows = math.ceil(len(rows_shown) / COLUMNS)
    figure, axes = plt.subplots(
        grid_rows, COLUMNS, figsize=(2.6 * COLUMNS, 2.9 * grid_rows + 0.6), squeeze=False
    )
    for axis in axes.ravel():
        axis.axis("off")
    for axis, row in zip(axes.ravel(), rows_shown):
        guess = int(probabilities[row].argmax())
        show_image(axis, pixels[row])
        axis.axis("on")
        axis.set_title(
            f"true {class_names[int(labels[row])]}\n"
            f"predicted {class_names[guess]} ({probabilities[row, guess]:.2f})",
            fontsize=9,
            color="firebrick",
        )
    figure.suptitle(
        f"{split}: the {len(rows_shown)} most confident of {wrong} mistakes in {len(labels)} images"
    )
    figure.tight_layout()
    save(figure, path)
    return len(rows_shown)
