"""A compact VGG-style convolutional network trained from scratch."""

from __future__ import annotations

from typing import Any

import keras

from smvision.algorithms.base import RunContext
from smvision.algorithms.keras_base import KerasAlgorithm
from smvision.hyperparameters import Hyperparameters

BLOCK_FILTERS = (32, 64, 128)


class CNNAlgorithm(KerasAlgorithm):

    def build_model(self, hp: Hyperparameters, run: RunContext) -> Any:
        layers = keras.layers
        inputs = keras.Input((self.image_size, self.image_size, self.channels), name="pixels")
        x = layers.Rescaling(1.0 / 255.0)(inputs)
        for filters in BLOCK_FILTERS:
            for _ in range(2):
                x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
                x = layers.BatchNormalization(momentum=0.9)(x)
                x = layers.Activation("relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(hp.real("dropout"))(x)
        outputs = layers.Dense(self.class_count, activation="softmax", dtype="float32")(x)
        return keras.Model(inputs, outputs, name="smvision_cnn")

    def preprocessing(self) -> dict[str, object]:
        return super().preprocessing() | {
            "model_input": "float32 pixels 0-255, rescaled to [0, 1] inside the model"
        }
