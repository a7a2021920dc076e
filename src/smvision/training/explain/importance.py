"""A model's feature importances named and drawn: which features, and where in the image.

Each feature column knows its kind and the place it covers (`features.layout`), so an
importance per column becomes a heat map over the image (a HOG cell's importance
spread over its 8 x 8 pixels, summed over the blocks and bins that describe it) and a
list of the top features by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smvision.algorithms.features.columns import Column
from smvision.training.explain.plotting import heat_overlay, pyplot, save, show_image

TOP_FEATURES = 20
MARKED_PLACES = 5


def summary(importances: np.ndarray, columns: Sequence[Column]) -> dict[str, Any]:
    """Each kind's share of the importance, and the top features by name and place."""
    kinds = list(dict.fromkeys(column.kind for column in columns))
    by_kind = {
        kind: float(sum(imp for imp, c in zip(importances, columns) if c.kind == kind))
        for kind in kinds
    }
    order = np.argsort(-importances, kind="stable")[:TOP_FEATURES]
    top = []
    for rank, index in enumerate(order, start=1):
        column = columns[int(index)]
        place = None
        if column.place is not None:
            place = dict(zip(("top", "left", "bottom", "right"), column.place))
        top.append(
            {
                "rank": rank,
                "kind": column.kind,
                "name": column.name,
                "place": place,
                "importance": float(importances[index]),
            }
        )
    return {"by_kind": by_kind, "top": top}


def heat_map(importances: np.ndarray, columns: Sequence[Column], size: int) -> np.ndarray:
    """Importance per pixel: each placed column's importance spread evenly over its place."""
    heat = np.zeros((size, size), dtype=np.float64)
    for importance, column in zip(importances, columns):
        if column.place is None:
            continue
        top, left, bottom, right = column.place
        heat[top:bottom, left:right] += importance / ((bottom - top) * (right - left))
    return heat


def draw(
    importances: np.ndarray, columns: Sequence[Column], mean_image: np.ndarray, path: Path
) -> None:
    """The heat map over the mean training image, alone, and each kind's share."""
    plt = pyplot()
    size = mean_image.shape[0]
    heat = heat_map(importances, columns, size)
    placed = float(sum(imp for imp, c in zip(importances, columns) if c.place is not None))
    figure, axes = plt.subplots(1, 3, figsize=(16, 5.6), gridspec_kw={"width_ratios": [1, 1.15, 1]})
    show_image(axes[0], mean_image)
    scaled = heat / heat.max() if heat.max() > 0 else heat
    axes[0].imshow(heat_overlay(scaled), interpolation="nearest")
    _mark_top_places(axes[0], importances, columns)
    axes[0].set_title(
        "mean training image under the importance\n"
        f"(boxes: the top {MARKED_PLACES} placed features)"
    )
    shown = axes[1].imshow(heat, cmap="inferno", interpolation="nearest")
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    axes[1].set_title(f"importance per pixel\n({placed:.0%} of the importance has a place)")
    figure.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
    by_kind = summary(importances, columns)["by_kind"]
    axes[2].bar(list(by_kind), list(by_kind.values()), color="tab:purple")
    axes[2].set_ylim(0, 1)
    axes[2].set_ylabel("share of importance")
    axes[2].set_title("importance by feature kind")
    for position, share in enumerate(by_kind.values()):
        axes[2].text(position, share + 0.02, f"{share:.0%}", ha="center")
    figure.tight_layout()
    save(figure, path)


def _mark_top_places(axis: Any, importances: np.ndarray, columns: Sequence[Column]) -> None:
    from matplotlib.patches import Rectangle

    placed = [i for i in np.argsort(-importances, kind="stable") if columns[i].place is not None]
    for rank, index in enumerate(placed[:MARKED_PLACES], start=1):
        place = columns[int(index)].place
        assert place is not None
        top, left, bottom, right = place
        axis.add_patch(
            Rectangle(
                (left - 0.5, top - 0.5),
                right - left,
                bottom - top,
                fill=False,
                edgecolor="cyan",
                linewidth=1.5,
            )
        )
        axis.text(left, top + 1, str(rank), color="cyan", fontsize=9, va="top", weight="bold")
