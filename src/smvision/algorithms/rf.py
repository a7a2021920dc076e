"""Random forest on image features; its feature importances say what it looks at."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from smvision.algorithms.classical import ClassicalAlgorithm, class_weight
from smvision.hyperparameters import Hyperparameters


class RandomForestAlgorithm(ClassicalAlgorithm):

    def build_pipeline(self, hp: Hyperparameters) -> Pipeline:
        max_features = hp.text("max_features")
        forest = RandomForestClassifier(
            n_estimators=hp.integer("n_estimators"),
            max_depth=hp.integer("max_depth") or None,
            min_samples_leaf=hp.integer("min_samples_leaf"),
            max_features=None if max_features == "all" else max_features,
            class_weight=class_weight(hp),
            n_jobs=-1,
            random_state=hp.integer("seed"),
        )
        return Pipeline([("forest", forest)])

    def feature_importances(self) -> np.ndarray | None:
        """The forest's mean decrease in impurity per feature column (sums to 1)."""
        if self.pipeline is None:
            return None
        importances: np.ndarray = self.pipeline[-1].feature_importances_
        return importances

    def for_serving(self) -> None:
        if self.pipeline is None:
            raise RuntimeError("for_serving() before fit() or load().")
        self.pipeline[-1].set_params(n_jobs=1)
