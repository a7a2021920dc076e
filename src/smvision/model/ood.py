"""Out-of-distribution score: how unlike the training images an image looks.

Fitted at training time on the appearance embeddings (algorithms.features.appearance) of
the training images, its threshold set on the validation images; serve scores each image
it answers. Numpy only.

    z        = P^T (e - m)                 e: the image's embedding; m, P: the training
                                           embeddings' mean and first K principal axes
    score    = min over classes c of (z - mu_c)^T S^-1 (z - mu_c)  +  |r|^2 / sigma^2
                                           mu_c: class c's mean in z; S: the pooled
                                           within-class covariance, shrunk towards its
                                           diagonal mean (a Mahalanobis distance with a
                                           tied covariance, Lee et al. 2018); r = e - m - P z,
                                           what the K axes leave out, and sigma^2 its
                                           variance per dimension in training (as in
                                           probabilistic PCA): an image unlike the training
                                           images is far along the axes, or off them
    flagged  = score > t,  t = the k-th smallest validation score, k = ceil((n+1)(1-r))

With validation and new in-distribution images exchangeable, an ordinary image is flagged
with probability (n + 1 - k) / (n + 1) <= r: r is the false alarm rate the job chose
(`ood_false_alarm_rate`). When the validation split is too small for r (n + 1 < 1 / r),
t is the largest validation score and the rate is 1 / (n + 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Principal axes kept: enough for the layout and tone of an image, few enough for a
# covariance that a few hundred training images estimate well.
COMPONENTS = 32
# Shrinkage of the covariance towards a multiple of the identity (a stable inverse).
SHRINKAGE = 0.05


class OodError(ValueError):
    """A file of the out-of-distribution model that cannot be read."""


@dataclass(frozen=True)
class OodModel:
    mean: np.ndarray  # (D,)
    axes: np.ndarray  # (D, K)
    class_means: np.ndarray  # (C, K)
    precision: np.ndarray  # (K, K)
    residual_variance: float
    threshold: float
    false_alarm_rate: float  # what the threshold gives in expectation
    validation_images: int

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """The squared Mahalanobis distance of each embedding to its nearest class mean."""
        centred = embeddings.astype(np.float64) - self.mean
        z = centred @ self.axes
        residual = centred - z @ self.axes.T
        best = np.full(len(z), np.inf)
        for centre in self.class_means:
            offset = z - centre
            best = np.minimum(best, np.einsum("ij,jk,ik->i", offset, self.precision, offset))
        scores: np.ndarray = best + (residual**2).sum(axis=1) / self.residual_variance
        return scores

    def flags(self, embeddings: np.ndarray) -> np.ndarray:
        return self.scores(embeddings) > self.threshold

    def summary(self) -> dict[str, Any]:
        return {
            "score": "squared Mahalanobis distance to the nearest class mean in the first "
            f"{self.axes.shape[1]} principal axes of the appearance embedding, plus the "
            "squared residual off those axes over its training variance",
            "threshold": self.threshold,
            "false_alarm_rate": self.false_alarm_rate,
            "validation_images": self.validation_images,
        }

    def save(self, path: Path) -> None:
        with path.open("wb") as stream:
            np.savez(
                stream,
                mean=self.mean,
                axes=self.axes,
                class_means=self.class_means,
                precision=self.precision,
                residual_variance=np.float64(self.residual_variance),
                threshold=np.float64(self.threshold),
                false_alarm_rate=np.float64(self.false_alarm_rate),
                validation_images=np.int64(self.validation_images),
            )

    @classmethod
    def load(cls, path: Path) -> OodModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    data["mean"],
                    data["axes"],
                    data["class_means"],
                    data["precision"],
                    float(data["residual_variance"]),
                    float(data["threshold"]),
                    float(data["false_alarm_rate"]),
                    int(data["validation_images"]),
                )
        except (OSError, KeyError, ValueError) as error:
            raise OodError(f"{path} cannot be read ({error}).") from None


def fit(
    train: np.ndarray,
    labels: np.ndarray | None,
    validation: np.ndarray,
    false_alarm_rate: float,
) -> OodModel:
    """The model from training embeddings (and class indices, or None for one group) and
    the threshold from validation embeddings."""
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"false_alarm_rate {false_alarm_rate!r}: use a rate between 0 and 1")
    if len(validation) == 0 or len(train) < 2:
        raise ValueError("the out-of-distribution threshold needs validation images")
    x = train.astype(np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    k = max(1, min(COMPONENTS, x.shape[1], len(x) - 1))
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:k].T
    # The variance per dimension left outside the K axes (probabilistic PCA's sigma^2).
    left = (singular[k:] ** 2).sum() / max(1, len(x) - 1)
    residual_variance = float(left / max(1, x.shape[1] - k)) or 1e-12
    z = centred @ axes
    groups = np.zeros(len(z), np.int64) if labels is None else labels.astype(np.int64)
    present = np.unique(groups)
    class_means = np.stack([z[groups == g].mean(axis=0) for g in present])
    within = z - class_means[np.searchsorted(present, groups)]
    covariance = within.T @ within / max(1, len(z) - len(present))
    scale = float(np.trace(covariance)) / k or 1.0
    covariance = (1 - SHRINKAGE) * covariance + SHRINKAGE * scale * np.eye(k)
    precision = np.linalg.inv(covariance)
    model = OodModel(
        mean, axes, class_means, precision, residual_variance, math.inf, 0.0, len(validation)
    )
    calibration = np.sort(model.scores(validation))
    n = len(calibration)
    rank = min(math.ceil((n + 1) * (1 - false_alarm_rate) - 1e-9), n)
    return OodModel(
        mean,
        axes,
        class_means,
        precision,
        residual_variance,
        float(calibration[rank - 1]),
        (n + 1 - rank) / (n + 1),
        n,
    )
