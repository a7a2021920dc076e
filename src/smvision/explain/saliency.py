"""saliency.png: where a network looked (Grad-CAM), over a few right and a few wrong images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smvision.explain.plotting import heat_overlay, pyplot, save, show_image

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
    split: str,
    pixels: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    rows: tuple[np.ndarray, np.ndarray],
    maps: np.ndarray,
    path: Path,
) -> None:
    """The maps (one per row of `rows`: right ones, then wrong ones) over their images."""
    plt = pyplot()
    groups = [(name, chosen) for name, chosen in zip(("right", "wrong"), rows) if len(chosen)]
    predicted = probabilities.argmax(axis=1)
    figure, axes = plt.subplots(
        len(groups), PER_ROW, figsize=(2.8 * PER_ROW, 3.1 * len(groups) + 0.5), squeeze=False
    )
    for axis in axes.ravel():
        axis.axis("off")
    position = 0
    for axes_row, (group, chosen) in zip(axes, groups):
        for axis, row in zip(axes_row, chosen):
            show_image(axis, pixels[row])
            axis.imshow(heat_overlay(np.clip(maps[position], 0, 1), "jet", 0.7))
            axis.axis("on")
            guess = int(predicted[row])
            axis.set_title(
                f"{group}: true {class_names[int(labels[row])]}\n"
                f"predicted {class_names[guess]} ({probabilities[row, guess]:.2f})",
                fontsize=9,
                color="darkgreen" if group == "right" else "firebrick",
            )
            position += 1
    figure.suptitle(f"{split}: Grad-CAM of the predicted class (red: the strongest evidence)")
    figure.tight_layout()
    save(figure, path)
