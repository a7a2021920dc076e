"""matplotlib for files, not screens: the Agg backend, and figures saved and closed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DPI = 100


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (jobs and servers have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: Path) -> None:
    figure.savefig(path, dpi=DPI)
    pyplot().close(figure)


def show_image(axis: Any, image: np.ndarray) -> None:
    """A uint8 (or float 0-255) H x W x C image, grey when it has one channel."""
    pixels = np.clip(image, 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        axis.imshow(pixels[:, :, 0], cmap="gray", vmin=0, vmax=255)
    else:
        axis.imshow(pixels)
    axis.set_xticks([])
    axis.set_yticks([])


def heat_overlay(
    heat: np.ndarray, colour_map: str = "inferno", opacity: float = 0.85
) -> np.ndarray:
    """A heat map in [0, 1] as RGBA whose opacity grows with the heat: the image under its
    cold places stays visible."""
    rgba: np.ndarray = pyplot().get_cmap(colour_map)(heat)
    rgba[..., 3] = opacity * heat
    return rgba


@dataclass(frozen=True)
class Tile:
    """One image of a grid, its caption, and an optional RGBA layer over it."""

    image: np.ndarray
    caption: str
    colour: str
    overlay: np.ndarray | None = None


def image_grid(rows: Sequence[Sequence[Tile]], columns: int, title: str, path: Path) -> None:
    """Tiles row by row, `columns` to a row (a row's tiles wrap when it has more)."""
    wrapped = [list(row[i : i + columns]) for row in rows for i in range(0, len(row), columns)]
    figure, axes = pyplot().subplots(
        len(wrapped), columns, figsize=(2.7 * columns, 3.0 * len(wrapped) + 0.5), squeeze=False
    )
    for axis in axes.ravel():
        axis.axis("off")
    for axes_row, tiles in zip(axes, wrapped):
        for axis, tile in zip(axes_row, tiles):
            show_image(axis, tile.image)
            if tile.overlay is not None:
                axis.imshow(tile.overlay)
            axis.axis("on")
            axis.set_title(tile.caption, fontsize=9, color=tile.colour)
    figure.suptitle(title)
    figure.tight_layout()
    save(figure, path)


def caption(truth: str, predicted: str, probability: float, prefix: str = "") -> str:
    return f"{prefix}true {truth}\npredicted {predicted} ({probability:.2f})"
