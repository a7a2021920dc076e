"""What svm and rf share: OpenCV features into a scikit-learn pipeline, saved with joblib."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.metrics import accuracy_score, log_loss
from sklearn.pipeline import Pipeline

from smvision import images
from smvision.algorithms import features
from smvision.algorithms.base import Algorithm, History, RunContext
from smvision.data import Dataset
from smvision.hyperparameters import Hyperparameters

MODEL_FILE = "model.joblib"


class ClassicalAlgorithm(Algorithm):
    """Features (`features` hyperparameter) -> a scikit-learn pipeline -> probabilities."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        class_count: int,
        feature_spec: str = "hog",
        pipeline: Pipeline | None = None,
    ) -> None:
        super().__init__(image_size, channels, class_count)
        self.feature_spec = feature_spec
        self.pipeline = pipeline

    @abstractmethod
    def build_pipeline(self, hp: Hyperparameters) -> Pipeline:
        """An unfitted pipeline from features to class probabilities."""

    def fit(
        self, train: Dataset, validation: Dataset | None, hp: Hyperparameters, run: RunContext
    ) -> History:
        self.feature_spec = hp.text("features")
        x = features.extract(train.images, self.feature_spec)
        run.info(f"Extracted {x.shape[1]} '{self.feature_spec}' features from {len(x)} images.")
        self.pipeline = self.build_pipeline(hp).fit(x, train.labels)
        classes = list(self.pipeline.classes_)
        if classes != list(range(self.class_count)):
            raise RuntimeError(
                f"pipeline learnt classes {classes}, expected 0..{self.class_count - 1}"
            )
        proba = self.pipeline.predict_proba(x)
        accuracy = float(accuracy_score(train.labels, proba.argmax(axis=1)))
        loss = float(log_loss(train.labels, proba, labels=classes))
        run.metric("train:accuracy", accuracy)
        run.metric("train:loss", loss)
        return {}

    def features_of(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        prepared = np.stack([images.prepare(i, self.image_size, self.channels) for i in batch])
        return features.extract(prepared, self.feature_spec)

    def predict_proba(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError("predict_proba() before fit() or load().")
        result: np.ndarray = self.pipeline.predict_proba(self.features_of(batch))
        return result.astype(np.float32)

    def save(self, model_dir: Path) -> None:
        state: dict[str, Any] = {
            "pipeline": self.pipeline,
            "image_size": self.image_size,
            "channels": self.channels,
            "class_count": self.class_count,
            "feature_spec": self.feature_spec,
        }
        joblib.dump(state, model_dir / MODEL_FILE)

    @classmethod
    def load(cls, model_dir: Path) -> ClassicalAlgorithm:
        state = joblib.load(model_dir / MODEL_FILE)
        algorithm = cls(
            state["image_size"],
            state["channels"],
            state["class_count"],
            state["feature_spec"],
            state["pipeline"],
        )
        algorithm.for_serving()
        return algorithm

    def for_serving(self) -> None:
        """Single-threaded prediction: the server runs one worker per core."""

    def preprocessing(self) -> dict[str, object]:
        return super().preprocessing() | {"features": self.feature_spec}
