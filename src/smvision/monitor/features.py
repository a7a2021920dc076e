"""What the monitor measures in an image: the same numbers for training and captured images.

Sizes come from the image as it arrived (its header, or the array's shape); everything else
from the model's input (`images.prepare`), so a photo and a thumbnail of it measure alike
and the numbers describe what the model saw.
"""

from __future__ import annotations

import numpy as np

from smvision.data import images

SIZE_FEATURES = ("width", "height", "aspect_ratio")
LIGHT_FEATURES = ("brightness", "contrast", "sharpness")
CHANNEL_NAMES = {1: ("grey",), 3: ("red", "green", "blue")}
# ITU-R BT.601 luma, as OpenCV's RGB2GRAY.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHUNK = 256  # images measured at once: bounds the float copies for 224-pixel inputs


def feature_names(channels: int) -> tuple[str, ...]:
    # A grey image's one channel is its luma: its mean and spread are brightness and
    # contrast already.
    names = CHANNEL_NAMES[channels] if channels > 1 else ()
    return (
        SIZE_FEATURES
        + LIGHT_FEATURES
        + tuple(f"mean_{name}" for name in names)
        + tuple(f"spread_{name}" for name in names)
    )


class FeatureMeter:
    """Images measured as they come, holding no more than a chunk of model inputs: an hour
    of captured photos would not fit in memory, their numbers do."""

    def __init__(self, size: int, channels: int) -> None:
        self.size = size
        self.channels = channels
        self._pending: list[np.ndarray] = []
        self._sizes: list[tuple[int, int]] = []
        self._measured: list[dict[str, np.ndarray]] = []

    def add(self, image: np.ndarray) -> None:
        """Measure `image` (as decoded: H x W x C uint8); it is not kept."""
        self._pending.append(images.prepare(image, self.size, self.channels))
        self._sizes.append((image.shape[1], image.shape[0]))
        if len(self._pending) >= _CHUNK:
            self._flush()

    def values(self) -> dict[str, np.ndarray]:
        """One array per feature name, of every image added, in order."""
        self._flush()
        if not self._measured:
            return {name: np.zeros(0) for name in feature_names(self.channels)}
        return {
            name: np.concatenate([part[name] for part in self._measured])
            for name in self._measured[0]
        }

    def _flush(self) -> None:
        if self._pending:
            self._measured.append(measure(np.stack(self._pending), np.array(self._sizes)))
            self._pending, self._sizes = [], []


def measure(prepared: np.ndarray, sizes: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image features of N model inputs (N x S x S x C uint8) and their original sizes
    (N x 2: width, height): one array of N values per feature name."""
    if len(prepared) != len(sizes):
        raise ValueError(f"{len(prepared)} images but {len(sizes)} sizes")
    channels = prepared.shape[3] if len(prepared) else 1
    found: dict[str, list[np.ndarray]] = {name: [] for name in feature_names(channels)}
    for start in range(0, len(prepared), _CHUNK):
        for name, values in _measure_chunk(prepared[start : start + _CHUNK]).items():
            found[name].append(values)
    widths = sizes[:, 0].astype(np.float64)
    heights = sizes[:, 1].astype(np.float64)
    measured = {
        name: np.concatenate(parts) if parts else np.zeros(0)
        for name, parts in found.items()
        if name not in SIZE_FEATURES
    }
    return {
        "width": widths,
        "height": heights,
        "aspect_ratio": widths / np.maximum(heights, 1.0),
        **measured,
    }


def _measure_chunk(chunk: np.ndarray) -> dict[str, np.ndarray]:
    pixels = chunk.astype(np.float32)
    luma = pixels[..., 0] if pixels.shape[3] == 1 else pixels @ _LUMA
    # The variance of the Laplacian: low for blurred images, high for sharp or noisy ones.
    laplacian = (
        4 * luma[:, 1:-1, 1:-1]
        - luma[:, :-2, 1:-1]
        - luma[:, 2:, 1:-1]
        - luma[:, 1:-1, :-2]
        - luma[:, 1:-1, 2:]
    )
    result = {
        "brightness": luma.mean(axis=(1, 2)),
        "contrast": luma.std(axis=(1, 2)),
        "sharpness": laplacian.var(axis=(1, 2)),
    }
    if pixels.shape[3] > 1:
        for index, name in enumerate(CHANNEL_NAMES[pixels.shape[3]]):
            result[f"mean_{name}"] = pixels[..., index].mean(axis=(1, 2))
            result[f"spread_{name}"] = pixels[..., index].std(axis=(1, 2))
    return {name: values.astype(np.float64) for name, values in result.items()}
