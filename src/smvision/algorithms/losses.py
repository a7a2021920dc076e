"""The training loss of cnn and resnet50, with label smoothing done right for sparse labels.

Keras' SparseCategoricalCrossentropy has no label smoothing; the labels become one-hot
inside the graph and go to CategoricalCrossentropy(label_smoothing=...), which trains on
(1 - s) * one_hot + s / classes. A multi-label model (a sigmoid per label, 0/1 labels)
trains on binary cross-entropy, smoothed towards 0.5 the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf


def per_example(
    class_count: int, label_smoothing: float, multi_label: bool = False
) -> Callable[[Any, Any], Any]:
    """(integer labels, or a 0/1 row per example for multi-label; probabilities) -> one loss
    per example (reduction by the caller)."""
    if multi_label:
        return keras.losses.BinaryCrossentropy(  # type: ignore[no-any-return]
            label_smoothing=label_smoothing, reduction=None
        )
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(reduction=None)  # type: ignore[no-any-return]
    smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=None)

    def loss(labels: Any, probabilities: Any) -> Any:
        one_hot = tf.one_hot(tf.cast(labels, tf.int32), class_count, dtype=probabilities.dtype)
        return smoothed(one_hot, probabilities)

    return loss
