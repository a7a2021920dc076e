"""Nearest class centroid on the prepared pixels: numpy only, trained in milliseconds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smvision.algorithms.base import Algorithm, History, RunContext
from smvision.data import images
from smvision.data.dataset import Dataset
from smvision.schema.hyperparameters import Hyperparameters

MODEL_FILE = "centroids.npz"


class NearestCentroidAlgorithm(Algorithm):
    def __init__(
        self,
        image_size: int,
        channels: int,
        class_count: int,
        centroids: np.ndarray | None = None,
        temperature: float = 0.05,
    ) -> None:
        super().__init__(image_size, channels, class_count)
        self.centroids = centroids
        self.temperature = temperature

    def fit(
        self, train: Dataset, validation: Dataset | None, hp: Hyperparameters, run: RunContext
    ) -> History:
        pixels = self._flatten(train.all_images())
        self.centroids = np.stack(
            [pixels[train.labels == label].mean(axis=0) for label in range(self.class_count)]
        )
        self.temperature = hp.real("temperature")
        accuracy = float((self._proba(pixels).argmax(axis=1) == train.labels).mean())
        run.metric("train:accuracy", accuracy)
        run.info(f"{self.class_count} centroids of {pixels.shape[1]} pixels each.")
        return {}

    def predict_proba(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        prepared = np.stack([images.prepare(i, self.image_size, self.channels) for i in batch])
        return self._proba(self._flatten(prepared))

    def _proba(self, pixels: np.ndarray) -> np.ndarray:
        if self.centroids is None:
            raise RuntimeError("predict_proba() before fit() or load().")
        distances = np.linalg.norm(pixels[:, None, :] - self.centroids[None], axis=2)
        scores = -distances / (self.temperature * pixels.shape[1] ** 0.5)
        scores -= scores.max(axis=1, keepdims=True)
        weights: np.ndarray = np.exp(scores)
        probabilities: np.ndarray = weights / weights.sum(axis=1, keepdims=True)
        return probabilities.astype(np.float32)

    @staticmethod
    def _flatten(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1).astype(np.float32) / 255.0

    def save(self, model_dir: Path) -> None:
        assert self.centroids is not None
        np.savez(
            model_dir / MODEL_FILE,
            centroids=self.centroids,
            geometry=np.array([self.image_size, self.channels, self.class_count]),
            temperature=np.array(self.temperature),
        )

    @classmethod
    def load(cls, model_dir: Path) -> NearestCentroidAlgorithm:
        with np.load(model_dir / MODEL_FILE) as saved:
            size, channels, classes = (int(v) for v in saved["geometry"])
            return cls(size, channels, classes, saved["centroids"], float(saved["temperature"]))
