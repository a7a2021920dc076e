"""What duplicates are found by: thumbnails, pixel digests and perceptual hashes.

- Thumbnails: the grey image at 16 x 16 (INTER_AREA). Two images are near duplicates
  when their thumbnails correlate at MIN_CORRELATION or more (Pearson: brightness and
  contrast changes keep it at 1; a JPEG re-encoding or a rescan at another size keeps it
  above 0.995 on the digits, while distinct scans of one digit reach 0.989).
- Digests: a SHA-1 of the prepared image: equal digests, the same pixels for the model.
- pHash (Zauner 2010; what imagehash.phash computes): the grey image at 32 x 32, its 2-D
  discrete cosine transform, the top-left 8 x 8 block of low frequencies, one bit per
  coefficient (1 above the block's median). Reported with each pair; not a criterion:
  on small plain images 64 bits are fragile (a digit re-encoded as JPEG moved up to 10
  bits while distinct digits came within 2 to 4).
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

SIDE = 32
BLOCK = 8
THUMBNAIL = 16
MIN_CORRELATION = 0.99
_WEIGHTS = (np.uint64(1) << np.arange(64, dtype=np.uint64)).astype(np.uint64)


def phash(prepared: np.ndarray) -> np.ndarray:
    """One uint64 hash per prepared image (uint8 N x S x S x C)."""
    hashes = np.empty(len(prepared), np.uint64)
    for index, image in enumerate(prepared):
        grey = image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        side = grey.shape[0]
        interpolation = cv2.INTER_AREA if side > SIDE else cv2.INTER_LINEAR
        small = cv2.resize(grey, (SIDE, SIDE), interpolation=interpolation).astype(np.float32)
        low = cv2.dct(small)[:BLOCK, :BLOCK].ravel()
        bits = (low > np.median(low)).astype(np.uint64)
        hashes[index] = np.bitwise_or.reduce(bits * _WEIGHTS)
    return hashes


def digests(prepared: np.ndarray) -> list[bytes]:
    """A SHA-1 of each prepared image's pixels: equal digests, equal model input."""
    return [hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest() for image in prepared]


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between hashes (broadcast)."""
    found: np.ndarray = np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)
    return found


def thumbnails(prepared: np.ndarray) -> np.ndarray:
    """Grey 16 x 16 thumbnails, uint8 N x 256."""
    result = np.empty((len(prepared), THUMBNAIL * THUMBNAIL), np.uint8)
    for index, image in enumerate(prepared):
        grey = image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        interpolation = cv2.INTER_AREA if grey.shape[0] > THUMBNAIL else cv2.INTER_LINEAR
        result[index] = cv2.resize(
            grey, (THUMBNAIL, THUMBNAIL), interpolation=interpolation
        ).ravel()
    return result


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two thumbnails (1 for two constant ones that are equal)."""
    x = a.astype(np.float64) - a.mean()
    y = b.astype(np.float64) - b.mean()
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    if norm == 0.0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(x @ y) / norm
