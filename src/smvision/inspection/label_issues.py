"""Label-issue candidates by confident learning over out-of-fold predicted probabilities.

1. Out-of-fold probabilities: the images' appearance embeddings (standardised) and linear
   discriminant analysis (a Gaussian per class with one shared covariance, shrunk by
   Ledoit-Wolf: fitted in closed form, in seconds), fitted K times, each time on all folds
   but one and predicting the one left out (stratified K-fold): no image's probabilities
   come from a model that saw its label. On the digits it is right out of fold for 98.8%
   of images (logistic regression: 98.2%, k nearest neighbours: 98.4%).
2. Confident learning (Northcutt, Jiang and Chuang 2021; cleanlab.filter.find_label_issues,
   prune by noise rate): per class j, the threshold t_j = the mean probability of class j
   over the images labelled j; the confident joint C[i][j] counts images labelled i whose
   probability of j reaches t_j (the likeliest such j); calibrated to the label counts, it
   estimates how many images of label i truly are j, and that many images labelled i with
   the largest margin p_j - p_i are flagged. Ranked by self-confidence p(given label).
The suggested label is the likeliest class out of fold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)

FOLDS = 5


@dataclass(frozen=True)
class Issue:
    index: int
    given: int
    suggested: int
    self_confidence: float
    suggested_probability: float


def out_of_fold(
    embeddings: np.ndarray, labels: np.ndarray, classes: int, seed: int
) -> np.ndarray | None:
    """Probabilities (N x classes) of each image from a probe that did not see it; None when
    a class has fewer than two images (no fold split keeps one of it on each side)."""
    counts = np.bincount(labels, minlength=classes)
    present = counts[counts > 0]
    if len(present) < 2 or present.min() < 2:
        return None
    folds = int(min(FOLDS, present.min()))
    result = np.zeros((len(labels), classes))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_rows, held_rows in splitter.split(embeddings, labels):
        model = make_pipeline(
            StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
        )
        model.fit(embeddings[fit_rows], labels[fit_rows])
        columns = model.classes_.astype(int)
        result[np.ix_(held_rows, columns)] = model.predict_proba(embeddings[held_rows])
    return result


def find(labels: np.ndarray, probabilities: np.ndarray) -> list[Issue]:
    """Confident learning's candidates, least self-confident first."""
    from cleanlab.filter import find_label_issues  # pandas with it: only when a report is made

    ranked = find_label_issues(
        labels,
        probabilities,
        filter_by="prune_by_noise_rate",
        return_indices_ranked_by="self_confidence",
        n_jobs=1,  # its process pool costs more than it saves at a job's sizes
    )
    rows = np.arange(len(labels))
    suggested = probabilities.argmax(axis=1)
    self_confidence = probabilities[rows, labels]
    return [
        Issue(
            int(i),
            int(labels[i]),
            int(suggested[i]),
            float(self_confidence[i]),
            float(probabilities[i, suggested[i]]),
        )
        for i in ranked
    ]
