"""One typed hyperparameter schema per algorithm: defaults, validation, tuning ranges.

An algorithm's schema is the COMMON parameters plus those its entry in the algorithm
table (`smvision.schema.specs`) lists, with the entry's defaults. `parse` casts every string
SageMaker delivers once and fails with a sentence that names the key, the value and
what is accepted. Standard library only: the launchers import it on a laptop.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from smvision.schema import specs
from smvision.schema.params import (
    COMMON,
    HyperparameterError,
    Param,
    Scaling,
    TuningRange,
    format_value,
)

__all__ = [
    "HyperparameterError",
    "Hyperparameters",
    "Param",
    "Scaling",
    "TuningRange",
    "format_value",
    "is_platform_key",
    "parse",
    "schema",
    "split_per_algorithm",
    "tuning_ranges",
    "unknown_key_message",
]


def schema(algorithm: str) -> dict[str, Param]:
    """Every hyperparameter of one algorithm, by name, with that algorithm's defaults."""
    spec = specs.get(algorithm)
    defaults = {"image_size": spec.image_size, **spec.defaults}
    result = {}
    for param in COMMON + spec.parameters:
        if param.name in defaults:
            param = replace(param, default=defaults[param.name])
        result[param.name] = param
    return result


def is_platform_key(key: str) -> bool:
    """Keys SageMaker and its SDK add on their own, such as _tuning_objective_metric."""
    return key.startswith("_") or key.startswith("sagemaker_")


@dataclass(frozen=True)
class Hyperparameters:
    """Validated, typed hyperparameters of one job."""

    algorithm: str
    values: Mapping[str, object]
    ignored: tuple[str, ...] = field(default=())

    @property
    def spec(self) -> specs.AlgorithmSpec:
        return specs.get(self.algorithm)

    def integer(self, name: str) -> int:
        value = self.values[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"Hyperparameter '{name}' is {value!r}, not a whole number.")
        return value

    def real(self, name: str) -> float:
        value = self.values[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"Hyperparameter '{name}' is {value!r}, not a number.")
        return float(value)

    def flag(self, name: str) -> bool:
        value = self.values[name]
        if not isinstance(value, bool):
            raise TypeError(f"Hyperparameter '{name}' is {value!r}, not true or false.")
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
    algorithm = specs.get(_as_text(raw.get("algorithm"))).name
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


def split_per_algorithm(
    pairs: Sequence[str], algorithms: Sequence[str]
) -> dict[str, dict[str, str]]:
    """A comparison's `--hp` pairs, per algorithm, as raw strings (not yet validated).

    `KEY=VALUE` goes to every algorithm whose schema has KEY (epochs=5 reaches cnn and
    resnet50, not svm); `ALG:KEY=VALUE` to ALG alone, over a `KEY=VALUE` for the same key.
    A key that none of the algorithms takes, or an ALG not compared, is an error.
    """
    shared: dict[str, str] = {}
    specific: dict[str, dict[str, str]] = {name: {} for name in algorithms}
    for pair in pairs:
        target, separator, value = pair.partition("=")
        algorithm, colon, key = target.strip().rpartition(":")
        key = key.strip()
        if not separator or not key:
            raise HyperparameterError(
                f"--hp '{pair}' is not KEY=VALUE or ALGORITHM:KEY=VALUE, such as --hp "
                "epochs=5 or --hp svm:C=10."
            )
        if key == "algorithm" or is_platform_key(key):
            raise HyperparameterError(
                f"--hp '{pair}': '{key}' is not a hyperparameter a comparison may set."
            )
        if colon:
            if algorithm not in specific:
                raise HyperparameterError(
                    f"--hp '{pair}' names algorithm '{algorithm}', which is not compared "
                    f"here; use one of {', '.join(algorithms)}."
                )
            if key not in schema(algorithm):
                raise HyperparameterError(f"--hp '{pair}': " + unknown_key_message(key, algorithm))
            specific[algorithm][key] = value.strip()
            continue
        known = sorted({name for algorithm in algorithms for name in schema(algorithm)})
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise HyperparameterError(
                f"--hp '{pair}': none of {', '.join(algorithms)} takes '{key}'.{hint} "
                f"Known: {', '.join(known)}."
            )
        shared[key] = value.strip()
    return {
        name: {key: value for key, value in shared.items() if key in schema(name)} | specific[name]
        for name in algorithms
    }


