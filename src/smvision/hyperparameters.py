"""One typed hyperparameter schema per algorithm: defaults, validation, tuning ranges.

SageMaker delivers every hyperparameter as a string. `parse` casts each one once and
fails with a sentence that names the key, the value and what is accepted. The
launchers import this module on a laptop, so it depends on the standard library only.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

ALGORITHMS = ("svm", "rf", "cnn", "resnet50")
KERAS_ALGORITHMS = ("cnn", "resnet50")
FEATURE_KINDS = ("hog", "color", "pixels")

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
    (`gamma=scale`, `grayscale=auto`); they parse to themselves.
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
            f"Hyperparameter '{self.name}' has value '{text}'; use {self.describe_allowed()} "
            f"(default {format_value(self.default)})."
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
        if self.name == "features":
            return _parse_features(self, text)
        if self.choices and text.lower() not in self.choices:
            raise self._fail(text)
        return text.lower() if self.choices else text


def _parse_features(param: Param, text: str) -> str:
    parts = [p.strip().lower() for p in text.split("+")]
    if not parts or any(p not in FEATURE_KINDS for p in parts) or len(set(parts)) != len(parts):
        raise HyperparameterError(
            f"Hyperparameter 'features' has value '{text}'; use one or more of "
            f"{', '.join(FEATURE_KINDS)} joined by '+', such as 'hog+color' "
            f"(default {param.default})."
        )
    return "+".join(p for p in FEATURE_KINDS if p in parts)


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
        "Images are resized to image_size x image_size pixels.",
        low=8,
        high=1024,
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
    Param("seed", "int", 42, "Seed for splits, shuffling and initialisation.", low=0),
    Param(
        "max_corrupt_fraction",
        "float",
        0.01,
        "Unreadable images are skipped while they "
        "stay at or under this share of a channel; beyond it the job fails.",
        low=0.0,
        high=1.0,
    ),
)

_CLASSICAL = (
    Param(
        "features",
        "str",
        "hog",
        "OpenCV features joined by '+': hog (gradient "
        "histograms), color (HSV histogram), pixels (downsampled intensities).",
        tuning=TuningRange(
            "categorical", values=("hog", "hog+color", "hog+pixels", "hog+color+pixels")
        ),
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
        "Random shifts, zoom, small rotations and contrast changes while training.",
    ),
    Param(
        "horizontal_flip",
        "bool",
        False,
        "Also flip images left-right while augmenting "
        "(right for photos, wrong for digits and text).",
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
        "distributed_port",
        "int",
        8890,
        "Port the workers of a multi-host job talk on.",
        low=1024,
        high=65535,
    ),
)

RESNET50 = (
    Param(
        "weights",
        "str",
        "imagenet",
        "Starting weights for the ResNet50 base; the "
        "pretrained channel, when present, takes precedence.",
        choices=("imagenet", "none"),
    ),
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
        "mixed_precision",
        "bool",
        "auto",
        "float16 compute; auto: on when a GPU is visible.",
        keywords=("auto",),
    ),
)

_OVERRIDES: dict[str, dict[str, object]] = {
    "svm": {"image_size": 64},
    "rf": {"image_size": 64},
    "cnn": {"image_size": 64},
    "resnet50": {"image_size": 224, "epochs": 10, "batch_size": 32},
}

_BY_ALGORITHM: dict[str, tuple[Param, ...]] = {
    "svm": COMMON + _CLASSICAL + SVM,
    "rf": COMMON + _CLASSICAL + RF,
    "cnn": COMMON + KERAS,
    "resnet50": COMMON + KERAS + RESNET50,
}


def schema(algorithm: str) -> dict[str, Param]:
    """Every hyperparameter of one algorithm, by name, with that algorithm's defaults."""
    check_algorithm(algorithm)
    overrides = _OVERRIDES.get(algorithm, {})
    result = {}
    for param in _BY_ALGORITHM[algorithm]:
        if param.name in overrides:
            param = replace(param, default=overrides[param.name])
        result[param.name] = param
    return result


