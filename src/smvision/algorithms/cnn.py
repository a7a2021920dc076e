"""A compact VGG-style convolutional network trained from scratch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from smvision.algorithms import gradcam
from smvision.algorithms.base import RunContext
from smvision.algorithms.keras_base import KerasAlgorithm
from smvision.schema.hyperparameters import Hyperparameters

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
        outputs = layers.Dense(
            self.class_count, activation=self.output_activation(hp), dtype="float32"
        )(x)
        return keras.Model(inputs, outputs, name="smvision_cnn")

    def saliency_parts(self) -> tuple[Callable[[Any], Any], Callable[[Any], Any]] | None:
        """The last convolution block's activations; then pooling to the logits."""
        layers = self.model.layers
        activations = [
            i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Activation)
        ]
        last = activations[-1]
        to_maps = keras.Model(self.model.inputs, layers[last].output)
        tail, logits = layers[last + 1 : -1], gradcam.logits_of(layers[-1])

        def to_logits(maps: Any) -> Any:
            for layer in tail:  # pooling, then dropout (inactive outside training)
                maps = layer(maps, training=False)
            return logits(maps)

        return to_maps, to_logits

    def preprocessing(self) -> dict[str, object]:
        return super().preprocessing() | {
            "model_input": "float32 pixels 0-255, rescaled to [0, 1] inside the model"
        }
