"""Hyperparameter definitions: types, defaults, bounds, tuning ranges, and the casting.

SageMaker delivers every hyperparameter as a string. `Param.parse` casts one and fails
with a sentence that names the key, the value and what is accepted. The blocks below
are what the algorithm table (`smvision.schema.specs`) composes into each algorithm's schema.
Standard library only: the launchers import it on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The order in which joined kinds are listed and their columns laid out.
FEATURE_KINDS = ("hog", "color", "pixels", "gabor", "edges", "deep")

# How lists of labels read (labels.py): one 0/1 per class, or the ids that apply.
LABEL_FORMATS = ("auto", "multi-hot", "class-id")
# Test-time augmentation (smvision.model.tta): the views a prediction is averaged over.
TTA_MODES = ("none", "flip", "crops")

# What eval_metric may choose for a model of two classes (metrics.BINARY_MEASURES but PR
# AUC, as the built-in TensorFlow classifier offers them).
EVAL_METRICS = ("accuracy", "precision", "recall", "f1", "auc")

# Decoded pixels an image may have (a guard against decompression bombs), by default and
# at most: Pillow, which reads every header, refuses an image over 2 x 89.5 megapixels.
MAX_IMAGE_MEGAPIXELS = 40
MAX_IMAGE_MEGAPIXELS_CEILING = 178

ParamType = Literal["int", "float", "bool", "str"]
RangeKind = Literal["continuous", "integer", "categorical"]
Scaling = Literal["Auto", "Linear", "Logarithmic"]


class HyperparameterError(ValueError):
    """A hyperparameter value that the job cannot use."""


@dataclass(frozen=True)
class TuningRange:
    """The range a tuning job searches, in SageMaker's three kinds."""

    kind: RangeKind
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()
    scaling: Scaling = "Auto"


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, default, what values are allowed, how to tune it.

    `keywords` are extra string values a numeric or boolean parameter also takes
    (`gamma=scale`, `grayscale=auto`); they parse to themselves. A string parameter with
    `combinable` values takes one or more of them joined by '+' (`hog+color`), and parses
    to them in `combinable` order.
    """

    name: str
    type: ParamType
    default: object
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    keywords: tuple[str, ...] = ()
    tuning: TuningRange | None = None
    combinable: tuple[str, ...] = ()

    def parse(self, raw: object) -> object:
        text = str(raw).strip()
        if text.lower() in self.keywords:
            return text.lower()
        if self.type == "bool":
            return self._parse_bool(text)
        if self.type == "int":
            value: object = self._parse_int(text)
        elif self.type == "float":
            value = self._parse_float(text)
        else:
            value = self._parse_str(text)
        return value

    def describe_allowed(self) -> str:
        if self.choices:
            allowed = "one of " + ", ".join(self.choices)
        elif self.type == "bool":
            allowed = "true or false (also 1 or 0)"
        elif self.type in ("int", "float"):
            noun = "a whole number" if self.type == "int" else "a number"
            bounds = []
            if self.low is not None:
                bounds.append(f">= {_fmt(self.low)}")
            if self.high is not None:
                bounds.append(f"<= {_fmt(self.high)}")
            allowed = noun + (" " + " and ".join(bounds) if bounds else "")
        else:
            allowed = "a string"
        if self.keywords:
            allowed += " or " + " or ".join(self.keywords)
        return allowed

    def _fail(self, text: str) -> HyperparameterError:
        return HyperparameterError(
            f"Hyperparameter '{self.name}' has value '{shown_value(text)}'; use "
            f"{self.describe_allowed()} (default {format_value(self.default)})."
        )

    def _parse_bool(self, text: str) -> bool:
        lowered = text.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise self._fail(text)

    def _parse_int(self, text: str) -> int:
        try:
            number = float(text)
        except ValueError:
            raise self._fail(text) from None
        if not number.is_integer():
            raise self._fail(text)
        self._check_bounds(number, text)
        return int(number)

    def _parse_float(self, text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise self._fail(text) from None
        if number != number or number in (float("inf"), float("-inf")):
            raise self._fail(text)
        self._check_bounds(number, text)
        return number

    def _check_bounds(self, number: float, text: str) -> None:
        if self.low is not None and number < self.low:
            raise self._fail(text)
        if self.high is not None and number > self.high:
            raise self._fail(text)

    def _parse_str(self, text: str) -> str:
        if self.combinable:
            return self._parse_combination(text)
        if self.choices and text.lower() not in self.choices:
            raise self._fail(text)
        return text.lower() if self.choices else text

    def _parse_combination(self, text: str) -> str:
        parts = [p.strip().lower() for p in text.split("+")]
        allowed = self.combinable
        if any(p not in allowed for p in parts) or len(set(parts)) != len(parts):
            example = "+".join(allowed[:2])
            raise HyperparameterError(
                f"Hyperparameter '{self.name}' has value '{shown_value(text)}'; use one or more of "
                f"{', '.join(allowed)} joined by '+', such as '{example}' "
                f"(default {format_value(self.default)})."
            )
        return "+".join(p for p in allowed if p in parts)


# The longest value an error message repeats in full.
SHOWN_LENGTH = 80


def shown_value(text: str) -> str:
    """A value as an error message repeats it: on one line (control characters escaped) and
    at most SHOWN_LENGTH characters (then its start and its length)."""
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    if len(text) > SHOWN_LENGTH:
        return f"{text[: SHOWN_LENGTH - 20]}... ({len(text)} characters)"
    return text


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def format_value(value: object) -> str:
    """A value as SageMaker would carry it in hyperparameters.json."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


