"""Real photographs from scikit-learn and scikit-image, encoded in every supported format."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np


@cache
def photo(name: str = "china") -> np.ndarray:
    """An RGB uint8 photo: china, flower (scikit-learn); astronaut, coffee, chelsea (skimage)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"), np.uint8)
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)())


@cache
def grey_photo(name: str = "camera") -> np.ndarray:
    """A greyscale uint8 photograph from scikit-image (camera, coins, moon, page)."""
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)())


def encode(image: np.ndarray, suffix: str) -> bytes:
    """Encode an RGB (or grey) array with OpenCV: .png, .jpg, .bmp, .tiff, .webp."""
    pixels = (
        image if image.ndim == 2 or image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    )
    if image.ndim == 3 and image.shape[2] == 4:
        pixels = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    ok, buffer = cv2.imencode(suffix, pixels)
    assert ok, suffix
    return buffer.tobytes()
