"""Random forest on OpenCV features."""

from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from smvision.algorithms.classical import ClassicalAlgorithm
from smvision.hyperparameters import Hyperparameters


class RandomForestAlgorithm(ClassicalAlgorithm):

    def build_pipeline(self, hp: Hyperparameters) -> Pipeline:
        max_features = hp.text("max_features")
        forest = RandomForestClassifier(
            n_estimators=hp.integer("n_estimators"),
            max_depth=hp.integer("max_depth") or None,
            min_samples_leaf=hp.integer("min_samples_leaf"),
            max_features=None if max_features == "all" else max_features,
            n_jobs=-1,
            random_state=hp.integer("seed"),
        )
        return Pipeline([("forest", forest)])

    def for_serving(self) -> None:
        if self.pipeline is None:
            raise RuntimeError("for_serving() before fit() or load().")
        self.pipeline[-1].set_params(n_jobs=1)
