"""The guide's first features: HOG, an HSV colour histogram, downsampled pixels.

Each function takes one prepared image (uint8 S x S x C) and returns its feature row.
"""

from __future__ import annotations

import cv2
import numpy as np

HOG_CELL = 8
HOG_BLOCK = 16
HOG_BINS = 9
COLOR_BINS = (8, 4, 4)  # hue, saturation, value
GREY_COLOR_BINS = 32
PIXEL_SIDE = 16


def hog_descriptor(size: int) -> cv2.HOGDescriptor:
    """OpenCV's HOG over the whole image: 8-pixel cells, 2x2-cell blocks, 9 unsigned bins.

    Not thread-safe: each thread builds its own."""
    return cv2.HOGDescriptor(
        (size, size), (HOG_BLOCK, HOG_BLOCK), (HOG_CELL, HOG_CELL), (HOG_CELL, HOG_CELL), HOG_BINS
    )


def hog_width(size: int) -> int:
    blocks = size // HOG_CELL - 1
    return blocks * blocks * 4 * HOG_BINS


def grey(image: np.ndarray) -> np.ndarray:
    return image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def hog(image: np.ndarray, descriptor: cv2.HOGDescriptor) -> np.ndarray:
    values: np.ndarray = np.asarray(descriptor.compute(grey(image)))
    return values.ravel()


def color_width(channels: int) -> int:
    return GREY_COLOR_BINS if channels == 1 else int(np.prod(COLOR_BINS))


def color(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 1:
        counts = cv2.calcHist([image], [0], None, [GREY_COLOR_BINS], [0, 256]).ravel()
    else:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        counts = cv2.calcHist([hsv], [0, 1, 2], None, list(COLOR_BINS), [0, 180, 0, 256, 0, 256])
        counts = counts.ravel()
    return counts / max(float(counts.sum()), 1.0)


def pixels_width() -> int:
    return PIXEL_SIDE * PIXEL_SIDE


def pixels(image: np.ndarray) -> np.ndarray:
    small = cv2.resize(grey(image), (PIXEL_SIDE, PIXEL_SIDE), interpolation=cv2.INTER_AREA)
    return small.ravel().astype(np.float32) / 255.0
