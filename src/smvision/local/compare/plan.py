"""Which algorithms a comparison runs, each with which hyperparameters. No side effects.

`--hp KEY=VALUE` goes to every algorithm whose schema has KEY (and must be known to at
least one of them); `--hp ALG:KEY=VALUE` goes to ALG alone and must be one of its keys
(`hyperparameters.split_per_algorithm`, which `launch compare` uses too). Values are not
checked here: each job checks its own exactly as `train` always does, so a
bad value fails that algorithm's job with its sentence while the others run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from smvision.core.contract import CHANNELS
from smvision.schema import hyperparameters, specs


class PlanError(ValueError):
    """A comparison that cannot start: the sentence says which argument and why."""


@dataclass(frozen=True)
class Plan:
    algorithms: tuple[str, ...]
    hyperparameters: Mapping[str, Mapping[str, str]]  # algorithm -> its --hp values
    channels: Mapping[str, Path]

    @property
    def evaluated_channel(self) -> str:
        """Where the scores (and the serving measurements' images) come from."""
        return next(name for name in ("test", "validation", "train") if name in self.channels)


def default_algorithms() -> tuple[str, ...]:
    return specs.names()


def make_plan(
    algorithms: Sequence[str] | None,
    hp_arguments: Sequence[tuple[str, str]],
    channels: Mapping[str, Path],
) -> Plan:
    chosen = _algorithms(algorithms)
    _check_channels(chosen, channels)
    pairs = [f"{key}={value}" for key, value in hp_arguments]
    try:
        values = hyperparameters.split_per_algorithm(pairs, chosen)
    except hyperparameters.HyperparameterError as error:
        raise PlanError(str(error)) from None
    return Plan(chosen, values, dict(channels))


def _algorithms(requested: Sequence[str] | None) -> tuple[str, ...]:
    if not requested:
        return default_algorithms()
    chosen: list[str] = []
    for name in requested:
        try:
            spec = specs.get(name)
        except hyperparameters.HyperparameterError:
            raise PlanError(
                f"--algorithms names '{name}'; choose from {', '.join(specs.names())}."
            ) from None
        if spec.name in chosen:
            raise PlanError(f"--algorithms names '{spec.name}' twice.")
        chosen.append(spec.name)
    return tuple(chosen)


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
