"""The interface every algorithm implements, shaped after scikit-learn's estimators."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from smvision.data.dataset import Dataset
from smvision.model.parent import ParentModel
from smvision.schema.hyperparameters import Hyperparameters

# The model file each family writes beside metadata.json (read by serve's memory plan,
# which must not import TensorFlow or scikit-learn to learn the names).
KERAS_MODEL_FILE = "model.keras"
CLASSICAL_MODEL_FILE = "model.joblib"

History = dict[str, list[float]]


class NotConvertibleError(ValueError):
    """A model that cannot be compiled to ONNX, and why."""


class AlgorithmInputError(ValueError):
    """A job input that an algorithm cannot use, such as starting weights that do not fit."""


class RunContext(Protocol):
    """What `fit` may use of the job around it: metric lines, checkpoints, the cluster."""

    @property
    def checkpoint_dir(self) -> Path: ...

    @property
    def worker_index(self) -> int: ...

    @property
    def worker_count(self) -> int: ...

    @property
    def train_total(self) -> int:
        """Train images over all workers (each worker holds only its shard)."""

    @property
    def pretrained_dir(self) -> Path | None:
        """The 'pretrained' channel, when the job has one."""

    @property
    def parent(self) -> ParentModel | None:
        """The earlier model this job continues (its `model` channel), checked to fit."""

    @property
    def memory_budget(self) -> int | None:
        """Bytes the job's decoded data may take in memory (None: no limit)."""

    def create_strategy(self) -> Any:
        """The tf.distribute strategy for this host (call before any other TensorFlow op)."""

    def metric(self, name: str, value: float) -> None: ...

    def info(self, message: str) -> None: ...


class Algorithm(ABC):
    """fit / save / load / predict_proba on uint8 HxWxC RGB images.

    An instance knows its input geometry (`image_size`, `channels`) and owns its
    preprocessing: `predict_proba` takes images of any size straight from the decoder.
    """

    def __init__(self, image_size: int, channels: int, class_count: int) -> None:
        self.image_size = image_size
        self.channels = channels
        self.class_count = class_count

    @abstractmethod
    def fit(
        self,
        train: Dataset,
        validation: Dataset | None,
        hp: Hyperparameters,
        run: RunContext,
    ) -> History:
        """Train; report metrics through `run`; return per-epoch history (may be empty)."""

    @abstractmethod
    def save(self, model_dir: Path) -> None:
        """Write this algorithm's own files into model_dir."""

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path) -> Algorithm:
        """Read back what `save` wrote."""

    @abstractmethod
    def predict_proba(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Images (uint8 HxWxC, any size) -> probabilities, shape (n, class_count)."""

    def compile_for_serving(self, runtime: str, threads: int) -> None:
        """Get `predict_proba` ready for serve's requests on `threads` threads, before the
        first; `runtime` is SMVISION_KERAS_RUNTIME's value. Nothing to do here: Keras models
        compile (KerasAlgorithm)."""
        return None

    def to_onnx(self) -> tuple[bytes, dict[str, Any]] | None:
        """The fitted model as an ONNX model that serve runs without the library that trained
        it, and export.json's record of its input; None where training makes none (Keras
        models are compiled when serve starts). Raises NotConvertibleError, naming why,
        for a model of an algorithm that has an ONNX form but cannot take it."""
        return None

    def report(self) -> dict[str, Any]:
        """What training found beyond the metrics, for evaluation.json (such as
        cross-validation scores); empty when there is nothing."""
        return {}

    def preprocessing(self) -> dict[str, object]:
        """How raw images become model input, for metadata.json."""
        return {
            "decode": (
                "smvision.data.images.ModelInput.from_file (RGB, 16-bit scaled to 8-bit, alpha "
                "dropped; a JPEG at 1/2, 1/4 or 1/8 scale when scaled_jpeg_decode is true "
                "and its shorter side stays at least image_size)"
            ),
            "resize": (
                f"smvision.data.images.prepare to {self.image_size}x{self.image_size}x"
                f"{self.channels} (INTER_AREA down, INTER_LINEAR up)"
            ),
        }
