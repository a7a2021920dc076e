"""saliency.png: where a network looked (Grad-CAM), over a few right and a few wrong images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smvision.training.explain.evaluated import Evaluated
from smvision.training.explain.plotting import Tile, caption, heat_overlay, image_grid

PER_ROW = 4


def choose(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The most confident right and the most confident wrong predictions, PER_ROW of each."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    right = np.flatnonzero(predicted == labels)
    wrong = np.flatnonzero(predicted != labels)
    right = right[np.argsort(-confidence[right], kind="stable")][:PER_ROW]
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:PER_ROW]
    return right, wrong


def draw(
    shown: Evaluated,
    class_names: Sequence[str],
    rows: tuple[np.ndarray, np.ndarray],
    maps: np.ndarray,
    path: Path,
) -> None:
    """The maps (one per row of `rows`: right ones, then wrong ones) over their images."""
    probabilities, labels = shown.probabilities, shown.dataset.labels
    predicted = probabilities.argmax(axis=1)
    heat = iter(maps)
    grid = []
    for group, colour, chosen in zip(("right", "wrong"), ("darkgreen", "firebrick"), rows):
        tiles = []
        for row in chosen:
            guess, truth = int(predicted[row]), int(labels[row])
            text = caption(
                class_names[truth],
                class_names[guess],
                float(probabilities[row, guess]),
                f"{group}: ",
            )
            overlay = heat_overlay(np.clip(next(heat), 0, 1), "jet", 0.7)
            tiles.append(Tile(shown.dataset.take([row])[0], text, colour, overlay))
        if tiles:
            grid.append(tiles)
    title = f"{shown.split}: Grad-CAM of the predicted class (red: the strongest evidence)"
    image_grid(grid, PER_ROW, title, path)
