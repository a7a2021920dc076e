"""The guide's augmentation for cnn and resnet50, as Keras preprocessing layers.

Each transform is a hyperparameter (rotation, width and height shift, zoom, horizontal
flip, random crop, contrast). The layers run as TensorFlow ops on whole batches inside
the tf.data pipeline, never per image in Python, and only while training: validation,
test and serving see the images as they are.
"""

from __future__ import annotations

from typing import Any

import keras

from smvision.schema.hyperparameters import Hyperparameters


def augmenter(hp: Hyperparameters, image_size: int) -> Any | None:
    """A Sequential of the transforms `hp` turns on, or None when none is on."""
    if not hp.flag("augment"):
        return None
    layers: list[Any] = []
    rotation = hp.real("rotation_range")
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation / 360.0, fill_mode="nearest"))
    height_shift, width_shift = hp.real("height_shift_range"), hp.real("width_shift_range")
    if height_shift or width_shift:
        layers.append(
            keras.layers.RandomTranslation(height_shift, width_shift, fill_mode="nearest")
        )
    zoom = hp.real("zoom_range")
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="nearest"))
    if hp.flag("horizontal_flip"):
        layers.append(keras.layers.RandomFlip("horizontal"))
    crop = hp.real("random_crop")
    if crop:
        side = max(1, round(image_size * (1.0 - crop)))
        layers.append(keras.layers.RandomCrop(side, side))
        layers.append(keras.layers.Resizing(image_size, image_size))
    contrast = hp.real("contrast_range")
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, value_range=(0, 255)))
    return keras.Sequential(layers, name="augment") if layers else None
