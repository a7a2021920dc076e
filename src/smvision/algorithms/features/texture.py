"""Texture and shape features: a Gabor filter bank and Canny edges, each summarised on a grid.

The guide filters with four Gabor orientations and keeps the first 1,000 response
values, which ties the features to the image size and keeps only the top rows. Here
every response is summarised over a `grid` x `grid` layout of cells instead (mean
magnitude and energy per cell), so the row length depends on the settings alone and
every part of the image counts.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from smvision.algorithms.features.handcrafted import grey

EDGE_ORIENTATION_BINS = 8
GABOR_ASPECT = 0.5  # the guide's gamma: ellipses twice as long as they are wide


def gabor_bank(orientations: int, scales: int, kernel_size: int) -> list[np.ndarray]:
    """Zero-mean Gabor kernels, scale by scale, each over `orientations` angles in [0, 180).

    Scale 0 has sigma = kernel_size / 4 and wavelength 2 * sigma (kernel 21: sigma 5.25,
    wavelength 10.5, the guide's sigma 5 and lambda 10); each further scale halves both.
    The kernels are made zero-mean, so a flat region answers 0 whatever its brightness."""
    bank = []
    for scale in range(scales):
        sigma = kernel_size / 4 / 2**scale
        for step in range(orientations):
            kernel = cv2.getGaborKernel(
                (kernel_size, kernel_size),
                sigma,
                math.pi * step / orientations,
                2 * sigma,
                GABOR_ASPECT,
                0,
                ktype=cv2.CV_32F,
            )
            kernel -= kernel.mean()
            bank.append(kernel / np.abs(kernel).sum())
    return bank


def gabor_width(orientations: int, scales: int, grid: int) -> int:
    return orientations * scales * grid * grid * 2


def gabor(image: np.ndarray, bank: list[np.ndarray], grid: int) -> np.ndarray:
    """Per kernel: the mean magnitude of its response in each grid cell, then the energy."""
    intensity = grey(image).astype(np.float32) / 255.0
    parts = []
    for kernel in bank:
        response = cv2.filter2D(intensity, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT)
        parts.append(_cell_means(np.abs(response), grid))
        parts.append(_cell_means(response * response, grid))
    return np.concatenate(parts)


def edges_width(grid: int) -> int:
    return grid * grid + EDGE_ORIENTATION_BINS


def edges(image: np.ndarray, low: int, high: int, grid: int) -> np.ndarray:
    """Canny edge density per grid cell, then the histogram of edge orientations in [0, 180).

    The histogram sums to 1 (or is all 0 without edges): the density grid says how many
    edges there are, the histogram which way they run."""
    intensity = grey(image)
    edge_map = cv2.Canny(intensity, low, high, L2gradient=True)
    density = _cell_means(edge_map.astype(np.float32) / 255.0, grid)
    on_edge = edge_map > 0
    histogram = np.zeros(EDGE_ORIENTATION_BINS, dtype=np.float32)
    if on_edge.any():
        dx = cv2.Sobel(intensity, cv2.CV_32F, 1, 0, ksize=3)[on_edge]
        dy = cv2.Sobel(intensity, cv2.CV_32F, 0, 1, ksize=3)[on_edge]
        orientation = np.mod(np.arctan2(dy, dx), np.pi)
        bins = (orientation / np.pi * EDGE_ORIENTATION_BINS).astype(int)
        bins = np.minimum(bins, EDGE_ORIENTATION_BINS - 1)
        histogram += np.bincount(bins, minlength=EDGE_ORIENTATION_BINS).astype(np.float32)
        histogram /= histogram.sum()
    return np.concatenate([density, histogram])


def _cell_means(values: np.ndarray, grid: int) -> np.ndarray:
    """The mean of `values` over each cell of a grid x grid layout, row by row."""
    cells = cv2.resize(values, (grid, grid), interpolation=cv2.INTER_AREA)
    return np.asarray(cells, dtype=np.float32).ravel()
