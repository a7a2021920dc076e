"""features=deep: the global-average-pooled output of a frozen ResNet50, in batches.

The network and its weights are resnet50's own (`smvision.algorithms.resnet50`): the
'pretrained' channel, else Keras' ImageNet file, else random with weights=none. Only
this module imports TensorFlow, and only jobs whose features include 'deep' import it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from smvision.algorithms import resnet50
from smvision.algorithms.base import RunContext
from smvision.algorithms.features.backbones import (
    DEEP_WIDTH,
    NETWORK,
    BackboneRecord,
    keras_models_dir,
    locate,
    sha256_of,
)
from smvision.schema.hyperparameters import Hyperparameters

BATCH = 64
RANDOM_WEIGHTS_FILE = "deep_backbone.weights.h5"


class Backbone:
    """Prepared uint8 images (N x S x S x C) -> N x 2048 float32, BATCH images at a time."""

    width = DEEP_WIDTH

    def __init__(self, image_size: int, network: Any, record: BackboneRecord, source: Path) -> None:
        self.image_size = image_size
        self.record = record
        self._source = source  # the weights file, copied into the model when it travels with it
        self._network = network
        self._compiled: dict[int, Any] = {}
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def for_training(cls, image_size: int, hp: Hyperparameters, run: RunContext) -> Backbone:
        path = resnet50.starting_weights_file(run.pretrained_dir, hp)
        if path is None:
            weights = "random (weights=none)"
        elif run.pretrained_dir is not None and path.is_relative_to(run.pretrained_dir):
            weights = "pretrained channel"
        else:
            weights = "imagenet"
        return cls.build(image_size, path, weights, hp.integer("seed"), run.info)

    @classmethod
    def build(
        cls,
        image_size: int,
        path: Path | None,
        weights: str,
        seed: int,
        info: Callable[[str], None],
    ) -> Backbone:
        """The network with the weights in `path` (None: random, seeded), and its record."""
        keras.utils.set_random_seed(seed)
        network = resnet50.base_network(image_size)
        resnet50.load_starting_weights(network, path, info)
        scratch = None
        if path is None:  # random weights exist only here: keep them to ship with the model
            scratch = tempfile.TemporaryDirectory(prefix="smvision-backbone-")
            path = Path(scratch.name) / RANDOM_WEIGHTS_FILE
            network.save_weights(path)
        in_image = weights == "imagenet" and path.resolve().parent == keras_models_dir().resolve()
        record = BackboneRecord(NETWORK, weights, path.name, sha256_of(path), not in_image)
        backbone = cls(image_size, network, record, path)
        backbone._scratch = scratch
        return backbone

    @classmethod
    def load(cls, model_dir: Path, image_size: int, record: BackboneRecord) -> Backbone:
        path = locate(model_dir, record)
        network = resnet50.base_network(image_size)
        network.load_weights(path)
        return cls(image_size, network, record, path)

    def save(self, model_dir: Path) -> None:
        """Copy the weights into the model directory when they travel with the model."""
        if self.record.in_model_dir:
            shutil.copyfile(self._source, model_dir / self.record.file)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        channels = int(batch.shape[3])
        if channels not in self._compiled:
            self._compiled[channels] = self._compile(channels)
        parts = [
            self._compiled[channels](batch[start : start + BATCH]).numpy()
            for start in range(0, len(batch), BATCH)
        ]
        return np.concatenate(parts).astype(np.float32)

    def pooled_function(self, channels: int) -> Any:
        """uint8 pixels (N x S x S x channels) -> N x 2048 float32, as a tf.function with a
        fixed signature: what serve compiles to TFLite or ONNX."""
        return self._compile(channels)

    def _compile(self, channels: int) -> Any:
        size, network = self.image_size, self._network
        preprocess = resnet50.ImageNetCaffePreprocessing()

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, channels], tf.uint8)])
        def pooled(pixels: Any) -> Any:
            rgb = tf.cast(pixels, tf.float32)
            if channels == 1:
                rgb = tf.tile(rgb, [1, 1, 1, 3])
            return network(preprocess(rgb), training=False)

        return pooled


def use_one_thread() -> None:
    """One TensorFlow thread per process: `serve` runs a worker per core for svm and rf."""
    # RuntimeError: TensorFlow has started already and the setting no longer applies.
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
