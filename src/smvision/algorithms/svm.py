"""Support vector machine on image features (standardised; calibrated probabilities).

An SVC gives decision values, not probabilities. They are calibrated on decision values
cross-validated on the training data, then one SVC is fitted on all of it. With at least
PLATT_FOLDS images of every class that is Platt scaling: a sigmoid per class, on 5 folds.
A small data set (the guide's case for svm) cannot fill 5 folds, and a sigmoid per class
fitted on two or three images of it is noise; so below PLATT_FOLDS images of a class the
folds are as many as the smallest class has images, and the calibration is temperature
scaling, one parameter for all classes. The algorithm table's `min_images_per_class` (2)
is what a fold needs to hold one image of every class out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from smvision.algorithms import platt
from smvision.algorithms.base import History, RunContext
from smvision.algorithms.classical import ClassicalAlgorithm, class_weight, smallest_class
from smvision.data.dataset import Dataset
from smvision.schema.hyperparameters import Hyperparameters

PLATT_FOLDS = 5


@dataclass(frozen=True)
class Calibration:
    """How the SVC's decision values become probabilities."""

    method: Literal["sigmoid", "temperature"]
    folds: int


PLATT = Calibration("sigmoid", PLATT_FOLDS)


def calibration_for(labels: np.ndarray, minimum: int) -> Calibration:
    """The calibration a fit on `labels` can afford (see the module's doc); `minimum` is the
    algorithm table's min_images_per_class, which training checks before it fits."""
    smallest, _ = smallest_class(labels)
    if smallest >= PLATT_FOLDS:
        return PLATT
    if smallest >= minimum:
        return Calibration("temperature", smallest)
    raise ValueError(f"a class has {smallest} images; calibration needs {minimum}")


class SVMAlgorithm(ClassicalAlgorithm):
    ESTIMATOR = CalibratedClassifierCV

    def fit(
        self, train: Dataset, validation: Dataset | None, hp: Hyperparameters, run: RunContext
    ) -> History:
        calibration = calibration_for(train.labels, hp.spec.min_images_per_class)
        if calibration != PLATT:
            run.info(
                f"svm: the smallest class has {calibration.folds} training images, too few for "
                f"Platt scaling (a sigmoid per class on {PLATT_FOLDS} folds); probabilities are "
                "calibrated by temperature scaling (one parameter for all classes) on "
                f"{calibration.folds}-fold cross-validated decision values."
            )
        return super().fit(train, validation, hp, run)

    def for_serving(self) -> None:
        """Predict through the one-pass calibration where it applies (platt.py)."""
        if self.pipeline is not None:
            self.probabilities = platt.compiled(self.pipeline)

    def build_pipeline(self, hp: Hyperparameters, labels: np.ndarray | None = None) -> Pipeline:
        gamma = hp.values["gamma"]
        svc = SVC(
            C=hp.real("C"),
            kernel=hp.text("kernel"),
            gamma=gamma if isinstance(gamma, str) else float(gamma),  # type: ignore[arg-type]
            class_weight=class_weight(hp),
            random_state=hp.integer("seed"),
        )
        calibration = (
            PLATT if labels is None else calibration_for(labels, hp.spec.min_images_per_class)
        )
        calibrated = CalibratedClassifierCV(
            svc, method=calibration.method, cv=calibration.folds, ensemble=False
        )
        return make_pipeline(StandardScaler(), calibrated)
