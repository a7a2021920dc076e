"""Exact and near-duplicate images, within and across train, validation and test.

Candidates come from multi-index hashing (Norouzi et al. 2012): the 64 bits are cut into
d + 1 chunks, and two hashes within distance d agree on at least one chunk (pigeonhole),
so only images that share a chunk value are compared; a near pair must also have
thumbnails that correlate at MIN_CORRELATION (hashes.py). A bucket of more than
MAX_BUCKET images (thousands of blank images alike) is compared in full only for its
first MAX_BUCKET members, which bounds the time on any data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smvision.inspection.hashes import MIN_CORRELATION, correlation, distance

MAX_BUCKET = 2000


@dataclass(frozen=True)
class Pair:
    """Two images (indices into the inspected images) and how far apart their hashes are."""

    first: int
    second: int
    distance: int
    exact: bool


def find(
    hashes: np.ndarray,
    digests: Sequence[bytes],
    thumbnails: np.ndarray,
    max_distance: int,
    min_correlation: float = MIN_CORRELATION,
) -> list[Pair]:
    """Every pair of images with the same pixels, or within `max_distance` bits whose
    thumbnails correlate at `min_correlation` or more."""
    found: dict[tuple[int, int], Pair] = {}
    by_digest: dict[bytes, list[int]] = defaultdict(list)
    for index, digest in enumerate(digests):
        by_digest[digest].append(index)
    for members in by_digest.values():
        for i, a in enumerate(members[:MAX_BUCKET]):
            for b in members[i + 1 : MAX_BUCKET]:
                found[(a, b)] = Pair(a, b, 0, True)
    chunks = max_distance + 1
    edges = np.linspace(0, 64, chunks + 1).round().astype(int)
    for low, high in zip(edges[:-1], edges[1:]):
        mask = np.uint64((1 << int(high - low)) - 1) << np.uint64(low)
        keys = hashes & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for start, end in zip(starts, ends):
            if end - start < 2:
                continue
            members = np.sort(order[start : min(end, start + MAX_BUCKET)])
            block = distance(hashes[members][:, None], hashes[members][None, :])
            rows, cols = np.nonzero(np.triu(block <= max_distance, k=1))
            for r, c in zip(rows.tolist(), cols.tolist()):
                a, b = int(members[r]), int(members[c])
                if (a, b) in found:
                    continue
                if correlation(thumbnails[a], thumbnails[b]) >= min_correlation:
                    found[(a, b)] = Pair(a, b, int(block[r, c]), False)
    return sorted(found.values(), key=lambda p: (p.first, p.second))