COMMON = (
    Param(
        "image_size",
        "int",
        64,
        "Images are resized to image_size x image_size pixels; auto: the training images' "
        "median side, rounded up to a multiple of 8 within the algorithm's range, and with "
        "features=deep 224, the ResNet50 backbone's own input.",
        low=8,
        high=1024,
        keywords=("auto",),
    ),
    Param(
        "grayscale",
        "bool",
        "auto",
        "Train on one channel; auto: only if every training image is greyscale.",
        keywords=("auto",),
    ),
    Param(
        "validation_fraction",
        "float",
        0.2,
        "Share of train held out (stratified) when "
        "there is no validation channel; 0 disables validation.",
        low=0.0,
        high=0.5,
    ),
    Param(
        "scaled_jpeg_decode",
        "bool",
        True,
        "Decode a JPEG at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling) when its "
        "shorter side stays at least image_size: cheaper decoding, the same pixels in "
        "training and serving.",
    ),
    Param(
        "max_image_megapixels",
        "float",
        float(MAX_IMAGE_MEGAPIXELS),
        "The most pixels an image may decode to, in megapixels (a guard against "
        "decompression bombs); a larger JPEG is decoded at 1/2, 1/4 or 1/8 of its size to "
        "fit, any other larger image is skipped as unusable.",
        low=1.0,
        high=float(MAX_IMAGE_MEGAPIXELS_CEILING),
    ),
    Param(
        "seed",
        "int",
        42,
        "Seed for splits, shuffling and initialisation.",
        low=0,
        high=2**32 - 1,  # what numpy's and scikit-learn's seeds take
    ),
    Param(
        "max_corrupt_fraction",
        "float",
        0.01,
        "Unreadable images (and records) are skipped while they "
        "stay at or under this share of a channel; beyond it the job fails.",
        low=0.0,
        high=1.0,
    ),
    Param(
        "multi_label",
        "bool",
        False,
        "Each image carries a set of labels (any number, none included): sigmoid outputs "
        "for cnn and resnet50, one-vs-rest for svm and rf, per-label metrics.",
    ),
    Param(
        "label_format",
        "str",
        "auto",
        "How lists of labels read (.lst columns, .rec labels, manifest lists): multi-hot "
        "(a 0/1 per class) or class-id (the ids that apply); auto: the channel's "
        "ContentType label-format, else multi-hot when every list is 0s and 1s of one length.",
        choices=LABEL_FORMATS,
    ),
    Param(
        "eval_metric",
        "str",
        "accuracy",
        "With two classes: the measure validation reports every epoch besides loss and "
        "accuracy, and `launch tune`'s default objective (validation:<eval_metric>).",
        choices=EVAL_METRICS,
    ),
    Param(
        "data_memory_mb",
        "float",
        "auto",
        "Decoded images are held in memory up to this many MB; beyond it cnn and resnet50 "
        "stream from disk and svm and rf extract features in chunks (0: always). auto: half "
        "the memory available when the job starts.",
        low=0.0,
        high=1e9,
        keywords=("auto",),
    ),
    Param(
        "data_report",
        "bool",
        True,
        "Write output/data/data_report.json and its pictures: duplicates within and across "
        "train, validation and test, label-issue candidates, image quality, class balance.",
    ),
    Param(
        "max_leakage",
        "float",
        1.0,
        "Fail the job when more than this share of the validation or test images has an "
        "exact or near duplicate in another split (1: never; 0: any duplicate).",
        low=0.0,
        high=1.0,
    ),
    Param(
        "duplicate_correlation",
        "float",
        0.99,
        "Two images are near duplicates when their grey 16x16 thumbnails correlate at least "
        "this much (1: exact duplicates of the model's input only).",
        low=0.5,
        high=1.0,
    ),
    Param(
        "coverage",
        "float",
        0.9,
        "The coverage evaluation.json reports split-conformal prediction sets at (serve "
        "takes any with the custom attribute coverage=).",
        low=0.01,
        high=0.999,
    ),
    Param(
        "ood_false_alarm_rate",
        "float",
        0.01,
        "Share of ordinary images serve may flag out_of_distribution: the threshold of the "
        "out-of-distribution score is set on validation for this rate.",
        low=0.001,
        high=0.5,
    ),
    Param(
        "tta",
        "str",
        "none",
        "Test-time augmentation in evaluation: flip (the image and its mirror) or crops (four "
        "corners and the centre at 90%); evaluation.json reports accuracy with and without.",
        choices=TTA_MODES,
    ),
)

