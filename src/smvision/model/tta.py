"""Test-time augmentation: a prediction averaged over views of each image.

Views are made from the image as the model sees it (uint8 S x S x C, already resized):
- `flip`: the image and its mirror image (left-right): 2 views;
- `crops`: the four corners and the centre at 90% of the side, each resized back to S
  (INTER_LINEAR): 5 views.
The probabilities of an image are the mean of its views' probabilities. Mirroring is
only right where a mirrored image keeps its class (photos of objects, not text or digits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from smvision.schema.params import TTA_MODES

CROP_SCALE = 0.9


def views(image: np.ndarray, mode: str) -> list[np.ndarray]:
    """The views of one image under `mode` (none: the image alone)."""
    if mode == "none":
        return [image]
    if mode == "flip":
        return [image, np.ascontiguousarray(image[:, ::-1])]
    if mode == "crops":
        return _crops(image)
    raise ValueError(f"test-time augmentation {mode!r}: use one of {', '.join(TTA_MODES)}")


def view_count(mode: str) -> int:
    return {"none": 1, "flip": 2, "crops": 5}[mode]


def _crops(image: np.ndarray) -> list[np.ndarray]:
    height, width = image.shape[:2]
    ch, cw = max(1, round(height * CROP_SCALE)), max(1, round(width * CROP_SCALE))
    corners = [(0, 0), (0, width - cw), (height - ch, 0), (height - ch, width - cw)]
    corners.append(((height - ch) // 2, (width - cw) // 2))
    return [
        cv2.resize(
            np.ascontiguousarray(image[top : top + ch, left : left + cw]),
            (width, height),
            interpolation=cv2.INTER_LINEAR,
        ).reshape(image.shape)
        for top, left in corners
    ]


def predict(
    predict_proba: Callable[[list[np.ndarray]], np.ndarray],
    batch: Sequence[np.ndarray] | np.ndarray,
    mode: str,
) -> np.ndarray:
    """predict_proba of `batch` averaged over each image's views (one call for all views)."""
    if mode == "none":
        return predict_proba(list(batch))
    expanded = [view for image in batch for view in views(image, mode)]
    return average(predict_proba(expanded), view_count(mode))


def average(probabilities: np.ndarray, per_image: int) -> np.ndarray:
    """Rows of consecutive views (per_image of them per image) -> one mean row per image."""
    if per_image == 1:
        return probabilities
    rows, classes = probabilities.shape
    result: np.ndarray = probabilities.reshape(rows // per_image, per_image, classes).mean(axis=1)
    return result.astype(probabilities.dtype)
