"""The named test for each statistic, its thresholds, and the verdict with its reasons.

- Image sizes (width, height, aspect ratio) take few distinct values: the population
  stability index over the baseline's deciles, a drift when PSI > psi_max (0.2 is the
  usual "significant shift"; 0.1-0.2 is "moderate").
- Pixel statistics and the model's confidence are continuous: the two-sample
  Kolmogorov-Smirnov test (scipy), a drift when p < ks_alpha *and* the distance D is at
  least ks_min_distance, so that thousands of images do not flag a negligible shift and
  a dozen statistics tested at once do not raise false alarms.
- Predicted classes: the chi-square test of homogeneity (scipy's chi2_contingency) of the
  validation and captured class counts, a drift when p < chi2_alpha.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from smvision.monitor import distributions, features
from smvision.monitor.thresholds import Thresholds

PSI = "population_stability_index"
KS = "kolmogorov_smirnov"
CHI_SQUARE = "chi_square"
TEST_NAMES = {PSI: "population stability index", KS: "Kolmogorov-Smirnov", CHI_SQUARE: "chi-square"}
# Model Monitor's check type for a distribution that moved away from the baseline.
DRIFT_CHECK = "baseline_drift_check"
_PSI_FLOOR = 1e-4  # an empty bin's share, so that the logarithm stays finite


@dataclass(frozen=True)
class Check:
    """One statistic compared with the baseline by its named test."""

    feature_name: str
    test: str
    statistic: float
    p_value: float | None
    violated: bool
    description: str
    baseline: dict[str, Any]
    current: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def named_test(feature_name: str) -> str:
    return PSI if feature_name in features.SIZE_FEATURES else KS


def compare_feature(
    name: str, baseline: Mapping[str, Any], current: np.ndarray, thresholds: Thresholds
) -> Check:
    """A feature's captured values against its baseline summary, by the feature's test."""
    reference = distributions.sample(baseline)
    summaries = {"baseline": _brief(baseline), "current": _brief(distributions.summarize(current))}
    if named_test(name) == PSI:
        value = population_stability_index(reference, current)
        violated = value > thresholds.psi_max
        rule = f"PSI > {thresholds.psi_max:g}"
        return Check(
            name,
            PSI,
            value,
            None,
            violated,
            _describe(name, PSI, f"PSI = {value:.3f}", violated, rule, summaries),
            **summaries,
        )
    result = stats.ks_2samp(reference, current)
    distance, p_value = float(result.statistic), float(result.pvalue)
    violated = p_value < thresholds.ks_alpha and distance >= thresholds.ks_min_distance
    rule = f"p < {thresholds.ks_alpha:g} and D >= {thresholds.ks_min_distance:g}"
    return Check(
        name,
        KS,
        distance,
        p_value,
        violated,
        _describe(name, KS, f"D = {distance:.3f}, p = {p_value:.2g}", violated, rule, summaries),
        **summaries,
    )


def population_stability_index(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI over the reference's deciles (fewer bins where values repeat)."""
    edges = np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))
    expected = _shares(reference, edges)
    actual = _shares(current, edges)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Bins (-inf, e1], (e1, e2], ..., (ek, inf): right-closed, so a value equal to an
    # edge falls with the values below it in both samples alike.
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    shares = counts / max(len(values), 1)
    return np.maximum(shares, _PSI_FLOOR)


def compare_classes(
    baseline_counts: Mapping[str, int], current_counts: Mapping[str, int], thresholds: Thresholds
) -> Check:
    """Predicted classes on validation against those of the captured requests. Answers that
    name a class the model does not have (another model behind the endpoint) are a finding
    of their own, and are left out of the test."""
    names = [n for n in baseline_counts if baseline_counts[n] or current_counts.get(n, 0)]
    unknown = sorted(set(current_counts) - set(baseline_counts))
    answers = sum(current_counts.values())
    foreign = sum(current_counts[n] for n in unknown)
    summaries = {
        "baseline": distributions.proportions(dict(baseline_counts)),
        "current": distributions.proportions(dict(current_counts)),
    }
    finding = (
        f" The answers name classes the model does not have: {unknown} ({foreign} of "
        f"{answers} answers)."
        if unknown
        else ""
    )
    known = [current_counts.get(n, 0) for n in names]
    if len(names) < 2 or not sum(known):
        return Check(
            "predicted_class",
            CHI_SQUARE,
            0.0,
            1.0,
            bool(unknown),
            (
                "Fewer than two classes were predicted"
                if len(names) < 2
                else "No answer names a class the model has"
            )
            + "; nothing to compare."
            + finding,
            **summaries,
        )
    table = np.array([[baseline_counts[n] for n in names], known])
    result = stats.chi2_contingency(table)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    violated = p_value < thresholds.chi2_alpha or bool(unknown)
    rule = f"p < {thresholds.chi2_alpha:g}"
    measured = f"chi2 = {statistic:.1f} with {len(names) - 1} degrees of freedom, p = {p_value:.2g}"
    description = _describe(
        "predicted_class",
        CHI_SQUARE,
        measured,
        violated,
        rule,
        {
            "baseline": {"most often": max(names, key=lambda n: baseline_counts[n])},
            "current": {"most often": max(names, key=lambda n: current_counts.get(n, 0))},
        },
    )
    return Check(
        "predicted_class",
        CHI_SQUARE,
        statistic,
        p_value,
        violated,
        description + finding,
        **summaries,
    )


def _brief(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "count": summary["count"],
        "median": distributions.median(summary),
        "mean": summary["mean"],
    }


def _describe(
    name: str,
    test: str,
    measured: str,
    violated: bool,
    rule: str,
    summaries: Mapping[str, Mapping[str, Any]],
) -> str:
    verdict = "drifted from" if violated else "is within"
    sides = "; ".join(
        f"{side} "
        + ", ".join(f"{key} {_number(value)}" for key, value in summary.items() if key != "count")
        for side, summary in summaries.items()
    )
    return (
        f"{name} {verdict} the baseline: {TEST_NAMES[test]} {measured} (drift when "
        f"{rule}); {sides}."
    )


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
