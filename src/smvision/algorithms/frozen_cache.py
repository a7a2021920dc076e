"""resnet50's frozen layers run once per image, not once per image and epoch.

While resnet50 trains its head, the whole base is frozen: each epoch pushed every image
through it again to get the same 2048 pooled values (on 2 cores, 9-13 images/s; 10.5
minutes for a few hundred photos). Here the base runs once per image and the head trains
on the cached values. Fine-tuning trains the base's last `fine_tune_layers` layers, so
everything below the residual-block output just under them (`cut_layer`: conv4_block6_out,
14x14x1024 at 224 px, for the default 30) is frozen as well: that output is cached once
(float16, half the memory) and fine-tuning runs the layers above it only.

Both are exact: the cached tensors are what the frozen layers compute (the base runs with
training=False, so batch normalisation never changes them). With augmentation on, each
training image is cached as `augmented_views` augmented views, and every epoch takes one
of them at random per image, where the images path drew a new augmentation every epoch.

What does not fit the job's memory budget (data_memory_mb) is not cached: fine-tuning's
tensors first, then the pooled values; that phase trains on the images as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from smvision.algorithms import augmentation
from smvision.algorithms.keras_base import FeatureCache
from smvision.data.dataset import Dataset
from smvision.schema.hyperparameters import Hyperparameters

log = logging.getLogger(__name__)

BLOCK_OUTPUT_SUFFIX = "_out"  # a ResNet's residual-block outputs: single tensors to cut at
PREPROCESSING = "imagenet_preprocessing"
BATCH = 32


def cut_layer(base: Any, trainable_count: int) -> str | None:
    """The last residual-block output below the first layer fine-tuning trains, or None
    when fine-tuning reaches into the stem (nothing worth caching below it)."""
    first_trained = len(base.layers) - trainable_count
    outputs = [layer.name for layer in base.layers[:first_trained] if layer.name.endswith("_out")]
    return outputs[-1] if outputs else None


@dataclass
class Caches:
    """The cached tensors of every phase that has them: the pooled values for the head
    phase, the cut's output for fine-tuning (None: fine-tuning trains on the images)."""

    pooled: tuple[np.ndarray, np.ndarray | None]
    cut: str | None = None
    below_cut: tuple[np.ndarray, np.ndarray | None] | None = None


def head_cache(model: Any, caches: Caches) -> FeatureCache:
    """The head phase: pooled values -> dropout -> dense, the model's own two layers."""
    dropout, dense = model.layers[-2], model.layers[-1]
    pooled = keras.Input(caches.pooled[0].shape[2:], name="pooled")
    head = keras.Model(pooled, dense(dropout(pooled)), name="resnet50_head")
    return FeatureCache(head, *caches.pooled)


def top_cache(model: Any, base: Any, caches: Caches) -> FeatureCache | None:
    """Fine-tuning: the cut's output -> the base's layers above it -> dropout -> dense."""
    if caches.cut is None or caches.below_cut is None:
        return None
    dropout, dense = model.layers[-2], model.layers[-1]
    upper = keras.Model(base.get_layer(caches.cut).output, base.output)
    below = keras.Input(caches.below_cut[0].shape[2:], name=caches.cut)
    pooled = upper(below, training=False)  # frozen batch-norm, as in the whole model
    top = keras.Model(below, dense(dropout(pooled)), name="resnet50_top")
    return FeatureCache(top, *caches.below_cut)


def build(
    model: Any,
    base: Any,
    hp: Hyperparameters,
    train: Dataset,
    validation: Dataset | None,
    budget: int | None,
    fine_tunes: bool,
    info: Callable[[str], None],
) -> Caches | None:
    """Run the frozen layers once over train (its views) and validation; None when not even
    the pooled values fit `budget` bytes."""
    size = model.input_shape[1]
    augmenter = augmentation.augmenter(hp, size)
    views = hp.integer("augmented_views") if augmenter is not None else 1
    images = len(train) * views + (len(validation) if validation is not None else 0)
    cut = cut_layer(base, hp.integer("fine_tune_layers")) if fine_tunes else None
    pooled_bytes = images * int(base.output.shape[-1]) * 4
    cut_bytes = 0
    if cut is not None:
        cut_bytes = images * int(np.prod(base.get_layer(cut).output.shape[1:])) * 2
    if budget is not None and pooled_bytes + cut_bytes > budget:
        if cut is not None:
            info(
                f"Fine-tuning trains on the images: the frozen layers' output below it "
                f"({cut_bytes / 1e6:.0f} MB) does not fit the memory budget "
                f"({budget / 1e6:.0f} MB, data_memory_mb)."
            )
        cut, cut_bytes = None, 0
        if pooled_bytes > budget:
            info(
                f"The head trains on the images: the base's pooled output "
                f"({pooled_bytes / 1e6:.0f} MB) does not fit the memory budget "
                f"({budget / 1e6:.0f} MB, data_memory_mb)."
            )
            return None
    as_is = _frozen_function(model, base, cut, None)
    train_run = as_is if augmenter is None else _frozen_function(model, base, cut, augmenter)
    train_parts = [_run(train_run, train) for _ in range(views)]
    validation_part = _run(as_is, validation) if validation is not None else None
    pooled_train = np.stack([part[0] for part in train_parts])
    pooled = (pooled_train, validation_part[0] if validation_part else None)
    below_cut = None
    if cut is not None:
        below_cut = (
            np.stack([part[1] for part in train_parts]),
            validation_part[1] if validation_part else None,
        )
    info(
        f"Ran ResNet50's frozen layers once over {len(train)} train images"
        + (f" ({views} augmented views of each)" if augmenter is not None else "")
        + (f" and {len(validation)} validation images" if validation is not None else "")
        + f": the head trains on their pooled output ({pooled_bytes / 1e6:.0f} MB)"
        + (
            f", fine-tuning on {cut}'s ({cut_bytes / 1e6:.0f} MB, float16)."
            if cut is not None
            else "."
        )
    )
    return Caches(pooled, cut, below_cut)


def _frozen_function(model: Any, base: Any, cut: str | None, augmenter: Any) -> Any:
    """uint8 pixels -> (pooled output, the cut's output or nothing), through `augmenter`
    first when it is given."""
    preprocess = model.get_layer(PREPROCESSING)
    if cut is None:
        lower, upper = base, None
    else:
        lower = keras.Model(base.input, base.get_layer(cut).output)
        upper = keras.Model(base.get_layer(cut).output, base.output)
    size, channels = model.input_shape[1], model.input_shape[3]

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, channels], tf.uint8)])
    def frozen(pixels: Any) -> tuple[Any, Any]:
        values = tf.cast(pixels, tf.float32)
        if augmenter is not None:
            values = augmenter(values, training=True)
        below = lower(preprocess(values), training=False)
        if upper is None:
            return tf.cast(below, tf.float32), tf.zeros([0])
        return tf.cast(upper(below, training=False), tf.float32), tf.cast(below, tf.float16)

    return frozen


def _run(frozen: Any, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The frozen layers' outputs over a data set, BATCH images at a time."""
    pooled, below = [], []
    for chunk in dataset.chunks(BATCH):
        values, cut = frozen(chunk)
        pooled.append(values.numpy())
        below.append(cut.numpy())
    return np.concatenate(pooled), np.concatenate(below)
