"""Grad-CAM (Selvaraju et al., 2017): where in the image a network found its evidence.

The gradient of a class's logit with respect to the last convolutional feature maps,
averaged over each map, weighs the maps; their weighted sum, through a ReLU, is the map
of the evidence for that class. The logit, not the softmax probability: a confident
prediction's probability barely moves, and its gradient would show nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

BATCH = 32


def heat_maps(
    to_maps: Callable[[Any], Any],
    to_logits: Callable[[Any], Any],
    pixels: np.ndarray,
    classes: np.ndarray,
) -> np.ndarray:
    """uint8 images (N x S x S x C) and one class each -> N x S x S maps in [0, 1]."""
    size = pixels.shape[1]
    parts = []
    for start in range(0, len(pixels), BATCH):
        batch = tf.cast(pixels[start : start + BATCH], tf.float32)
        chosen = tf.constant(classes[start : start + BATCH], dtype=tf.int32)
        with tf.GradientTape() as tape:
            maps = to_maps(batch)
            tape.watch(maps)
            logits = tf.gather(to_logits(maps), chosen, axis=1, batch_dims=1)
        gradients = tape.gradient(logits, maps)
        weights = tf.reduce_mean(gradients, axis=(1, 2))
        cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", maps, weights))
        cam = tf.image.resize(cam[..., None], (size, size), method="bilinear")[..., 0]
        parts.append(cam.numpy())
    heat = np.concatenate(parts).astype(np.float64)
    peaks = heat.max(axis=(1, 2), keepdims=True)
    scaled: np.ndarray = np.divide(heat, peaks, out=np.zeros_like(heat), where=peaks > 0)
    return scaled


def logits_of(dense: Any) -> Callable[[Any], Any]:
    """A softmax Dense layer's logits: its kernel and bias without the activation."""

    def logits(features: Any) -> Any:
        return tf.matmul(features, tf.cast(dense.kernel, features.dtype)) + tf.cast(
            dense.bias, features.dtype
        )

    return logits
