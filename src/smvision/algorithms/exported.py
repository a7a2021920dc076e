"""A model served from its export (export.json beside it), with neither TensorFlow nor
scikit-learn: a Keras model as TFLite or ONNX, or an svm or rf as ONNX.

A Keras export takes the prepared pixels. An svm's or rf's ONNX takes feature rows: the
features are extracted here with OpenCV, by the same `features.extract` that training
ran, and the scikit-learn pipeline after them (scaler, SVM and Platt scaling, or the
forest) runs on ONNX Runtime. Nothing here imports scikit-learn, so the image built with
RUNTIME=lite serves all four algorithms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from smvision.algorithms.features import FeatureSettings, extract
from smvision.data import images
from smvision.model import runtimes


class ExportedModel:
    """An export on LiteRT or ONNX Runtime; `features` set for a model on image features."""

    def __init__(
        self,
        runtime: runtimes.Runtime,
        image_size: int,
        channels: int,
        class_count: int,
        features: FeatureSettings | None = None,
    ) -> None:
        self.runtime = runtime
        self.image_size = image_size
        self.channels = channels
        self.class_count = class_count
        self.features = features

    @classmethod
    def of(
        cls, runtime: runtimes.Runtime, metadata: dict[str, Any], export: dict[str, Any] | None
    ) -> ExportedModel:
        """The model a runtime runs, shaped by metadata.json and export.json's input record
        (None: a Keras model compiled at start, which takes pixels)."""
        model_input = (export or {}).get("input", {})
        settings = model_input.get("features")
        return cls(
            runtime,
            int(metadata["image_size"]),
            int(metadata["channels"]),
            len(metadata["class_names"]),
            FeatureSettings.from_dict(settings) if isinstance(settings, dict) else None,
        )

    def predict_proba(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        prepared = np.stack([images.prepare(i, self.image_size, self.channels) for i in batch])
        if self.features is None:
            return self.runtime.predict(prepared)
        return self.runtime.predict(extract(prepared, self.features))
