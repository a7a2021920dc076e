"""features.py: HOG, colour and pixel features; threads give the same numbers as one core."""

import numpy as np

from smvision import images
from smvision.algorithms import features
from tests.photos import photo


def _batch(count: int, size: int = 64) -> np.ndarray:
    photos = [photo(n) for n in ("china", "flower", "astronaut", "coffee", "chelsea")]
    crops = [
        p[i % 50 : i % 50 + 300, i % 70 : i % 70 + 300] for i, p in enumerate(photos * (count // 5))
    ]
    return np.stack([images.prepare(c, size, 3) for c in crops])


def test_feature_lengths() -> None:
    batch = _batch(5)
    assert features.extract(batch, "hog").shape == (5, 1764)  # 7x7 blocks x 4 cells x 9 bins
    assert features.extract(batch, "color").shape == (5, 128)
    assert features.extract(batch, "pixels").shape == (5, 256)
    assert features.extract(batch, "hog+color+pixels").shape == (5, 1764 + 128 + 256)


def test_threads_give_identical_features() -> None:
    batch = _batch(200)
    np.testing.assert_array_equal(
        features.extract(batch, "hog+color", workers=1),
        features.extract(batch, "hog+color", workers=4),
    )


def test_colour_histogram_separates_photos() -> None:
    batch = _batch(5)
    colour = features.extract(batch, "color")
    np.testing.assert_allclose(colour.sum(axis=1), 1.0, rtol=1e-5)
    assert np.abs(colour[0] - colour[1]).sum() > 0.2
