"""Which algorithms a comparison runs, each with which hyperparameters. No side effects.

`--hp KEY=VALUE` goes to every algorithm whose schema has KEY (and must be known to at
least one of them); `--hp ALG:KEY=VALUE` goes to ALG alone and must be one of its keys.
Values are not checked here: each job checks its own exactly as `train` always does, so a
bad value fails that algorithm's job with its sentence while the others run.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from smvision import hyperparameters, specs
from smvision.contract import CHANNELS


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
    values: dict[str, dict[str, str]] = {name: {} for name in chosen}
    shared: list[tuple[str, str]] = []
    for key, value in hp_arguments:
        algorithm, separator, name = key.partition(":")
        if not separator:
            shared.append((key, value))
            continue
        algorithm = algorithm.strip().lower()
        if algorithm not in values:
            raise PlanError(
                f"--hp {key}={value} names algorithm '{algorithm}', which this comparison "
                f"does not run; it runs {', '.join(chosen)}."
            )
        if name not in hyperparameters.schema(algorithm):
            raise PlanError(
                f"--hp {key}={value}: " + hyperparameters.unknown_key_message(name, algorithm)
            )
        values[algorithm][name] = value
    for key, value in shared:
        users = [a for a in chosen if key in hyperparameters.schema(a)]
        if not users:
            raise PlanError(f"--hp {key}={value}: " + _unknown_everywhere(key, chosen))
        for algorithm in users:
            values[algorithm].setdefault(key, value)
    return Plan(chosen, values, dict(channels))


def _unknown_everywhere(key: str, chosen: Sequence[str]) -> str:
    """No algorithm of the comparison takes `key`: the closest key that one does, if any."""
    owners: dict[str, list[str]] = {}
    for algorithm in specs.names():
        for name in hyperparameters.schema(algorithm):
            owners.setdefault(name, []).append(algorithm)
    close = difflib.get_close_matches(key, list(owners), n=1)
    hint = f" Did you mean '{close[0]}' (used by {', '.join(owners[close[0]])})?" if close else ""
    return f"no algorithm of this comparison ({', '.join(chosen)}) has that hyperparameter.{hint}"


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
