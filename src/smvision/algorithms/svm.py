"""Support vector machine on image features (standardised; Platt-scaled probabilities)."""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from smvision.algorithms import platt
from smvision.algorithms.classical import ClassicalAlgorithm, class_weight
from smvision.schema.hyperparameters import Hyperparameters


class SVMAlgorithm(ClassicalAlgorithm):
    ESTIMATOR = CalibratedClassifierCV

    def for_serving(self) -> None:
        """Predict through the one-pass Platt scaling where it applies (platt.py)."""
        if self.pipeline is not None:
            self.probabilities = platt.compiled(self.pipeline)

    def build_pipeline(self, hp: Hyperparameters) -> Pipeline:
        gamma = hp.values["gamma"]
        svc = SVC(
            C=hp.real("C"),
            kernel=hp.text("kernel"),
            gamma=gamma if isinstance(gamma, str) else float(gamma),  # type: ignore[arg-type]
            class_weight=class_weight(hp),
            random_state=hp.integer("seed"),
        )
        # Platt scaling fitted on cross-validated decision values, then one SVC on all data.
        calibrated = CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False)
        return make_pipeline(StandardScaler(), calibrated)