WEIGHTS = Param(
    "weights",
    "str",
    "imagenet",
    "Starting weights of ResNet50: the network resnet50 trains, or the frozen backbone of "
    "features=deep (svm, rf). imagenet: baked into the image, else downloaded; none: random "
    "(for tests). The pretrained channel, when present, takes precedence.",
    choices=("imagenet", "none"),
)

CLASSICAL = (
    Param(
        "features",
        "str",
        "hog",
        "Features joined by '+': hog (gradient histograms), color (HSV histogram), pixels "
        "(downsampled intensities), gabor (Gabor filter bank: texture), edges (Canny edge "
        "density and orientations), deep (a frozen ResNet50's pooled output; see weights).",
        tuning=TuningRange(
            "categorical",
            values=("hog", "hog+color", "hog+gabor", "hog+edges", "hog+gabor+edges"),
        ),
        combinable=FEATURE_KINDS,
    ),
    Param(
        "gabor_orientations",
        "int",
        4,
        "Orientations in the Gabor bank, evenly spaced over 180 degrees.",
        low=2,
        high=16,
    ),
    Param(
        "gabor_scales",
        "int",
        2,
        "Scales in the Gabor bank; each halves the wavelength of the one before.",
        low=1,
        high=4,
    ),
    Param(
        "gabor_kernel_size",
        "int",
        21,
        "Side of the Gabor kernels in pixels (odd); the first scale's wavelength is half of it.",
        low=5,
        high=63,
    ),
    Param(
        "feature_grid",
        "int",
        4,
        "Cells per side of the grid over which gabor responses and edge density are summarised.",
        low=1,
        high=16,
    ),
    Param(
        "canny_low",
        "int",
        50,
        "Canny's lower hysteresis threshold (gradient magnitude) for features=edges.",
        low=0,
        high=2000,
    ),
    Param(
        "canny_high",
        "int",
        150,
        "Canny's upper hysteresis threshold; must exceed canny_low.",
        low=1,
        high=2000,
    ),
    WEIGHTS,
    Param(
        "cv_folds",
        "int",
        0,
        "Stratified k-fold cross-validation on train (plus validation) before the final fit, "
        "reported as cv:* metrics; 0 disables, else 2 or more.",
        low=0,
        high=20,
    ),
    Param(
        "class_weight",
        "str",
        "none",
        "balanced: weigh each class inversely to its share of train, for imbalanced classes.",
        choices=("none", "balanced"),
        tuning=TuningRange("categorical", values=("none", "balanced")),
    ),
)

