"""ResNet50 transfer learning: train a new head on a frozen base, then fine-tune its top.

Starting weights come from the 'model' channel when the job continues an earlier model,
else from the 'pretrained' channel when the job has one (a Keras ResNet50 weights file
without the top, such as resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5), else
from Keras' ImageNet weights (found in KERAS_HOME when baked into the image, downloaded
otherwise), or none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from smvision.algorithms import frozen_cache, gradcam
from smvision.algorithms.base import AlgorithmInputError, RunContext
from smvision.algorithms.keras_base import FeatureCache, KerasAlgorithm, Phase
from smvision.data.dataset import Dataset
from smvision.schema.hyperparameters import Hyperparameters
from smvision.schema.specs import IMAGENET_NOTOP_FILE

BASE_NAME = "resnet50"
LAST_BLOCK = "conv5_block3_out"


class WeightsError(AlgorithmInputError):
    """Starting weights that cannot be found or do not fit ResNet50."""


@keras.saving.register_keras_serializable(package="smvision")
class ImageNetCaffePreprocessing(keras.layers.Layer):
    """ImageNet 'caffe' preprocessing (RGB->BGR, mean subtraction) as a saveable layer."""

    def call(self, inputs: Any) -> Any:
        bgr = keras.ops.flip(inputs, axis=-1)
        mean = keras.ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=bgr.dtype)
        return bgr - mean


class ResNet50Algorithm(KerasAlgorithm):
    def __init__(self, image_size: int, channels: int, class_count: int, model: Any = None) -> None:
        super().__init__(image_size, channels, class_count, model)
        self._caches: frozen_cache.Caches | None = None
        self._caches_tried = False

    def build_model(self, hp: Hyperparameters, run: RunContext) -> Any:
        layers = keras.layers
        base = base_network(self.image_size)
        if run.parent is None:  # else the model channel's weights (KerasAlgorithm._start_from)
            load_starting_weights(base, starting_weights_file(run.pretrained_dir, hp), run.info)
        base.trainable = False
        inputs = keras.Input((self.image_size, self.image_size, 3), name="pixels")
        x = ImageNetCaffePreprocessing(name="imagenet_preprocessing")(inputs)
        x = base(x, training=False)  # batch-norm statistics stay frozen, also when fine-tuning
        x = layers.Dropout(hp.real("dropout"))(x)
        outputs = layers.Dense(
            self.class_count, activation=self.output_activation(hp), dtype="float32"
        )(x)
        return keras.Model(inputs, outputs, name="smvision_resnet50")

    def phases(self, hp: Hyperparameters) -> list[Phase]:
        return [
            Phase("head", hp.integer("epochs"), hp.real("learning_rate")),
            Phase("fine-tune", hp.integer("fine_tune_epochs"), hp.real("fine_tune_learning_rate")),
        ]

    def enter_phase(self, phase: Phase, hp: Hyperparameters) -> None:
        base = self.model.get_layer(BASE_NAME)
        if phase.name == "head":
            base.trainable = False
            return
        base.trainable = True
        count = hp.integer("fine_tune_layers")
        for index, layer in enumerate(base.layers):
            in_top = count > 0 and index >= len(base.layers) - count
            layer.trainable = in_top and not isinstance(layer, keras.layers.BatchNormalization)

    def phase_cache(
        self,
        phase: Phase,
        hp: Hyperparameters,
        train: Dataset,
        validation: Dataset | None,
        run: RunContext,
    ) -> FeatureCache | None:
        """Both phases train on the frozen layers' output, computed once (frozen_cache.py)."""
        if not hp.flag("frozen_cache"):
            return None
        base = self.model.get_layer(BASE_NAME)
        if not self._caches_tried:
            self._caches_tried = True
            fine_tunes = hp.integer("fine_tune_epochs") > 0 and hp.integer("fine_tune_layers") > 0
            self._caches = frozen_cache.build(
                self.model, base, hp, train, validation, run.memory_budget, fine_tunes, run.info
            )
        if self._caches is None:
            return None
        if phase.name == "head":
            return frozen_cache.head_cache(self.model, self._caches)
        return frozen_cache.top_cache(self.model, base, self._caches)

    def release_caches(self) -> None:
        self._caches, self._caches_tried = None, False

    def saliency_parts(self) -> tuple[Callable[[Any], Any], Callable[[Any], Any]] | None:
        """The base's last block (7x7 at 224 pixels); then its average pooling to the logits."""
        preprocess = self.model.get_layer("imagenet_preprocessing")
        base = self.model.get_layer(BASE_NAME)
        last_block = keras.Model(base.inputs, base.get_layer(LAST_BLOCK).output)
        logits = gradcam.logits_of(self.model.layers[-1])

        def to_maps(pixels: Any) -> Any:
            return last_block(preprocess(pixels), training=False)

        def to_logits(maps: Any) -> Any:
            return logits(keras.ops.mean(maps, axis=(1, 2)))  # dropout: inactive here

        return to_maps, to_logits

    def preprocessing(self) -> dict[str, object]:
        return super().preprocessing() | {
            "model_input": "float32 RGB 0-255; ImageNet caffe preprocessing inside the model"
        }


