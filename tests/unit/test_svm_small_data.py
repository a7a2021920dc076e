"""The svm on a small data set (issue 22): its calibration, and its one-pass probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from smvision.algorithms import platt
from smvision.algorithms.classical import smallest_class, usable_folds
from smvision.algorithms.svm import PLATT, Calibration, SVMAlgorithm, calibration_for
from smvision.schema import hyperparameters


def digits_per_class(count: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    data = load_digits(n_class=classes)
    rows = np.concatenate([np.flatnonzero(data.target == c)[:count] for c in range(classes)])
    return data.data[rows].astype(np.float64), data.target[rows]


@pytest.mark.parametrize(
    ("per_class", "expected"),
    [(2, Calibration("temperature", 2)), (4, Calibration("temperature", 4)), (5, PLATT)],
)
@pytest.mark.parametrize("classes", [10, 2], ids=["ten-classes", "two-classes"])
def test_a_small_data_set_is_calibrated_by_temperature_and_predicts_in_one_pass(
    per_class: int, expected: Calibration, classes: int
) -> None:
    x, y = digits_per_class(per_class, classes)
    assert calibration_for(y, 2) == expected
    hp = hyperparameters.parse({"algorithm": "svm"})
    pipeline = SVMAlgorithm(8, 1, classes).build_pipeline(hp, y).fit(x, y)
    assert pipeline[-1].method == expected.method

    probabilities = platt.compiled(pipeline)

    assert probabilities is not None
    unseen, _ = digits_per_class(30, classes)
    np.testing.assert_allclose(
        probabilities(unseen), pipeline.predict_proba(unseen), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(probabilities(unseen).sum(axis=1), 1.0)


def test_a_class_below_the_minimum_cannot_be_calibrated() -> None:
    _, y = digits_per_class(3)
    y = np.concatenate([y[y != 7], [7]])
    assert smallest_class(y) == (1, 7)
    with pytest.raises(ValueError, match="a class has 1 images; calibration needs 2"):
        calibration_for(y, 2)


def test_smallest_class_of_a_multi_label_matrix_counts_both_sides_of_varying_labels() -> None:
    labels = np.array([[1, 0, 1], [1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 0, 1]], dtype=np.uint8)
    # label 0 never varies; label 1 is on 2 images, label 2 off 2 of them.
    assert smallest_class(labels) == (2, 1)


@pytest.mark.parametrize(
    ("smallest", "needed", "usable"),
    [(1, 1, []), (2, 1, [2]), (5, 1, [2, 3, 4, 5]), (2, 2, []), (3, 2, [3]), (4, 2, [2, 3, 4])],
)
def test_usable_folds_leave_every_fold_an_image_of_each_class_and_enough_to_fit(
    smallest: int, needed: int, usable: list[int]
) -> None:
    assert usable_folds(smallest, needed, 20) == usable