SVM = (
    Param(
        "C",
        "float",
        10.0,
        "Inverse regularisation strength.",
        low=1e-6,
        high=1e6,
        tuning=TuningRange("continuous", 0.01, 1000.0, scaling="Logarithmic"),
    ),
    Param(
        "kernel",
        "str",
        "rbf",
        "SVM kernel.",
        choices=("rbf", "linear", "poly", "sigmoid"),
        tuning=TuningRange("categorical", values=("rbf", "linear")),
    ),
    Param(
        "gamma",
        "float",
        "scale",
        "RBF/poly/sigmoid kernel coefficient.",
        low=1e-9,
        high=1e6,
        keywords=("scale", "auto"),
    ),
)

RF = (
    Param(
        "n_estimators",
        "int",
        300,
        "Number of trees.",
        low=1,
        high=5000,
        tuning=TuningRange("integer", 50, 1000),
    ),
    Param(
        "max_depth",
        "int",
        0,
        "Maximum tree depth; 0 for unlimited.",
        low=0,
        high=1000,
        tuning=TuningRange("integer", 0, 50),
    ),
    Param(
        "min_samples_leaf",
        "int",
        1,
        "Minimum samples in a leaf.",
        low=1,
        high=1000,
        tuning=TuningRange("integer", 1, 10),
    ),
    Param(
        "max_features",
        "str",
        "sqrt",
        "Features considered at each split.",
        choices=("sqrt", "log2", "all"),
        tuning=TuningRange("categorical", values=("sqrt", "log2")),
    ),
)