def base_network(image_size: int) -> Any:
    """ResNet50 without its top, global-average-pooled: 2048 values per image."""
    return keras.applications.ResNet50(
        include_top=False,
        weights=None,
        input_shape=(image_size, image_size, 3),
        pooling="avg",
        name=BASE_NAME,
    )


def starting_weights_file(pretrained_dir: Path | None, hp: Hyperparameters) -> Path | None:
    """The pretrained channel's file, else Keras' ImageNet file, else None for weights=none."""
    path = find_pretrained_weights(pretrained_dir)
    if path is None and hp.text("weights") == "none":
        return None
    return path if path is not None else imagenet_weights_file()


def load_starting_weights(base: Any, path: Path | None, info: Callable[[str], None]) -> None:
    """Load `path` into the base network, or leave it random when there is none."""
    if path is None:
        info("ResNet50 starts from random weights (weights=none).")
        return
    try:
        base.load_weights(path)
    except (ValueError, OSError, KeyError) as error:
        raise WeightsError(
            f"{path} does not fit ResNet50 without its top ({error}); give the "
            f"'pretrained' channel {IMAGENET_NOTOP_FILE} or a file written by "
            "keras.applications.ResNet50(include_top=False).save_weights()."
        ) from error
    info(f"ResNet50 starting weights: {path}")


def find_pretrained_weights(directory: Path | None) -> Path | None:
    if directory is None:
        return None
    candidates = sorted(p for p in directory.rglob("*.h5") if p.is_file())
    if not candidates:
        raise WeightsError(
            f"The 'pretrained' channel at {directory} holds no .h5 weights file; give it "
            f"{IMAGENET_NOTOP_FILE} (Keras' ImageNet weights without the top)."
        )
    preferred = [p for p in candidates if "notop" in p.name]
    return (preferred or candidates)[0]


def imagenet_weights_file() -> Path:
    """Keras' ImageNet file: from KERAS_HOME when baked into the image, else downloaded."""
    try:
        return Path(
            keras.utils.get_file(
                IMAGENET_NOTOP_FILE,
                "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
                + IMAGENET_NOTOP_FILE,
                cache_subdir="models",
                file_hash="4d473c1dd8becc155b73f8504c6f6626",
            )
        )
    except Exception as error:  # get_file raises bare Exception subclasses for network errors
        raise WeightsError(
            f"weights=imagenet needs {IMAGENET_NOTOP_FILE}, which is not baked into this "
            f"image and could not be downloaded ({error}). Give the job a 'pretrained' "
            "channel holding it, build the image with --build-arg RESNET50_WEIGHTS=imagenet, "
            "or set weights=none."
        ) from error
