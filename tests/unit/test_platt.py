"""platt.compiled: the svm's probabilities in one pass, equal to scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from smvision.algorithms import platt
from smvision.algorithms.rf import RandomForestAlgorithm
from smvision.algorithms.svm import SVMAlgorithm
from smvision.schema import hyperparameters


def digits(classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits(n_class=classes)
    x, y = data.data.astype(np.float64), data.target
    return x[::2], y[::2], x[1::2]


@pytest.mark.parametrize("classes", [10, 2], ids=["ten-classes", "two-classes"])
@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_the_one_pass_equals_scikit_learn(classes: int, kernel: str) -> None:
    train_x, train_y, test_x = digits(classes)
    hp = hyperparameters.parse({"algorithm": "svm", "kernel": kernel, "C": "1"})
    pipeline = SVMAlgorithm(8, 1, classes).build_pipeline(hp).fit(train_x, train_y)

    probabilities = platt.compiled(pipeline)

    assert probabilities is not None
    np.testing.assert_allclose(
        probabilities(test_x), pipeline.predict_proba(test_x), rtol=0, atol=1e-12
    )


def test_other_pipelines_keep_scikit_learns_predict_proba() -> None:
    train_x, train_y, _ = digits(3)
    isotonic = make_pipeline(
        StandardScaler(),
        CalibratedClassifierCV(SVC(), method="isotonic", cv=3, ensemble=False),
    ).fit(train_x, train_y)
    ensemble = make_pipeline(
        StandardScaler(), CalibratedClassifierCV(SVC(), method="sigmoid", cv=3)
    ).fit(train_x, train_y)
    hp = hyperparameters.parse({"algorithm": "rf", "n_estimators": "5"})
    forest = RandomForestAlgorithm(8, 1, 3).build_pipeline(hp).fit(train_x, train_y)

    assert platt.compiled(isotonic) is None
    assert platt.compiled(ensemble) is None
    assert platt.compiled(forest) is None


def test_a_loaded_svm_predicts_through_the_one_pass() -> None:
    train_x, train_y, _ = digits(10)
    hp = hyperparameters.parse({"algorithm": "svm"})
    svm = SVMAlgorithm(8, 1, 10)
    svm.pipeline = svm.build_pipeline(hp).fit(train_x, train_y)

    svm.for_serving()

    assert svm.probabilities is not None
