"""The algorithm table: one entry per algorithm, every fact about it, in one place.

`train`, `serve` and the launchers read an algorithm's facts here and nowhere else: its
implementation (imported only when it runs), its hyperparameters, its input geometry,
the instance types it defaults to, how `serve` runs it, whether a job spreads it over
hosts, and the channels it reads. Adding an algorithm is one module under algorithms/
and one entry below.

Installed packages may add entries too, through the `smvision.algorithms` entry-point
group (each entry point names an `AlgorithmSpec`), so a derived image or a test can
plug in an algorithm without editing this file. Standard library only: the launchers
import it on a laptop.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Literal

from smvision.schema.params import CLASSICAL, KERAS, RESNET50, RF, SVM, HyperparameterError, Param

ENTRY_POINT_GROUP = "smvision.algorithms"
SERVING_CPU = "ml.m5.xlarge"
# ResNet50's ImageNet input: resnet50's image_size, and features=deep's when image_size is auto.
IMAGENET_IMAGE_SIZE = 224
# Keras' ImageNet weights of ResNet50 without its top: what a 'pretrained' channel holds,
# and what the image bakes into its Keras cache (RESNET50_WEIGHTS=imagenet).
IMAGENET_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


@dataclass(frozen=True)
class AlgorithmSpec:
    """Everything the image and the launchers need to know about one algorithm."""

    name: str
    # "package.module:Class", a subclass of smvision.algorithms.base.Algorithm.
    implementation: str
    # "classical" (OpenCV features into scikit-learn) or "keras" (a network); informative.
    family: str
    summary: str
    # Hyperparameters besides the COMMON ones every algorithm takes.
    parameters: tuple[Param, ...]
    # The default image_size: pixels, or "auto" (see auto_image_size).
    image_size: int | Literal["auto"]
    # "auto": one channel when every training image is grey, else three.
    channels: Literal["auto", 1, 3]
    min_image_size: int
    # Why image_size may not go below min_image_size, for the error message.
    min_image_size_reason: str
    training_instance_type: str
    serving_instance_type: str
    # Server worker processes per instance; None: one per core.
    serve_workers: int | None
    # Whether a job with several instances trains one model across all of them.
    spans_hosts: bool
    # How serve runs a trained Keras model, or the features=deep network of svm and rf,
    # unless SMVISION_KERAS_RUNTIME says otherwise (smvision.serving.models).
    keras_runtime: str | None = None
    required_channels: tuple[str, ...] = ("train",)
    optional_channels: tuple[str, ...] = ("validation", "test")
    # What a `model` channel (an earlier model of the same algorithm) does to a job, for
    # the algorithms that list "model" among their channels.
    incremental: str = ""
    # Training images every class needs (after validation is held out of train), and why.
    min_images_per_class: int = 1
    min_images_reason: str = ""
    # Defaults that differ from the parameter's own (resnet50 trains fewer epochs).
    defaults: Mapping[str, object] = field(default_factory=dict)
    # The guide's qualitative columns, as `compare` reports them: how many labelled images
    # it needs to do well, what a person can inspect of a decision, what it takes to set up.
    # image_size "auto" keeps within this range: below it the features see too little
    # structure (upscaling up to it helps), above it photos cost time and memory for
    # little accuracy (64 was the fixed default before "auto").
    auto_image_size_range: tuple[int, int] = (32, 64)
    data_needed: str = ""
    interpretability: str = ""
    setup: str = ""

    def auto_image_size(self, median_side: int) -> int:
        """image_size "auto": the training images' median side rounded up to a multiple of
        8 (HOG's cell; the CNN's three poolings), kept within auto_image_size_range."""
        low, high = self.auto_image_size_range
        return max(low, min(high, -(-median_side // 8) * 8))

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.required_channels + self.optional_channels

    def reads_channel(self, channel: str) -> bool:
        return channel in self.channel_names

    @property
    def one_worker_per_core(self) -> bool:
        return self.serve_workers is None


_SVM = AlgorithmSpec(
    name="svm",
    implementation="smvision.algorithms.svm:SVMAlgorithm",
    family="classical",
    summary="image features (HOG by default; colour, pixels, Gabor, edges, deep) into an SVM",
    parameters=CLASSICAL + SVM,
    image_size="auto",
    channels="auto",
    min_image_size=8,
    min_image_size_reason="HOG needs at least one 8-pixel cell",
    training_instance_type="ml.m5.xlarge",
    serving_instance_type=SERVING_CPU,
    # scikit-learn predicts on one core per call: a worker per core.
    serve_workers=None,
    # features=deep: the ResNet50 backbone compiled at start, as resnet50 is (see there).
    keras_runtime="tflite",
    spans_hosts=False,
    incremental="refits on this job's data (an SVM cannot add to a fitted model); the "
    "earlier model is checked for fit and recorded as the parent",
    data_needed="a few hundred images (tens per class)",
    interpretability="medium: HOG features can be drawn; the RBF kernel's decision cannot",
    setup="CPU only: OpenCV and scikit-learn (and TensorFlow for features=deep)",
    # features=deep reads its ResNet50 weights from 'pretrained', as resnet50 does.
    optional_channels=("validation", "test", "pretrained", "model"),
    min_images_per_class=2,
    min_images_reason="to calibrate its probabilities on cross-validated decision values, "
    "each fold holding one image of every class out",
)

# rf differs from svm only in its model: the same features, instances and channels.
_RF = replace(
    _SVM,
    name="rf",
    implementation="smvision.algorithms.rf:RandomForestAlgorithm",
    summary="the same features into a random forest",
    parameters=CLASSICAL + RF,
    min_images_per_class=1,
    min_images_reason="",
    incremental="keeps the earlier forest's trees and adds n_estimators new ones grown on "
    "this job's data (warm start)",
    interpretability="medium-high: feature importances, named and drawn onto the image",
)

_CNN = AlgorithmSpec(
    name="cnn",
    implementation="smvision.algorithms.cnn:CNNAlgorithm",
    family="keras",
    summary="a compact VGG-style Keras CNN trained from scratch",
    parameters=KERAS,
    image_size="auto",
    channels="auto",
    min_image_size=16,
    min_image_size_reason="it pools the image three times",
    training_instance_type="ml.p3.2xlarge",
    serving_instance_type=SERVING_CPU,
    # TensorFlow spreads one batch over every core already, and each worker process
    # holds its own copy of the model and of the TensorFlow runtime (hundreds of MB),
    # so more workers buy memory use, not speed: one worker, with micro-batching.
    serve_workers=1,
    # Compiled to TFLite at start: on LiteRT's XNNPACK kernels the small network costs
    # about half the CPU per image that TensorFlow's per-op dispatch does (bench/NOTES.md).
    keras_runtime="tflite",
    spans_hosts=True,
    optional_channels=("validation", "test", "model"),
    incremental="starts from the earlier model's weights (reinitialize_top_layer=true "
    "gives it a new head for other classes)",
    data_needed="thousands of images: it learns its features from scratch",
    interpretability="low: learned filters; saliency maps only",
    setup="TensorFlow; a GPU beyond a few thousand images",
)

# resnet50 shares the cnn's Keras training loop, instances and serving; it differs in its
# network, its fixed ImageNet input and its weights.
_RESNET50 = replace(
    _CNN,
    name="resnet50",
    implementation="smvision.algorithms.resnet50:ResNet50Algorithm",
    summary="Keras ResNet50 transfer learning: new head, then fine-tuning",
    parameters=KERAS + RESNET50,
    image_size=IMAGENET_IMAGE_SIZE,
    auto_image_size_range=(IMAGENET_IMAGE_SIZE, IMAGENET_IMAGE_SIZE),
    channels=3,
    min_image_size=32,
    min_image_size_reason="it downsamples 32 times; 224 matches ImageNet",
    # Compiled to TFLite at start, as the cnn. On 2 idle cores (bench/RESULTS.md) one photo
    # took 40.5 ms on TFLite against 64.5 on TensorFlow (ONNX Runtime 27.6, but it converts
    # ResNet50 more slowly); the first start converts in about 24 s, later ones read the
    # compile cache (2.7 s, against 8.3 s to a ready TensorFlow worker). The int8 export is
    # faster still (13 ms) and needs no conversion at start.
    keras_runtime="tflite",
    optional_channels=("validation", "test", "pretrained", "model"),
    incremental="starts from the earlier model's weights, head and fine-tuned layers "
    "(reinitialize_top_layer=true gives it a new head for other classes)",
    # No warm-up for early stopping: the base runs with training=False, so no batch-norm
    # statistics move, and the head's best epoch may be kept over fine-tuning's.
    defaults={"epochs": 10, "batch_size": 32, "early_stopping_warmup_steps": 0},
    data_needed="hundreds of images: ImageNet features transfer",
    setup="TensorFlow, ImageNet weights (about 100 MB), a GPU",
)

BUILT_IN: tuple[AlgorithmSpec, ...] = (_SVM, _RF, _CNN, _RESNET50)


@functools.cache
def table() -> dict[str, AlgorithmSpec]:
    """Every algorithm by name: the built-in ones, then those installed packages add."""
    found = {spec.name: spec for spec in BUILT_IN}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        spec = entry_point.load()
        if not isinstance(spec, AlgorithmSpec):
            raise TypeError(
                f"Entry point {entry_point.name} = {entry_point.value} in group "
                f"{ENTRY_POINT_GROUP} is a {type(spec).__name__}; it must name an AlgorithmSpec."
            )
        if spec.name in found:
            raise ValueError(
                f"Entry point {entry_point.value} adds algorithm '{spec.name}', which exists "
                "already; give it another name."
            )
        found[spec.name] = spec
    return found


def names() -> tuple[str, ...]:
    return tuple(table())


def get(name: str | None) -> AlgorithmSpec:
    """The spec of an algorithm; a missing or unknown name is an error that lists them."""
    known = table()
    if not name or not name.strip():
        raise HyperparameterError(
            "Hyperparameter 'algorithm' is missing; set it to one of " + ", ".join(known) + "."
        )
    spec = known.get(name.strip().lower())
    if spec is None:
        raise HyperparameterError(
            f"Hyperparameter 'algorithm' has value '{name}'; use one of " + ", ".join(known) + "."
        )
    return spec
