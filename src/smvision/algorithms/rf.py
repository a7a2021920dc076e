"""Random forest on image features; its feature importances say what it looks at. An
earlier forest (incremental training) is continued by adding trees."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline

from smvision.algorithms.base import RunContext
from smvision.algorithms.classical import ClassicalAlgorithm, class_weight
from smvision.model.parent import ParentModel, ParentModelError
from smvision.schema.hyperparameters import Hyperparameters


class RandomForestAlgorithm(ClassicalAlgorithm):
    ESTIMATOR = RandomForestClassifier

    def build_pipeline(self, hp: Hyperparameters, labels: np.ndarray | None = None) -> Pipeline:
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

    def fit_continuing(
        self,
        parent: ParentModel,
        x: np.ndarray,
        y: np.ndarray,
        hp: Hyperparameters,
        run: RunContext,
    ) -> Pipeline:
        """The earlier forest with n_estimators more trees, grown on this job's data (scikit-
        learn's warm start: the earlier trees stay as they are)."""
        earlier = type(self).load(parent.directory)
        if earlier.settings != self.settings or earlier.pipeline is None:
            raise ParentModelError(
                f"The model channel's forest splits on '{earlier.settings.spec}' features and "
                f"this job extracts '{self.settings.spec}'; set features="
                f"{earlier.settings.spec} (and its settings) to add trees to it."
            )
        pipeline = earlier.pipeline
        added = hp.integer("n_estimators")
        final = pipeline[-1]
        if isinstance(final, OneVsRestClassifier):
            for label, forest in enumerate(final.estimators_):
                final.estimators_[label] = _grow(forest, x, y[:, label], added, final.estimator)
        else:
            pipeline.steps[-1] = (pipeline.steps[-1][0], _grow(final, x, y, added, final))
        trees = sum(len(forest.estimators_) for forest in _forests(pipeline[-1]))
        run.info(f"Added {added} trees to the model channel's forest: {trees} trees in all.")
        return pipeline

    def feature_importances(self) -> np.ndarray | None:
        """The mean decrease in impurity per feature column (sums to 1); a multi-label
        model's forests averaged."""
        if self.pipeline is None:
            return None
        forests = _forests(self.pipeline[-1])
        if not forests:
            return None
        importances: np.ndarray = np.mean([f.feature_importances_ for f in forests], axis=0)
        return importances

    def for_serving(self) -> None:
        if self.pipeline is None:
            raise RuntimeError("for_serving() before fit() or load().")
        for forest in _forests(self.pipeline[-1]):
            forest.set_params(n_jobs=1)


def _grow(forest: Any, x: np.ndarray, y: np.ndarray, added: int, template: Any) -> Any:
    """`forest` with `added` more trees fitted on (x, y); a label that was constant before
    (scikit-learn kept no forest for it) gets a new forest."""
    if not isinstance(forest, RandomForestClassifier):
        fresh = clone(template)
        fresh.set_params(n_estimators=added)
        return fresh.fit(x, y)
    forest.set_params(warm_start=True, n_estimators=forest.n_estimators + added, n_jobs=-1)
    forest.fit(x, y)
    forest.set_params(warm_start=False)
    return forest


def _forests(final: Any) -> list[RandomForestClassifier]:
    estimators = final.estimators_ if isinstance(final, OneVsRestClassifier) else [final]
    return [e for e in estimators if isinstance(e, RandomForestClassifier)]
