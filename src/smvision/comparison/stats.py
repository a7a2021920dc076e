"""How sure a measured difference is, given the size of the test set. Standard library only.

- `wilson_interval`: the Wilson score interval of a proportion (accuracy on n images); it
  stays inside [0, 1] and behaves at 0 and n, where the normal approximation does not.
- `bootstrap_macro_f1`: a percentile bootstrap interval of macro-F1, resampling images.
- `mcnemar`: the exact McNemar test of two classifiers on the same images: only the images
  exactly one of them got right count, and under "equally accurate" each such image is a
  fair coin (a two-sided binomial test with p = 1/2, as scipy.stats.binomtest computes it).

Written without numpy or scipy so that launch/ can build a report on a laptop without the
training stack; the tests check each against scipy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


def wilson_interval(
    successes: int, total: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval of successes / total."""
    if total <= 0:
        raise ValueError(f"An interval needs at least one trial; got total={total}.")
    if not 0 <= successes <= total:
        raise ValueError(f"successes={successes} is not between 0 and total={total}.")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    proportion = successes / total
    denominator = 1 + z * z / total
    centre = (proportion + z * z / (2 * total)) / denominator
    half = z * math.sqrt(proportion * (1 - proportion) / total + z * z / (4 * total * total))
    half /= denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def macro_f1(
    truth: Sequence[Hashable], predicted: Sequence[Hashable], classes: Sequence[Hashable]
) -> float:
    """Unweighted mean of per-class F1 over `classes`; a class never seen nor predicted scores 0
    (scikit-learn's f1_score with labels=classes, zero_division=0)."""
    return _macro_f1_of(list(truth), list(predicted), range(len(truth)), list(classes))


def _macro_f1_of(
    truth: list[Hashable],
    predicted: list[Hashable],
    rows: Sequence[int] | range,
    classes: list[Hashable],
) -> float:
    true_positive: dict[Hashable, int] = dict.fromkeys(classes, 0)
    actual: dict[Hashable, int] = dict.fromkeys(classes, 0)
    guessed: dict[Hashable, int] = dict.fromkeys(classes, 0)
    for row in rows:
        label, guess = truth[row], predicted[row]
        if label in actual:
            actual[label] += 1
        if guess in guessed:
            guessed[guess] += 1
        if label == guess and label in true_positive:
            true_positive[label] += 1
    total = 0.0
    for name in classes:
        denominator = actual[name] + guessed[name]
        total += 2 * true_positive[name] / denominator if denominator else 0.0
    return total / len(classes) if classes else 0.0


def bootstrap_macro_f1(
    truth: Sequence[Hashable],
    predicted: Sequence[Hashable],
    classes: Sequence[Hashable],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of macro-F1: resample the images with replacement."""
    count = len(truth)
    if count == 0 or count != len(predicted):
        raise ValueError(
            f"Need as many predictions as labels, at least one; got {len(predicted)} and {count}."
        )
    generator = random.Random(seed)
    labels, guesses, names = list(truth), list(predicted), list(classes)
    population = range(count)
    scores = sorted(
        _macro_f1_of(labels, guesses, generator.choices(population, k=count), names)
        for _ in range(resamples)
    )
    tail = (1 - confidence) / 2
    return _quantile(scores, tail), _quantile(scores, 1 - tail)


def _quantile(ordered: Sequence[float], fraction: float) -> float:
    """Linear interpolation between order statistics (numpy's default 'linear' method)."""
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True)
class PairedTest:
    """Exact McNemar test of two classifiers on the same images."""

    shared: int  # images both were evaluated on
    only_first_right: int
    only_second_right: int
    p_value: float

    @property
    def discordant(self) -> int:
        return self.only_first_right + self.only_second_right


def binomial_two_sided(successes: int, trials: int) -> float:
    """Two-sided exact binomial test against p = 1/2 (scipy.stats.binomtest's p-value)."""
    if trials == 0:
        return 1.0
    smaller = min(successes, trials - successes)
    if 2 * smaller == trials:
        return 1.0
    tail = sum(math.comb(trials, k) for k in range(smaller + 1))
    return min(1.0, float(2 * tail / 2**trials))


def mcnemar(first: Mapping[str, bool], second: Mapping[str, bool]) -> PairedTest:
    """Compare two classifiers' right/wrong per image, over the images both have (by source)."""
    shared = first.keys() & second.keys()
    only_first = sum(1 for source in shared if first[source] and not second[source])
    only_second = sum(1 for source in shared if second[source] and not first[source])
    return PairedTest(
        shared=len(shared),
        only_first_right=only_first,
        only_second_right=only_second,
        p_value=binomial_two_sided(only_first, only_first + only_second),
    )


def smallest_detectable_difference(
    accuracy: float, total: int, confidence: float = CONFIDENCE
) -> float:
    """Half the width of the accuracy interval at this accuracy and test-set size: about the
    smallest difference in accuracy this many images can tell apart."""
    successes = round(accuracy * total)
    low, high = wilson_interval(successes, total, confidence)
    return (high - low) / 2
