"""When the monitor calls a difference drift: its thresholds, as options (standard library only).

The image's `monitor` takes them as options and `python -m launch monitor` forwards the
ones a user sets, so both read the names, defaults and meanings here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Thresholds:
    # Kolmogorov-Smirnov (pixel statistics, confidence): drift when p < ks_alpha and the
    # distance D >= ks_min_distance.
    ks_alpha: float = 0.001
    ks_min_distance: float = 0.1
    # Population stability index (image sizes): drift when PSI > psi_max.
    psi_max: float = 0.2
    # Chi-square (predicted classes): drift when p < chi2_alpha.
    chi2_alpha: float = 0.001
    # Fewer captured images than this are reported, not tested: too few to tell.
    min_images: int = 30


HELP = {
    "ks_alpha": "pixel statistics and confidence (Kolmogorov-Smirnov): drift when p < A",
    "ks_min_distance": "... and the KS distance D is at least this",
    "psi_max": "image sizes: drift when the population stability index exceeds this",
    "chi2_alpha": "predicted classes (chi-square): drift when p < A",
    "min_images": "compare only with at least this many captured images",
}
# The thresholds that are probabilities, and those that are distances (>= 0).
_PROBABILITIES = ("ks_alpha", "chi2_alpha")
_DISTANCES = ("ks_min_distance", "psi_max")


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, with_defaults: bool = True) -> None:
    """One option per threshold; without defaults (None) for a caller that forwards only
    what was set."""
    defaults = Thresholds()
    for field in fields(Thresholds):
        default = getattr(defaults, field.name)
        parser.add_argument(
            option(field.name),
            metavar="N" if field.type == "int" else "X",
            default=str(default) if with_defaults else None,
            help=f"{HELP[field.name]} (default {default})",
        )


def from_arguments(args: argparse.Namespace) -> Thresholds:
    """The thresholds the options give; ValueError with the option, value and rule."""
    values: dict[str, float | int] = {}
    for field in fields(Thresholds):
        text = getattr(args, field.name)
        if text is None:
            continue
        values[field.name] = _check(field.name, str(text), field.type == "int")
    return Thresholds(**values)  # type: ignore[arg-type]


def as_arguments(args: argparse.Namespace) -> list[str]:
    """The options that were set, checked, as `monitor` takes them."""
    forwarded = []
    for field in fields(Thresholds):
        text = getattr(args, field.name)
        if text is not None:
            _check(field.name, str(text), field.type == "int")
            forwarded += [option(field.name), str(text)]
    return forwarded


def _check(name: str, text: str, whole: bool) -> float | int:
    try:
        value: float | int = int(text) if whole else float(text)
    except ValueError:
        value = -1
    if name in _PROBABILITIES and not 0 < value < 1:
        raise ValueError(
            f"{option(name)} {text} is not a probability; use a value between 0 "
            "and 1, such as 0.001."
        )
    if name in _DISTANCES and not value >= 0:
        raise ValueError(f"{option(name)} {text} must be a number of 0 or more.")
    if name == "min_images" and not value >= 1:
        raise ValueError(f"{option(name)} {text} must be a whole number of at least 1.")
    return value
