"""cnn and resnet50's augmentation layers and training loss, on their own (nothing trains)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from smvision.algorithms import augmentation, losses
from smvision.local.samples import digits_images
from smvision.schema import hyperparameters


def layer_names(raw: dict[str, str]) -> list[str]:
    hp = hyperparameters.parse({"algorithm": "cnn", **raw})
    layers = augmentation.augmenter(hp, 32)
    return [] if layers is None else [type(layer).__name__ for layer in layers.layers]


def test_each_transform_is_its_hyperparameter() -> None:
    assert layer_names({}) == [
        "RandomRotation",
        "RandomTranslation",
        "RandomZoom",
        "RandomContrast",
    ]
    assert layer_names({"augment": "false", "horizontal_flip": "true"}) == []
    none = {
        "rotation_range": "0",
        "width_shift_range": "0",
        "height_shift_range": "0",
        "zoom_range": "0",
        "contrast_range": "0",
    }
    assert layer_names(none) == []
    assert layer_names(none | {"height_shift_range": "0.2"}) == ["RandomTranslation"]
    assert layer_names(none | {"horizontal_flip": "true", "random_crop": "0.25"}) == [
        "RandomFlip",
        "RandomCrop",
        "Resizing",
    ]


def test_augmentation_runs_in_the_tf_data_graph_on_whole_batches() -> None:
    pixels, _ = digits_images()
    batch = np.stack([np.kron(p, np.ones((4, 4), np.uint8)) for p in pixels[:64]])
    batch = batch[..., None].astype(np.float32)  # 64 digits at 32x32x1
    hp = hyperparameters.parse(
        {"algorithm": "cnn", "random_crop": "0.25", "horizontal_flip": "true"}
    )
    layers = augmentation.augmenter(hp, 32)
    assert layers is not None
    dataset = tf.data.Dataset.from_tensors(batch).map(lambda x: layers(x, training=True))
    traced = dataset.element_spec
    assert traced.shape.as_list() == [64, 32, 32, 1] and traced.dtype == tf.float32
    augmented = next(iter(dataset)).numpy()
    assert augmented.shape == batch.shape
    changed = np.abs(augmented - batch).reshape(64, -1).mean(axis=1)
    assert (changed > 1.0).mean() > 0.9  # nearly every image moved
    np.testing.assert_array_equal(layers(batch, training=False).numpy(), batch)


def test_label_smoothing_trains_on_smoothed_one_hot_labels() -> None:
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    labels = np.array([0, 2])
    plain = losses.per_example(3, 0.0)(labels, probabilities).numpy()
    np.testing.assert_allclose(plain, -np.log([0.7, 0.8]), rtol=1e-5)
    smoothing = 0.3
    target = (1 - smoothing) * np.eye(3)[labels] + smoothing / 3
    expected = -(target * np.log(probabilities)).sum(axis=1)
    smoothed = losses.per_example(3, smoothing)(labels, probabilities).numpy()
    np.testing.assert_allclose(smoothed, expected, rtol=1e-5)
    assert isinstance(losses.per_example(3, 0.0), keras.losses.Loss)
