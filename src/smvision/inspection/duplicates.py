"""Exact and near-duplicate images, within and across train, validation and test.

Exact: the same pixels as the model sees them (equal digests). Near: grey 16 x 16
thumbnails that correlate at MIN_CORRELATION or more (hashes.py), whatever their
brightness and contrast. Each thumbnail, its mean taken off and scaled to length 1, is a
point on a sphere where correlation r means distance sqrt(2 (1 - r)); the points are
projected on their first COMPONENTS principal axes (a projection only shortens
distances, so no pair is lost) and a k-d tree finds every pair within that distance
there, each then checked in full. Thumbnails without contrast (blank images) take part
in exact matching only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smvision.inspection.hashes import MIN_CORRELATION, distance

COMPONENTS = 24
# Pairs kept per image at most: a thousand copies of one picture make a million pairs.
MAX_PARTNERS = 50
MIN_SPREAD = 1.0


@dataclass(frozen=True)
class Pair:
    """Two images (indices into the inspected images), how alike their thumbnails are,
    and how far apart their perceptual hashes are."""

    first: int
    second: int
    correlation: float
    distance: int
    exact: bool


def find(
    hashes: np.ndarray,
    digests: Sequence[bytes],
    thumbnails: np.ndarray,
    min_correlation: float = MIN_CORRELATION,
) -> list[Pair]:
    """Every pair of images with the same pixels, or thumbnails correlating at
    `min_correlation` or more."""
    found: dict[tuple[int, int], Pair] = {}
    by_digest: dict[bytes, list[int]] = defaultdict(list)
    for index, digest in enumerate(digests):
        by_digest[digest].append(index)
    for members in by_digest.values():
        for i, a in enumerate(members):
            for b in members[i + 1 : i + 1 + MAX_PARTNERS]:
                found[(a, b)] = Pair(a, b, 1.0, 0, True)
    points, usable = _unit_rows(thumbnails)
    if len(usable) > 1:
        for a, b, r in _close_pairs(points, min_correlation):
            first, second = int(usable[a]), int(usable[b])
            if (first, second) not in found:
                d = int(distance(hashes[first], hashes[second]))
                found[(first, second)] = Pair(first, second, r, d, False)
    return sorted(found.values(), key=lambda p: (p.first, p.second))


def _unit_rows(thumbnails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = thumbnails.astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    spread = np.sqrt((x**2).mean(axis=1))
    usable = np.flatnonzero(spread >= MIN_SPREAD)
    rows = x[usable]
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows, usable


def _close_pairs(points: np.ndarray, min_correlation: float) -> list[tuple[int, int, float]]:
    from sklearn.neighbors import KDTree

    radius = math.sqrt(2 * (1 - min_correlation)) + 1e-9
    components = min(COMPONENTS, points.shape[1], len(points))
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred[:: max(1, len(points) // 5000)], full_matrices=False)
    reduced = centred @ axes[:components].T
    tree = KDTree(reduced)
    pairs: list[tuple[int, int, float]] = []
    for a, neighbours in enumerate(tree.query_radius(reduced, radius)):
        later = np.sort(neighbours[neighbours > a])
        if not len(later):
            continue
        r = points[later] @ points[a]
        kept = later[r >= min_correlation][:MAX_PARTNERS]
        pairs.extend((a, int(b), float(points[b] @ points[a])) for b in kept)
    return pairs
