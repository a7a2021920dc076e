"""Which configurations a comparison runs, each with which hyperparameters. No side effects.

A configuration is an algorithm (`svm`, `resnet50`) or a classical one on other features
(`svm+deep`: schema/configurations.py). By default every algorithm of the table runs,
and when ImageNet weights are at hand (a `pretrained` channel, or the file baked into the
image's Keras cache) the fixed-feature rows too, svm and rf on deep features.

`--hp KEY=VALUE` goes to every algorithm whose schema has KEY (and must be known to at
least one of them); `--hp ALG:KEY=VALUE` goes to ALG alone (every configuration of it) and
must be one of its keys (`hyperparameters.split_per_algorithm`, which `launch compare`
uses too); a configuration's own values (features=deep) come last. Values are not
checked here: each job checks its own exactly as `train` always does, so a bad value
fails that configuration's job with its sentence while the others run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from smvision.algorithms.features.backbones import keras_models_dir
from smvision.core.contract import CHANNELS
from smvision.schema import configurations, hyperparameters, specs
from smvision.schema.configurations import Configuration
from smvision.schema.specs import IMAGENET_NOTOP_FILE


class PlanError(ValueError):
    """A comparison that cannot start: the sentence says which argument and why."""


@dataclass(frozen=True)
class Plan:
    algorithms: tuple[str, ...]  # the configurations' names, one row each
    hyperparameters: Mapping[str, Mapping[str, str]]  # configuration -> its values
    channels: Mapping[str, Path]
    configurations: Mapping[str, Configuration] = field(default_factory=dict)

    def configuration(self, name: str) -> Configuration:
        return self.configurations.get(name) or configurations.parse(name)

    @property
    def evaluated_channel(self) -> str:
        """Where the scores (and the serving measurements' images) come from."""
        return next(name for name in ("test", "validation", "train") if name in self.channels)


def default_algorithms(channels: Mapping[str, Path] | None = None) -> tuple[str, ...]:
    """Every algorithm; and svm and rf on deep features when ImageNet weights are at hand."""
    if weights_at_hand(channels or {}):
        return specs.names() + configurations.FIXED_FEATURES
    return specs.names()


def weights_at_hand(channels: Mapping[str, Path]) -> bool:
    """A 'pretrained' channel, or Keras' ImageNet file baked into the image's cache."""
    return "pretrained" in channels or (keras_models_dir() / IMAGENET_NOTOP_FILE).is_file()


def make_plan(
    algorithms: Sequence[str] | None,
    hp_arguments: Sequence[tuple[str, str]],
    channels: Mapping[str, Path],
) -> Plan:
    chosen = _configurations(algorithms or default_algorithms(channels))
    bases = tuple(dict.fromkeys(c.algorithm for c in chosen))
    _check_channels(bases, channels)
    pairs = [f"{key}={value}" for key, value in hp_arguments]
    try:
        values = hyperparameters.split_per_algorithm(pairs, bases)
    except hyperparameters.HyperparameterError as error:
        raise PlanError(str(error)) from None
    return Plan(
        tuple(c.name for c in chosen),
        {c.name: {**values[c.algorithm], **c.values} for c in chosen},
        dict(channels),
        {c.name: c for c in chosen},
    )


def _configurations(requested: Sequence[str]) -> list[Configuration]:
    chosen: list[Configuration] = []
    for name in requested:
        choices = ", ".join(specs.names() + configurations.FIXED_FEATURES)
        if name.strip().lower().partition("+")[0] not in specs.names():
            raise PlanError(f"--algorithms names '{name}'; choose from {choices}.")
        try:
            configuration = configurations.parse(name)
        except hyperparameters.HyperparameterError as error:
            raise PlanError(f"--algorithms names '{name}': {error}") from None
        if configuration.name in [c.name for c in chosen]:
            raise PlanError(f"--algorithms names '{configuration.name}' twice.")
        chosen.append(configuration)
    return chosen


def _check_channels(algorithms: Sequence[str], channels: Mapping[str, Path]) -> None:
    if "train" not in channels:
        raise PlanError("--channel train=DIR is required: the images every algorithm trains on.")
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise PlanError(f"Unknown channel(s) {', '.join(unknown)}; use {', '.join(CHANNELS)}.")
    for name, path in channels.items():
        if not path.exists():
            raise PlanError(f"--channel {name}={path}: no such file or directory.")
    for algorithm in algorithms:
        spec = specs.get(algorithm)
        missing = [c for c in spec.required_channels if c not in channels]
        if missing:
            raise PlanError(f"{algorithm} needs channel(s) {', '.join(missing)}.")
