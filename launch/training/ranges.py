"""The hyperparameter ranges a tuning job searches, checked against the schema.

Defaults come from `smvision.schema.hyperparameters.tuning_ranges`. `--range NAME=LOW:HIGH`
(optionally `:SCALING`) or `--range NAME=a,b,c` replaces or adds one; a hyperparameter
fixed with `--hp` is not tuned. Every value a range can produce is checked with the
same schema the image uses, so a tuning job does not start training jobs that fail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from launch.common.errors import LaunchError
from smvision.schema import hyperparameters
from smvision.schema.hyperparameters import Scaling, TuningRange

SCALINGS = ("Auto", "Linear", "Logarithmic")
# Integer ranges up to this many values are checked value by value.
_EXHAUSTIVE_CHECK_LIMIT = 2000


def plan_ranges(
    algorithm: str, fixed: Mapping[str, str], overrides: Sequence[str]
) -> dict[str, TuningRange]:
    ranges = {
        name: r for name, r in hyperparameters.tuning_ranges(algorithm).items() if name not in fixed
    }
    overridden: set[str] = set()
    for text in overrides:
        name, tuning_range = parse_range(algorithm, text)
        if name in fixed:
            raise LaunchError(
                f"--range {text}: '{name}' is also fixed with --hp {name}={fixed[name]}; "
                "tune it or fix it, not both."
            )
        if name in overridden:
            raise LaunchError(f"--range {name} is given twice; keep one.")
        overridden.add(name)
        ranges[name] = tuning_range
    if not ranges:
        raise LaunchError(
            f"Nothing to tune for {algorithm}: every default range is fixed with --hp; "
            "add --range NAME=LOW:HIGH."
        )
    for name, tuning_range in ranges.items():
        check_range(algorithm, fixed, name, tuning_range)
    return ranges


def parse_range(algorithm: str, text: str) -> tuple[str, TuningRange]:
    name, separator, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    params = hyperparameters.schema(algorithm)
    if not separator or not spec:
        raise LaunchError(
            f"--range '{text}' is not NAME=LOW:HIGH or NAME=a,b,c, such as "
            "--range learning_rate=0.0001:0.01 or --range optimizer=adam,sgd."
        )
    if name not in params:
        raise LaunchError(f"--range {text}: {hyperparameters.unknown_key_message(name, algorithm)}")
    param = params[name]
    if ":" in spec:
        return name, _numeric_range(text, param, spec)
    values = tuple(v.strip() for v in spec.split(","))
    if len(values) < 2 or any(not v for v in values) or len(set(values)) != len(values):
        raise LaunchError(
            f"--range {text}: give two or more distinct values separated by commas, or fix "
            f"the value with --hp {name}=VALUE."
        )
    return name, TuningRange("categorical", values=values)


def _numeric_range(text: str, param: hyperparameters.Param, spec: str) -> TuningRange:
    if param.type not in ("int", "float"):
        raise LaunchError(
            f"--range {text}: '{param.name}' takes {param.describe_allowed()}; list the "
            f"values instead, such as --range {param.name}=a,b."
        )
    parts = spec.split(":")
    scaling: Scaling = "Auto"
    if len(parts) == 3:
        scaling = _scaling(text, parts.pop())
    elif param.tuning is not None and param.tuning.kind != "categorical":
        scaling = param.tuning.scaling
    if len(parts) != 2:
        raise LaunchError(f"--range {text}: use NAME=LOW:HIGH or NAME=LOW:HIGH:SCALING.")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise LaunchError(f"--range {text}: LOW and HIGH must be numbers.") from None
    if param.type == "int":
        if not (low.is_integer() and high.is_integer()):
            raise LaunchError(
                f"--range {text}: '{param.name}' is a whole number; so are LOW and HIGH."
            )
        return TuningRange("integer", int(low), int(high), scaling=scaling)
    return TuningRange("continuous", low, high, scaling=scaling)


def _scaling(text: str, raw: str) -> Scaling:
    for scaling in SCALINGS:
        if raw.strip().lower() == scaling.lower():
            return cast(Scaling, scaling)
    raise LaunchError(f"--range {text}: scaling '{raw}' is not one of {', '.join(SCALINGS)}.")


def check_range(
    algorithm: str, fixed: Mapping[str, str], name: str, tuning_range: TuningRange
) -> None:
    label = f"range for '{name}'"
    if tuning_range.kind == "categorical":
        candidates = list(tuning_range.values)
    else:
        low, high = tuning_range.low, tuning_range.high
        assert low is not None and high is not None
        if not low < high:
            raise LaunchError(f"The {label} has LOW {low:g} >= HIGH {high:g}; swap or widen them.")
        if tuning_range.scaling == "Logarithmic" and low <= 0:
            raise LaunchError(f"The {label} is Logarithmic, so LOW must be above 0 (not {low:g}).")
        if tuning_range.kind == "integer" and high - low <= _EXHAUSTIVE_CHECK_LIMIT:
            candidates = [str(v) for v in range(int(low), int(high) + 1)]
        else:
            candidates = [_plain(low), _plain(high)]
    for candidate in candidates:
        try:
            hyperparameters.parse({"algorithm": algorithm, **fixed, name: candidate}, strict=True)
        except hyperparameters.HyperparameterError as error:
            raise LaunchError(
                f"The {label} includes {name}={candidate}, which the image would reject: "
                f"{error} Narrow the range; nothing was sent to AWS."
            ) from error


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)


def describe_ranges(ranges: Mapping[str, TuningRange]) -> list[str]:
    """One line per range, as printed before the job starts."""
    lines = []
    for name, r in sorted(ranges.items()):
        if r.kind == "categorical":
            lines.append(f"  {name}: one of {', '.join(r.values)}")
        else:
            assert r.low is not None and r.high is not None
            lines.append(f"  {name}: {r.kind} {_plain(r.low)} to {_plain(r.high)} ({r.scaling})")
    return lines