KERAS = (
    Param(
        "epochs", "int", 30, "Training epochs (the head's epochs for resnet50).", low=1, high=10000
    ),
    Param(
        "batch_size",
        "int",
        64,
        "Batch size per replica (GPU or worker).",
        low=1,
        high=8192,
        tuning=TuningRange("categorical", values=("32", "64", "128")),
    ),
    Param(
        "learning_rate",
        "float",
        0.001,
        "Initial learning rate (for one replica; scaled linearly with the number of replicas).",
        low=1e-7,
        high=10.0,
        tuning=TuningRange("continuous", 1e-4, 1e-2, scaling="Logarithmic"),
    ),
    Param(
        "optimizer",
        "str",
        "adam",
        "Optimizer.",
        choices=("adam", "adamw", "sgd", "rmsprop"),
        tuning=TuningRange("categorical", values=("adam", "sgd")),
    ),
    Param(
        "dropout",
        "float",
        0.3,
        "Dropout before the classifier.",
        low=0.0,
        high=0.9,
        tuning=TuningRange("continuous", 0.0, 0.6),
    ),
    Param(
        "augment",
        "bool",
        True,
        "Random transforms while training, by the ranges below; false turns all of them off.",
    ),
    Param(
        "rotation_range",
        "float",
        15.0,
        "Largest random rotation, in degrees either way.",
        low=0.0,
        high=180.0,
    ),
    Param(
        "width_shift_range",
        "float",
        0.1,
        "Largest random horizontal shift, as a share of the width.",
        low=0.0,
        high=0.5,
    ),
    Param(
        "height_shift_range",
        "float",
        0.1,
        "Largest random vertical shift, as a share of the height.",
        low=0.0,
        high=0.5,
    ),
    Param(
        "zoom_range",
        "float",
        0.1,
        "Largest random zoom in or out, as a share of the size.",
        low=0.0,
        high=0.5,
    ),
    Param(
        "horizontal_flip",
        "bool",
        False,
        "Also flip images left-right while augmenting "
        "(right for photos, wrong for digits and text).",
    ),
    Param(
        "random_crop",
        "float",
        0.0,
        "Share of each side a random crop cuts away, the crop resized back to image_size; "
        "0 disables.",
        low=0.0,
        high=0.5,
    ),
    Param(
        "contrast_range",
        "float",
        0.15,
        "Largest random contrast change, as a share.",
        low=0.0,
        high=0.9,
    ),
    Param(
        "label_smoothing",
        "float",
        0.0,
        "Share of each training label spread evenly over all classes (validation loss stays "
        "the plain cross-entropy).",
        low=0.0,
        high=0.5,
        tuning=TuningRange("continuous", 0.0, 0.2),
    ),
    Param(
        "early_stopping_patience",
        "int",
        5,
        "Stop after this many epochs without a better validation loss; 0 disables.",
        low=0,
        high=10000,
    ),
    Param(
        "early_stopping_warmup_steps",
        "int",
        50,
        "Optimizer steps before early stopping and best-weights tracking start: until the "
        "batch-norm running statistics forget their starting values (about 44 steps at "
        "momentum 0.9), validation loss measures them rather than the model.",
        low=0,
        high=1000000,
    ),
    Param(
        "reinitialize_top_layer",
        "bool",
        False,
        "With a model channel whose classes differ from this job's: start from its weights "
        "but give the model a new output layer for this job's classes.",
    ),
    Param(
        "decoded_cache",
        "bool",
        True,
        "When the data set streams from disk (over data_memory_mb): decode each image once "
        "into a file on the training volume and read pixels from it in later epochs.",
    ),
    Param(
        "distributed_port",
        "int",
        8890,
        "Port the workers of a multi-host job talk on.",
        low=1024,
        high=65535,
    ),
    Param(
        "distributed_timeout",
        "int",
        900,
        "Seconds each host of a multi-host job waits for the others to join the training "
        "cluster before the job fails.",
        low=10,
        high=86400,
    ),
)

RESNET50 = (
    WEIGHTS,
    Param(
        "fine_tune_epochs",
        "int",
        5,
        "Epochs that also train the top of the base after "
        "the head is trained; 0 skips fine-tuning.",
        low=0,
        high=10000,
    ),
    Param(
        "fine_tune_layers",
        "int",
        30,
        "How many of the base's last layers fine-tuning unfreezes (batch-norm layers stay frozen).",
        low=0,
        high=175,
        tuning=TuningRange("integer", 0, 100),
    ),
    Param(
        "fine_tune_learning_rate",
        "float",
        1e-5,
        "Learning rate while fine-tuning.",
        low=1e-9,
        high=1.0,
        tuning=TuningRange("continuous", 1e-6, 1e-3, scaling="Logarithmic"),
    ),
    Param(
        "frozen_cache",
        "bool",
        True,
        "Run the frozen layers once per image and train on their cached output: the head "
        "on the base's pooled output, fine-tuning on the output below the layers it trains "
        "(false: every epoch runs the whole network on the images, as before).",
    ),
    Param(
        "augmented_views",
        "int",
        2,
        "With augment on: augmented views of each train image that the frozen base runs "
        "on once, before training; each epoch trains on one of them at random per image.",
        low=1,
        high=64,
    ),
    Param(
        "mixed_precision",
        "bool",
        "auto",
        "float16 compute; auto: on when a GPU is visible.",
        keywords=("auto",),
    ),
)
