"""mistakes.png: the images a model got wrong most confidently, with what it said.

Without a single mistake the picture shows the least confident answers instead (all
right): the images nearest to becoming mistakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smvision.training.explain.evaluated import Evaluated
from smvision.training.explain.plotting import Tile, caption, image_grid

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


def draw(shown_split: Evaluated, class_names: Sequence[str], path: Path) -> None:
    """A grid of the most confident mistakes of one split (or its least confident answers)."""
    split = shown_split.split
    probabilities, labels = shown_split.probabilities, shown_split.dataset.labels
    shown = most_confident_mistakes(probabilities, labels)
    wrong = int((probabilities.argmax(axis=1) != labels).sum())
    if len(shown):
        title = (
            f"{split}: the {len(shown)} most confident of {wrong} mistakes in {len(labels)} images"
        )
    else:
        shown = least_confident(probabilities)
        title = (
            f"{split}: no mistakes in {len(labels)} images; the {len(shown)} least confident "
            "answers"
        )
    tiles = []
    for row in shown:
        guess, truth = int(probabilities[row].argmax()), int(labels[row])
        text = caption(class_names[truth], class_names[guess], float(probabilities[row, guess]))
        pixels = shown_split.dataset.take([row])[0]
        tiles.append(Tile(pixels, text, "darkgreen" if guess == truth else "firebrick"))
    image_grid([tiles], COLUMNS, title, path)
