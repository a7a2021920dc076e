"""What an image looks like, as one fixed row of numbers: every algorithm's images alike.

The data report (smvision.inspection) finds near-duplicates and label issues in this space
and serve's out-of-distribution score (smvision.model.ood) measures distances in it; it
does not depend on the algorithm or on how the model runs (a Keras model, an export, svm),
so the score is the same for all of them and costs the same tens of microseconds an image.

A prepared image (uint8 S x S x C, as the model sees it) is resized to 32 x 32 (INTER_AREA
down, INTER_LINEAR up), then described by HOG (8-pixel cells, 9 bins: 324 numbers), its
grey pixels at 16 x 16 (256 numbers, 0-1) and its colour histogram (HSV 8x4x4 for colour
models, 32 grey bins for grey ones). It describes appearance (edges, layout, tone,
colour), not meaning: a photograph of a horse looks like a photograph of a dog here.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from smvision.algorithms.features import handcrafted
from smvision.data.dataset import Dataset

SIDE = 32
# Images decoded at a time while embedding a data set.
CHUNK = 512
_local = threading.local()


def width(channels: int) -> int:
    """Numbers per image."""
    return (
        handcrafted.hog_width(SIDE) + handcrafted.pixels_width() + handcrafted.color_width(channels)
    )


def embed(prepared: np.ndarray) -> np.ndarray:
    """Rows of float32 for prepared images (uint8 N x S x S x C)."""
    if prepared.ndim != 4:
        raise ValueError(f"expected N x S x S x C images, got shape {prepared.shape}")
    rows = np.empty((len(prepared), width(prepared.shape[3])), np.float32)
    descriptor = _descriptor()
    for index, image in enumerate(prepared):
        rows[index] = _row(image, descriptor)
    return rows


def _row(image: np.ndarray, descriptor: cv2.HOGDescriptor) -> np.ndarray:
    side = image.shape[0]
    if side != SIDE:
        interpolation = cv2.INTER_AREA if side > SIDE else cv2.INTER_LINEAR
        small = cv2.resize(image, (SIDE, SIDE), interpolation=interpolation)
        small = small.reshape(SIDE, SIDE, image.shape[2])
    else:
        small = image
    return np.concatenate(
        [
            handcrafted.hog(small, descriptor),
            handcrafted.pixels(small),
            handcrafted.color(small),
        ]
    ).astype(np.float32)


def _descriptor() -> cv2.HOGDescriptor:
    """A HOG descriptor for this thread (OpenCV's is not thread-safe)."""
    descriptor = getattr(_local, "descriptor", None)
    if descriptor is None:
        descriptor = handcrafted.hog_descriptor(SIDE)
        _local.descriptor = descriptor
    return descriptor


def embed_rows(dataset: Dataset, rows: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Embeddings of a data set's `rows`, decoded `chunk` images at a time."""
    parts = [
        embed(dataset.take(rows[start : start + chunk])) for start in range(0, len(rows), chunk)
    ]
    if not parts:
        return np.zeros(
            (0, width(dataset.model_input.channels if dataset.model_input else 1)), np.float32
        )
    return np.concatenate(parts)


def sample_rows(count: int, limit: int, seed: int) -> np.ndarray:
    """All rows, or a seeded random `limit` of them in order: bounds the time on large sets."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))