def check_algorithm(algorithm: str | None) -> str:
    if not algorithm:
        raise HyperparameterError(
            "Hyperparameter 'algorithm' is missing; set it to one of " + ", ".join(ALGORITHMS) + "."
        )
    name = algorithm.strip().lower()
    if name not in ALGORITHMS:
        raise HyperparameterError(
            f"Hyperparameter 'algorithm' has value '{algorithm}'; use one of "
            + ", ".join(ALGORITHMS)
            + "."
        )
    return name


def is_platform_key(key: str) -> bool:
    """Keys SageMaker and its SDK add on their own, such as _tuning_objective_metric."""
    return key.startswith("_") or key.startswith("sagemaker_")


@dataclass(frozen=True)
class Hyperparameters:
    """Validated, typed hyperparameters of one job."""

    algorithm: str
    values: Mapping[str, object]
    ignored: tuple[str, ...] = field(default=())

    def integer(self, name: str) -> int:
        value = self.values[name]
        assert isinstance(value, int) and not isinstance(value, bool), name
        return value

    def real(self, name: str) -> float:
        value = self.values[name]
        assert isinstance(value, (int, float)) and not isinstance(value, bool), name
        return float(value)

    def flag(self, name: str) -> bool:
        value = self.values[name]
        assert isinstance(value, bool), name
        return value

    def auto_flag(self, name: str) -> bool | None:
        """A boolean that may also be 'auto' (None)."""
        value = self.values[name]
        return None if value == "auto" else bool(value)

    def text(self, name: str) -> str:
        return str(self.values[name])

    def as_strings(self) -> dict[str, str]:
        """Every value as SageMaker would send it, algorithm included."""
        return {"algorithm": self.algorithm} | {k: format_value(v) for k, v in self.values.items()}


def parse(raw: Mapping[str, object], strict: bool = False) -> Hyperparameters:
    """Cast raw (string) hyperparameters with the algorithm's schema.

    Platform keys (`_tuning_objective_metric`, `sagemaker_*`) are always ignored. Other
    unknown keys are ignored and reported in `ignored`; with `strict` they are an error
    that suggests the closest known name (the launchers use this on the laptop).
    """
    algorithm = check_algorithm(_as_text(raw.get("algorithm")))
    params = schema(algorithm)
    values = {name: param.default for name, param in params.items()}
    ignored = []
    for key, value in raw.items():
        if key == "algorithm" or is_platform_key(key):
            continue
        if key not in params:
            if strict:
                raise HyperparameterError(unknown_key_message(key, algorithm))
            ignored.append(key)
            continue
        values[key] = params[key].parse(value)
    _check_consistency(algorithm, values)
    return Hyperparameters(algorithm=algorithm, values=values, ignored=tuple(sorted(ignored)))


def unknown_key_message(key: str, algorithm: str) -> str:
    known = sorted(schema(algorithm))
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (
        f"Hyperparameter '{key}' is not used by algorithm '{algorithm}'.{hint} "
        f"Known: {', '.join(known)}."
    )


def _check_consistency(algorithm: str, values: Mapping[str, object]) -> None:
    size = values["image_size"]
    assert isinstance(size, int)
    if algorithm in ("svm", "rf") and "hog" in str(values["features"]) and size % 8:
        raise HyperparameterError(
            f"Hyperparameter 'image_size' has value '{size}', but HOG features use 8-pixel "
            "cells; use a multiple of 8 such as 32 or 64, or drop 'hog' from 'features'."
        )
    if algorithm == "cnn" and size < 16:
        raise HyperparameterError(
            f"Hyperparameter 'image_size' has value '{size}', but the cnn pools the image "
            "three times; use 16 or more (images are upscaled as needed)."
        )
    if algorithm == "resnet50" and size < 32:
        raise HyperparameterError(
            f"Hyperparameter 'image_size' has value '{size}', but ResNet50 needs at least "
            "32 pixels; use 32 or more (224 matches ImageNet)."
        )


def _as_text(value: object) -> str | None:
    return None if value is None else str(value)


def tuning_ranges(algorithm: str) -> dict[str, TuningRange]:
    """The ranges a tuning job searches by default for one algorithm."""
    return {name: p.tuning for name, p in schema(algorithm).items() if p.tuning is not None}
