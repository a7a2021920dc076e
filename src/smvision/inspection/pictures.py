"""The data report's pictures: the suspect images, as the model sees them, by kind.

Each picture is a grid of thumbnails with a caption under each (matplotlib, Agg): pairs of
duplicates side by side, label issues with their given and suggested labels, and each
quality rule's examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_TILES = 24
COLUMNS = 6


@dataclass(frozen=True)
class Tile:
    image: np.ndarray  # uint8 S x S x C
    caption: str


def draw(tiles: Sequence[Tile], title: str, path: Path, columns: int = COLUMNS) -> None:
    """A grid of up to MAX_TILES tiles (the first ones), written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = list(tiles[:MAX_TILES])
    columns = max(1, min(columns, len(shown)))
    rows = max(1, -(-len(shown) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.2 * rows + 0.5))
    grid = np.atleast_1d(axes).ravel()
    for axis in grid:
        axis.axis("off")
    for axis, tile in zip(grid, shown):
        axis.axis("on")  # a grey frame, so that a white image shows on the white page
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_edgecolor("0.6")
        image = tile.image
        if image.shape[2] == 1:
            axis.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            axis.imshow(image, interpolation="nearest")
        axis.set_title(tile.caption, fontsize=7)
    more = f" (the first {len(shown)} of {len(tiles)})" if len(tiles) > len(shown) else ""
    figure.suptitle(title + more, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def short(path: str, limit: int = 22) -> str:
    """The end of a path, to fit under a thumbnail."""
    return path if len(path) <= limit else "…" + path[-(limit - 1) :]
