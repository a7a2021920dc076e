"""mistakes.png: the images a model got wrong most confidently, with what it said.

Without a single mistake the picture shows the least confident answers instead (all
right): the images nearest to becoming mistakes.
"""

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


def least_confident(probabilities: np.ndarray, limit: int = MAX_SHOWN) -> np.ndarray:
    return np.argsort(probabilities.max(axis=1), kind="stable")[:limit]


def draw(
    split: str,
    pixels: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
) -> None:
    """A grid of the most confident mistakes of one split (or its least confident answers)."""
    plt = pyplot()
    shown = most_confident_mistakes(probabilities, labels)
    wrong = int((probabilities.argmax(axis=1) != labels).sum())
    if len(shown):
        title = (
            f"{split}: the {len(shown)} most confident of {wrong} mistakes in {len(labels)} "
            "images"
        )
    else:
        shown = least_confident(probabilities)
        title = (
            f"{split}: no mistakes in {len(labels)} images; the {len(shown)} least confident "
            "answers"
        )
    rows = math.ceil(len(shown) / COLUMNS)
    figure, axes = plt.subplots(
        rows, COLUMNS, figsize=(2.6 * COLUMNS, 2.9 * rows + 0.6), squeeze=False
    )
    for axis in axes.ravel():
        axis.axis("off")
    for axis, row in zip(axes.ravel(), shown):
        guess = int(probabilities[row].argmax())
        show_image(axis, pixels[row])
        axis.axis("on")
        axis.set_title(
            f"true {class_names[int(labels[row])]}\n"
            f"predicted {class_names[guess]} ({probabilities[row, guess]:.2f})",
            fontsize=9,
            color="firebrick" if guess != labels[row] else "darkgreen",
        )
    figure.suptitle(title)
    figure.tight_layout()
    save(figure, path)
