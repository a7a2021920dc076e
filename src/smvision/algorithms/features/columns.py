"""What each feature column is: its kind, a name a person can read, and the place it covers.

`columns` follows `extract`'s column order exactly, so an importance per column (a
random forest's) can be named ("hog cell (row 2, col 5), 40-60 degrees") and drawn
back onto the image. A place is (top, left, bottom, right) in pixels of the prepared
image; kinds that summarise the whole image (color, the edge orientation histogram,
deep) have none.
"""

from __future__ import annotations

from dataclasses import dataclass

from smvision.algorithms.features import FeatureSettings, handcrafted, texture
from smvision.algorithms.features.backbones import DEEP_WIDTH

Place = tuple[int, int, int, int]


@dataclass(frozen=True)
class Column:
    kind: str
    name: str
    place: Place | None


def columns(settings: FeatureSettings, size: int, channels: int) -> list[Column]:
    describe = {
        "hog": lambda: _hog(size),
        "color": lambda: _color(channels),
        "pixels": lambda: _pixels(size),
        "gabor": lambda: _gabor(settings, size),
        "edges": lambda: _edges(settings.feature_grid, size),
        "deep": lambda: [Column("deep", f"deep channel {i}", None) for i in range(DEEP_WIDTH)],
    }
    return [column for kind in settings.kinds for column in describe[kind]()]


def _hog(size: int) -> list[Column]:
    """OpenCV orders blocks column by column (x outer, y inner), and the four cells of a
    block the same way; each cell holds HOG_BINS unsigned-orientation bins."""
    cell, bins = handcrafted.HOG_CELL, handcrafted.HOG_BINS
    blocks = size // cell - 1
    step = 180 // bins
    found = []
    for block_x in range(blocks):
        for block_y in range(blocks):
            for cell_x in range(2):
                for cell_y in range(2):
                    row, col = block_y + cell_y, block_x + cell_x
                    place = (row * cell, col * cell, (row + 1) * cell, (col + 1) * cell)
                    for b in range(bins):
                        name = (
                            f"hog cell (row {row}, col {col}) {b * step}-{(b + 1) * step} deg, "
                            f"block (row {block_y}, col {block_x})"
                        )
                        found.append(Column("hog", name, place))
    return found


def _color(channels: int) -> list[Column]:
    if channels == 1:
        width = 256 // handcrafted.GREY_COLOR_BINS
        return [
            Column("color", f"color grey {i * width}-{(i + 1) * width - 1}", None)
            for i in range(handcrafted.GREY_COLOR_BINS)
        ]
    hues, saturations, values = handcrafted.COLOR_BINS
    hue_step = 360 // hues
    return [
        Column(
            "color",
            f"color hue {h * hue_step}-{(h + 1) * hue_step} deg, saturation {s + 1}/"
            f"{saturations}, value {v + 1}/{values}",
            None,
        )
        for h in range(hues)
        for s in range(saturations)
        for v in range(values)
    ]


def _pixels(size: int) -> list[Column]:
    side = handcrafted.PIXEL_SIDE
    return [
        Column("pixels", f"pixels (row {r}, col {c}) of {side}x{side}", _cell(r, c, side, size))
        for r in range(side)
        for c in range(side)
    ]


def _gabor(settings: FeatureSettings, size: int) -> list[Column]:
    grid, orientations = settings.feature_grid, settings.gabor_orientations
    found = []
    for scale in range(settings.gabor_scales):
        for step in range(orientations):
            angle = f"{180 * step / orientations:g}"
            for summary in ("mean", "energy"):
                for r in range(grid):
                    for c in range(grid):
                        name = (
                            f"gabor scale {scale} orientation {angle} deg {summary}, "
                            f"cell (row {r}, col {c})"
                        )
                        found.append(Column("gabor", name, _cell(r, c, grid, size)))
    return found


def _edges(grid: int, size: int) -> list[Column]:
    density = [
        Column("edges", f"edges density, cell (row {r}, col {c})", _cell(r, c, grid, size))
        for r in range(grid)
        for c in range(grid)
    ]
    bins = texture.EDGE_ORIENTATION_BINS
    orientation = [
        Column("edges", f"edges orientation {180 * b / bins:g}-{180 * (b + 1) / bins:g} deg", None)
        for b in range(bins)
    ]
    return density + orientation


def _cell(row: int, col: int, grid: int, size: int) -> Place:
    def edge(index: int) -> int:
        return round(index * size / grid)

    return (edge(row), edge(col), edge(row + 1), edge(col + 1))
