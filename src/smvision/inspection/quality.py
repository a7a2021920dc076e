"""Image quality: what makes an image a poor training example, by rules a person can check.

Measured on each image as stored (its header: width, height) and as the model sees it
(the prepared image: brightness, contrast and sharpness as the drift monitor measures
them, smvision.monitor.features). Rules relative to the data set compare an image with
the median of all inspected images, so that a set of small scans or of soft photos is
not flagged as a whole:

- unreadable: the loader could not decode it (the job skipped it);
- too_small: its shorter side is under half the data set's median shorter side;
- odd_aspect_ratio: width / height differs from the median's by more than a factor of 2;
- near_constant: grey-level standard deviation under 3 (of 255): nothing to see;
- dark: 95% of its pixels under grey level 30; bright: 95% over 225;
- blurry: variance of its Laplacian under a tenth of the data set's median;
- grey_among_colour: no colour (channels differ by at most 2 levels) while most images
  of the data set have colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smvision.monitor.features import measure

ISSUES = (
    "unreadable",
    "too_small",
    "odd_aspect_ratio",
    "near_constant",
    "dark",
    "bright",
    "blurry",
    "grey_among_colour",
)
SMALL_FACTOR = 0.5
ASPECT_FACTOR = 2.0
CONSTANT_SPREAD = 3.0
DARK_LEVEL = 30.0
BRIGHT_LEVEL = 225.0
BLUR_FACTOR = 0.1
GREY_TOLERANCE = 2


@dataclass
class Measured:
    """What was measured of each inspected image (NaN where a size is unknown)."""

    widths: np.ndarray
    heights: np.ndarray
    brightness_low: np.ndarray  # 5th percentile of grey levels
    brightness_high: np.ndarray  # 95th percentile
    contrast: np.ndarray
    sharpness: np.ndarray
    grey: np.ndarray  # bool


def measure_chunk(prepared: np.ndarray, sizes: np.ndarray) -> Measured:
    """Measure prepared images (uint8 N x S x S x C) and their stored sizes (N x 2)."""
    found = measure(prepared, np.nan_to_num(sizes, nan=1.0))
    pixels = prepared.astype(np.float32)
    luma = (
        pixels[..., 0]
        if prepared.shape[3] == 1
        else pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    )
    flat = luma.reshape(len(luma), -1)
    if prepared.shape[3] == 1:
        grey = np.ones(len(prepared), bool)
    else:
        spread = prepared.max(axis=3).astype(np.int16) - prepared.min(axis=3)
        grey = spread.reshape(len(prepared), -1).max(axis=1) <= GREY_TOLERANCE
    return Measured(
        sizes[:, 0].astype(np.float64),
        sizes[:, 1].astype(np.float64),
        np.percentile(flat, 5, axis=1),
        np.percentile(flat, 95, axis=1),
        found["contrast"],
        found["sharpness"],
        grey,
    )


def join(parts: Sequence[Measured]) -> Measured:
    return Measured(
        np.concatenate([p.widths for p in parts]),
        np.concatenate([p.heights for p in parts]),
        np.concatenate([p.brightness_low for p in parts]),
        np.concatenate([p.brightness_high for p in parts]),
        np.concatenate([p.contrast for p in parts]),
        np.concatenate([p.sharpness for p in parts]),
        np.concatenate([p.grey for p in parts]),
    )


def issues(measured: Measured, colour_model: bool) -> dict[str, np.ndarray]:
    """Per rule, a boolean per image (unreadable images are not among them)."""
    shorter = np.minimum(measured.widths, measured.heights)
    aspect = measured.widths / np.maximum(measured.heights, 1.0)
    known = ~np.isnan(shorter)
    median_shorter = float(np.median(shorter[known])) if known.any() else np.nan
    median_aspect = float(np.median(aspect[known])) if known.any() else np.nan
    median_sharpness = float(np.median(measured.sharpness)) if len(measured.sharpness) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = aspect / median_aspect
        found = {
            "too_small": known & (shorter < SMALL_FACTOR * median_shorter),
            "odd_aspect_ratio": known & ((ratio > ASPECT_FACTOR) | (ratio < 1 / ASPECT_FACTOR)),
        }
    found["near_constant"] = measured.contrast < CONSTANT_SPREAD
    found["dark"] = measured.brightness_high < DARK_LEVEL
    found["bright"] = measured.brightness_low > BRIGHT_LEVEL
    found["blurry"] = ~found["near_constant"] & (
        measured.sharpness < BLUR_FACTOR * median_sharpness
    )
    mostly_colour = colour_model and float(np.mean(~measured.grey)) > 0.5
    found["grey_among_colour"] = measured.grey & mostly_colour
    return found
