"""OpenCV features for the classical models: HOG, an HSV colour histogram, raw pixels.

`extract` maps prepared images (uint8 N x S x S x C) to one float32 row per image.
Work is split over threads; OpenCV releases the GIL, so it scales with cores.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from smvision.machine import available_cores

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


def _width(kind: str, channels: int, size: int) -> int:
    if kind == "hog":
        return int(_hog_descriptor(size).getDescriptorSize())
    if kind == "color":
        return 32 if channels == 1 else int(np.prod(COLOR_BINS))
    return PIXEL_SIDE * PIXEL_SIDE


def _feature(kind: str, image: np.ndarray, descriptor: cv2.HOGDescriptor) -> np.ndarray:
    if kind == "hog":
        return _hog(image, descriptor)
    if kind == "color":
        return _color(image)
    return _pixels(image)


def extract(batch: np.ndarray, spec: str, workers: int | None = None) -> np.ndarray:
    """Features for a batch of prepared images; `spec` is e.g. 'hog+color'."""
    kinds = tuple(spec.split("+"))
    count = len(batch)
    if count == 0:
        raise ValueError("extract() needs at least one image.")
    size, channels = batch.shape[1], batch.shape[3]
    widths = [_width(kind, channels, size) for kind in kinds]
    edges = np.cumsum([0, *widths]).tolist()
    # Each image's features go straight into its row: no per-image list, concatenation or
    # stack, Python work that holds the GIL while the other threads wait for it.
    out = np.empty((count, edges[-1]), dtype=np.float32)
    workers = min(workers or available_cores(), max(1, count // 64))

    def run(rows: range) -> None:
        descriptor = _hog_descriptor(size)  # one per thread; cheap to make, even if unused
        for i in rows:
            image, row = batch[i], out[i]
            for kind, start, stop in zip(kinds, edges[:-1], edges[1:]):
                row[start:stop] = _feature(kind, image, descriptor)

    if workers == 1:
        run(range(count))
        return out
    bounds = np.linspace(0, count, workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]))
    return out
