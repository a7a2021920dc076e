"""Split-conformal prediction sets (smvision.model.conformal) on real images.

The coverage target: on a test split of at least 1,000 images, the empirical coverage lies
within 2 points of the target. The digits (1,797 images) cannot show it reliably: with
a few hundred calibration images and 1,000 test images the check fails by chance in 12%
of random splits (the beta-binomial law below). So the images here are crops of
real photographs at positions drawn at random per run, the class being the photograph a
crop comes from: an unlimited supply of independent, identically distributed real images.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import betabinom

from smvision.algorithms.features import appearance
from smvision.data import images
from smvision.model import conformal
from smvision.model.conformal import Calibration, ConformalError
from tests.support.photos import photo

PHOTOS = ("china", "flower", "astronaut", "coffee", "chelsea", "rocket")
CROP = 40
SIZE = 32


def crops(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` crops of the photos, each photo and position uniform at random."""
    labels = rng.integers(0, len(PHOTOS), count)
    prepared = np.empty((count, SIZE, SIZE, 3), np.uint8)
    for row, label in enumerate(labels):
        source = photo(PHOTOS[label])
        top = rng.integers(0, source.shape[0] - CROP + 1)
        left = rng.integers(0, source.shape[1] - CROP + 1)
        prepared[row] = images.prepare(
            np.ascontiguousarray(source[top : top + CROP, left : left + CROP]), SIZE, 3
        )
    return prepared, labels


def failure_probability(n: int, m: int, coverage: float, window: float) -> float:
    """P(|empirical coverage - target| > window) over calibration and test draws: given
    the calibration, the coverage is Beta(n + 1 - l, l), l = floor((n + 1) alpha), and the
    covered test images binomial, so their count is beta-binomial (m, n + 1 - l, l)
    (l: `outside`)."""
    alpha = 1 - coverage
    outside = math.floor((n + 1) * alpha)
    law = betabinom(m, n + 1 - outside, outside)
    low = math.ceil(m * (coverage - window) - 1e-9)
    high = math.floor(m * (coverage + window) + 1e-9)
    return float(law.cdf(low - 1) + law.sf(high))


def test_coverage_is_within_two_points_of_the_target_on_10000_test_images() -> None:
    """Calibrated on 10,000 crops and tested on 10,000 others, at coverage 0.9: the check
    fails by chance with probability 3.1e-6 (failure_probability(10000, 10000, 0.9, 0.02),
    asserted below), so it cannot fail in practice unless the sets are wrong."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    seed = int(np.random.SeedSequence().generate_state(1)[0])
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    train, calibration, test = 3000, 10_000, 10_000
    assert failure_probability(calibration, test, 0.9, 0.02) < 1e-5
    prepared, labels = crops(rng, train + calibration + test)
    vectors = appearance.embed(prepared)
    model = make_pipeline(
        StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    ).fit(vectors[:train], labels[:train])
    probabilities = model.predict_proba(vectors[train:])
    held = labels[train:]
    sets = conformal.calibrate({"none": probabilities[:calibration]}, held[:calibration])
    for target in (0.9,):
        found = conformal.evaluate(sets, probabilities[calibration:], held[calibration:], target)
        print(f"coverage {found['coverage']:.4f} at {target}")
        assert abs(found["coverage"] - target) <= 0.02, found
        assert found["abstention_rate"] == pytest.approx(1 - found["answered"] / test), found


def test_sets_follow_the_formula() -> None:
    """k = ceil((n + 1)(1 - alpha)); q = the k-th smallest score (+inf past n);
    C = {y : 1 - p_y <= q}; abstain when C is empty or larger than max_set_size."""
    scores = np.array([0.8, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])  # n = 9, unsorted
    calibration = conformal.calibrate({"none": np.c_[1 - scores, scores]}, np.zeros(9, int))
    assert calibration.threshold(0.8) == pytest.approx(0.7)  # k = 8
    assert calibration.threshold(0.9) == pytest.approx(0.8)  # k = 9
    assert calibration.threshold(0.95) == math.inf  # k = 10 > n: every class
    probabilities = np.array([[0.95, 0.05], [0.5, 0.5], [0.2, 0.8], [0.25, 0.75]])
    sets = calibration.sets(probabilities, 0.8)  # p_y >= 0.3
    assert sets.tolist() == [[True, False], [True, True], [False, True], [False, True]]
    assert conformal.abstains(sets).tolist() == [False, True, False, False]
    assert conformal.abstains(sets, max_set_size=2).tolist() == [False] * 4
    tight = calibration.sets(np.array([[0.6, 0.4]]), 0.1)  # k = 1: q = 0.05, p_y >= 0.95
    assert conformal.abstains(tight).tolist() == [True]  # the empty set
    with pytest.raises(ConformalError, match="between 0 and 1"):
        calibration.threshold(1.0)


def test_calibration_round_trips_and_bad_files_say_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    calibration = conformal.calibrate(
        {"none": np.array([[0.9, 0.1], [0.3, 0.7]]), "flip": np.array([[0.8, 0.2], [0.4, 0.6]])},
        np.array([0, 1]),
    )
    path = tmp_path / "conformal.json"
    calibration.save(path)
    loaded = Calibration.load(path)
    assert loaded.threshold(0.5, "flip") == calibration.threshold(0.5, "flip")
    assert loaded.threshold(0.5, "crops") == calibration.threshold(0.5)  # falls back to none
    path.write_text('{"scores": {"flip": [0.1]}}')
    with pytest.raises(ConformalError, match="without test-time augmentation"):
        Calibration.load(path)
