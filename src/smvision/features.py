"""OpenCV features for the classical models: HOG, an HSV colour histogram, raw pixels.

`extract` maps prepared images (uint8 N x S x S x C) to one float32 row per image.
Work is split over threads; OpenCV releases the GIL, so it scales with cores.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

HOG_CELL = 8
HOG_BLOCK = 16
HOG_BINS = 9
COLOR_BINS = (8, 4, 4)  # hue, saturation, value
PIXEL_SIDE = 16


def _hog_descriptor(size: int) -> cv2.HOGDescriptor:
    return cv2.HOGDescriptor(
        (size, size), (HOG_BLOCK, HOG_BLOCK), (HOG_CELL, HOG_CELL), (HOG_CELL, HOG_CELL), HOG_BINS
    )


def _grey(image: np.ndarray) -> np.ndarray:
    return image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _hog(image: np.ndarray, descriptor: cv2.HOGDescriptor) -> np.ndarray:
    values: np.ndarray = np.asarray(descriptor.compute(_grey(image)))
    return values.ravel()


def _color(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 1:
        counts = cv2.calcHist([image], [0], None, [32], [0, 256]).ravel()
    else:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        counts = cv2.calcHist([hsv], [0, 1, 2], None, list(COLOR_BINS), [0, 180, 0, 256, 0, 256])
        counts = counts.ravel()
    return counts / max(float(counts.sum()), 1.0)


def _pixels(image: np.ndarray) -> np.ndarray:
    small = cv2.resize(_grey(image), (PIXEL_SIDE, PIXEL_SIDE), interpolation=cv2.INTER_AREA)
    return small.ravel().astype(np.float32) / 255.0


def _one(
    image: np.ndarray, kinds: tuple[str, ...], descriptor: cv2.HOGDescriptor | None
) -> np.ndarray:
    parts = []
    for kind in kinds:
        if kind == "hog":
            assert descriptor is not None
            parts.append(_hog(image, descriptor))
        elif kind == "color":
            parts.append(_color(image))
        else:
            parts.append(_pixels(image))
    return np.concatenate(parts).astype(np.float32, copy=False)


def extract(batch: np.ndarray, spec: str, workers: int | None = None) -> np.ndarray:
    """Features for a batch of prepared images; `spec` is e.g. 'hog+color'."""
    kinds = tuple(spec.split("+"))
    count = len(batch)
    if count == 0:
        raise ValueError("extract() needs at least one image.")
    size = batch.shape[1]
    workers = min(workers or os.cpu_count() or 1, max(1, count // 64))

    def run(rows: range) -> np.ndarray:
        descriptor = _hog_descriptor(size) if "hog" in kinds else None
        return np.stack([_one(batch[i], kinds, descriptor) for i in rows])

    if workers == 1:
        return run(range(count))
    bounds = np.linspace(0, count, workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(run, [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]))
    return np.concatenate(parts)