def _check_consistency(algorithm: str, values: Mapping[str, object]) -> None:
    if values.get("multi_label") is True and values.get("eval_metric", "accuracy") != "accuracy":
        raise HyperparameterError(
            f"Hyperparameter 'eval_metric' has value '{values['eval_metric']}', which measures "
            "a model of two classes; a multi-label model reports f1_micro, macro_f1 and "
            "hamming_loss for every label (tune on validation:f1_micro): drop eval_metric."
        )
    if values.get("cv_folds") == 1:
        raise HyperparameterError(
            "Hyperparameter 'cv_folds' has value '1'; cross-validation needs at least 2 "
            "folds: use 0 to turn it off, or 2 or more (5 is usual)."
        )
    kinds = str(values["features"]).split("+") if "features" in values else []
    _check_feature_settings(kinds, values)
    size = values["image_size"]
    if size == "auto":  # train chooses a size that meets every rule below
        return
    if not isinstance(size, int):
        raise TypeError(f"Hyperparameter 'image_size' is {size!r}, not a whole number.")
    spec = specs.get(algorithm)
    if size < spec.min_image_size:
        raise HyperparameterError(
            f"Hyperparameter 'image_size' has value '{size}', but {algorithm} needs at least "
            f"{spec.min_image_size} pixels ({spec.min_image_size_reason}); use "
            f"{spec.min_image_size} or more."
        )
    if kinds:
        _check_feature_sizes(size, kinds, values)


def _check_feature_settings(kinds: list[str], values: Mapping[str, object]) -> None:
    kernel = values.get("gabor_kernel_size")
    if "gabor" in kinds and not int(str(kernel)) % 2:
        raise HyperparameterError(
            f"Hyperparameter 'gabor_kernel_size' has value '{kernel}'; use an odd number, "
            "so that each kernel has a centre pixel (such as 21)."
        )
    low, high = values.get("canny_low"), values.get("canny_high")
    if "edges" in kinds and int(str(low)) >= int(str(high)):
        raise HyperparameterError(
            f"Hyperparameter 'canny_low' ({low}) is not below 'canny_high' ({high}); Canny needs "
            "a lower and an upper threshold (50 and 150 are the defaults)."
        )


def _check_feature_sizes(size: int, kinds: list[str], values: Mapping[str, object]) -> None:
    if "hog" in kinds and (size % 8 or size < 16):
        raise HyperparameterError(
            f"Hyperparameter 'image_size' has value '{size}', but HOG features use 8-pixel "
            "cells in 16-pixel blocks; use a multiple of 8 from 16 up, such as 32 or 64, or "
            "drop 'hog' from 'features'."
        )
    resnet50 = specs.get("resnet50")  # features=deep runs its network
    if "deep" in kinds and size < resnet50.min_image_size:
        raise HyperparameterError(
            f"Hyperparameter 'image_size' has value '{size}', but features=deep runs ResNet50 "
            f"and {resnet50.min_image_size_reason}; use {resnet50.min_image_size} or more, or "
            "drop 'deep' from 'features'."
        )
    grid = values["feature_grid"]
    if int(str(grid)) > size:
        raise HyperparameterError(
            f"Hyperparameter 'feature_grid' has value '{grid}', more cells per side than the "
            f"{size} pixels of image_size; use {size} or fewer."
        )


def _as_text(value: object) -> str | None:
    return None if value is None else str(value)


def tuning_ranges(algorithm: str) -> dict[str, TuningRange]:
    """The ranges a tuning job searches by default for one algorithm."""
    return {name: p.tuning for name, p in schema(algorithm).items() if p.tuning is not None}
