"""Image features for svm and rf: any of hog, color, pixels, gabor, edges and deep, joined.

`FeatureSettings` says which kinds a model uses and how (the `features` hyperparameter
and the settings of each kind); `extract` maps prepared images (uint8 N x S x S x C) to
one float32 row per image, the kinds' columns side by side in FEATURE_KINDS order. The
same call computes the features in training and in serving. The per-image kinds run
on threads (OpenCV releases the GIL); deep runs in batches on TensorFlow's threads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from smvision.algorithms.features import handcrafted, texture
from smvision.algorithms.features.backbones import DEEP_WIDTH
from smvision.core.machine import available_cores
from smvision.schema.params import FEATURE_KINDS

if TYPE_CHECKING:
    from smvision.algorithms.features.deep import Backbone
    from smvision.schema.hyperparameters import Hyperparameters

PER_IMAGE_KINDS = ("hog", "color", "pixels", "gabor", "edges")
IMAGES_PER_THREAD = 64


@dataclass(frozen=True)
class FeatureSettings:
    """Which feature kinds, and the settings of those that have any."""

    kinds: tuple[str, ...]
    gabor_orientations: int = 4
    gabor_scales: int = 2
    gabor_kernel_size: int = 21
    feature_grid: int = 4
    canny_low: int = 50
    canny_high: int = 150

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in FEATURE_KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"Feature kinds {self.kinds!r}: use some of {FEATURE_KINDS}.")
        ordered = tuple(kind for kind in FEATURE_KINDS if kind in self.kinds)
        object.__setattr__(self, "kinds", ordered)

    @classmethod
    def parse(cls, spec: str, **settings: int) -> FeatureSettings:
        """'hog+color' (and any settings) -> FeatureSettings."""
        return cls(tuple(spec.split("+")), **settings)

    @classmethod
    def from_hyperparameters(cls, hp: Hyperparameters) -> FeatureSettings:
        settings = {f.name: hp.integer(f.name) for f in fields(cls) if f.name != "kinds"}
        return cls.parse(hp.text("features"), **settings)

    @property
    def spec(self) -> str:
        return "+".join(self.kinds)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"kinds": list(self.kinds)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSettings:
        return cls(**(data | {"kinds": tuple(data["kinds"])}))

    def widths(self, size: int, channels: int) -> dict[str, int]:
        """Columns per kind, in column order."""
        grid = self.feature_grid
        width: dict[str, Callable[[], int]] = {
            "hog": lambda: handcrafted.hog_width(size),
            "color": lambda: handcrafted.color_width(channels),
            "pixels": handcrafted.pixels_width,
            "gabor": lambda: texture.gabor_width(self.gabor_orientations, self.gabor_scales, grid),
            "edges": lambda: texture.edges_width(grid),
            "deep": lambda: DEEP_WIDTH,
        }
        return {kind: width[kind]() for kind in self.kinds}

    def per_image(self, size: int) -> Callable[[np.ndarray], list[np.ndarray]]:
        """A function from one image to the rows of its per-image kinds. Build one per
        thread: HOG's descriptor is not thread-safe."""
        chosen: list[Callable[[np.ndarray], np.ndarray]] = []
        for kind in self.kinds:
            if kind == "hog":
                chosen.append(
                    functools.partial(handcrafted.hog, descriptor=handcrafted.hog_descriptor(size))
                )
            elif kind == "color":
                chosen.append(handcrafted.color)
            elif kind == "pixels":
                chosen.append(handcrafted.pixels)
            elif kind == "gabor":
                bank = texture.gabor_bank(
                    self.gabor_orientations, self.gabor_scales, self.gabor_kernel_size
                )
                chosen.append(functools.partial(texture.gabor, bank=bank, grid=self.feature_grid))
            elif kind == "edges":
                chosen.append(
                    functools.partial(
                        texture.edges,
                        low=self.canny_low,
                        high=self.canny_high,
                        grid=self.feature_grid,
                    )
                )
        return lambda image: [compute(image) for compute in chosen]


def extract(
    batch: np.ndarray,
    settings: FeatureSettings | str,
    workers: int | None = None,
    backbone: Backbone | Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Features for a batch of prepared images; `settings` may be a spec such as 'hog+color'.
    `backbone` computes deep's columns: the Keras network, or serve's compiled copy of it."""
    if isinstance(settings, str):
        settings = FeatureSettings.parse(settings)
    count = len(batch)
    if count == 0:
        raise ValueError("extract() needs at least one image.")
    size, channels = batch.shape[1], batch.shape[3]
    widths = settings.widths(size, channels)
    edges = dict(zip(widths, np.cumsum([0, *widths.values()]).tolist()))
    total = sum(widths.values())
    out = np.empty((count, total), dtype=np.float32)
    if "deep" in settings.kinds:
        if backbone is None:
            raise ValueError("features=deep needs its backbone network.")
        out[:, edges["deep"] : edges["deep"] + DEEP_WIDTH] = backbone(batch)
    per_image = [kind for kind in settings.kinds if kind in PER_IMAGE_KINDS]
    if per_image:
        start, stop = edges[per_image[0]], edges[per_image[-1]] + widths[per_image[-1]]
        _per_image_features(batch, settings, out[:, start:stop], workers)
    return out


def _per_image_features(
    batch: np.ndarray, settings: FeatureSettings, out: np.ndarray, workers: int | None
) -> None:
    """Each image's per-image kinds straight into its row of `out` (their columns are
    contiguous: deep comes last). No concatenation or stack per image: Python work that
    holds the GIL while the other threads wait for it."""
    count, size = len(batch), batch.shape[1]
    workers = min(workers or available_cores(), max(1, count // IMAGES_PER_THREAD))

    def run(rows: range) -> None:
        compute = settings.per_image(size)
        for i in rows:
            position = 0
            for part in compute(batch[i]):
                out[i, position : position + len(part)] = part
                position += len(part)

    if workers == 1:
        run(range(count))
        return
    bounds = np.linspace(0, count, workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]))
