"""The training loss of cnn and resnet50, with label smoothing done right for sparse labels.

Keras' SparseCategoricalCrossentropy has no label smoothing; the labels become one-hot
inside the graph and go to CategoricalCrossentropy(label_smoothing=...), which trains on
(1 - s) * one_hot + s / classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf


def per_example(class_count: int, label_smoothing: float) -> Callable[[Any, Any], Any]:
    """(integer labels, probabilities) -> one loss per example (reduction by the caller)."""
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(reduction=None)  # type: ignore[no-any-return]
    smoothed = keras.losses.CategoricalCrossentropy(
        label_smoothing=label_smoothing, reduction=None
    )

    def loss(labels: Any, probabilities: Any) -> Any:
        one_hot = tf.one_hot(tf.cast(labels, tf.int32), class_count, dtype=probabilities.dtype)
        return smoothed(one_hot, probabilities)

    return loss
