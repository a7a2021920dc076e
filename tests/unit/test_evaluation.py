"""evaluation.py on real predictions: two classes (LFW faces) and multi-label (digit traits)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from smvision.core import metrics
from smvision.local.samples import digits_images, faces_images, split_indices
from smvision.model import evaluation
from smvision.training.explain import charts

# Traits of a digit that several can share: a multi-label problem on real scans.
TRAITS = {"even": {0, 2, 4, 6, 8}, "loop": {0, 6, 8, 9}, "large": {5, 6, 7, 8, 9}}


@cache
def faces_predictions() -> tuple[np.ndarray, np.ndarray]:
    pixels, names = faces_images()
    labels = np.array([0 if name == "face" else 1 for name in names])
    rows = split_indices(labels)
    features = pixels.reshape(len(pixels), -1) / 255.0
    model = LogisticRegression(max_iter=3000, C=0.1).fit(
        features[rows["train"]], labels[rows["train"]]
    )
    return model.predict_proba(features[rows["test"]]), labels[rows["test"]]


@cache
def trait_predictions() -> tuple[np.ndarray, np.ndarray]:
    pixels, digits = digits_images()
    truth = np.array([[d in members for members in TRAITS.values()] for d in digits], np.uint8)
    rows = split_indices(digits)
    features = pixels.reshape(len(pixels), -1) / 255.0
    model = OneVsRestClassifier(LogisticRegression(max_iter=3000))
    model.fit(features[rows["train"]], truth[rows["train"]])
    return model.predict_proba(features[rows["test"]]), truth[rows["test"]]


def faces_result() -> dict[str, Any]:
    proba, labels = faces_predictions()
    return evaluation.evaluate(
        proba, labels, ["face", "nonface"], [f"{i}.png" for i in range(len(labels))]
    )


def test_two_classes_get_precision_recall_f1_and_both_aucs() -> None:
    proba, labels = faces_predictions()
    result = faces_result()
    predicted = proba.argmax(axis=1)
    true_positive = int(((predicted == 1) & (labels == 1)).sum())
    assert result["positive_class"] == "nonface"
    assert result["precision"] == pytest.approx(true_positive / (predicted == 1).sum())
    assert result["recall"] == pytest.approx(true_positive / (labels == 1).sum())
    p, r = result["precision"], result["recall"]
    assert result["f1"] == pytest.approx(2 * p * r / (p + r))
    # ROC AUC is the chance that a random positive outranks a random negative.
    positives, negatives = proba[labels == 1, 1], proba[labels == 0, 1]
    ranked = (positives[:, None] > negatives[None, :]).mean()
    ranked += 0.5 * (positives[:, None] == negatives[None, :]).mean()
    assert result["auc"] == pytest.approx(ranked)
    assert 0.8 < result["auc"] <= 1.0 and 0.5 < result["pr_auc"] <= 1.0
    roc = result["curves"]["roc"]
    assert roc["false_positive_rate"][0] == 0.0 and roc["true_positive_rate"][-1] == 1.0
    assert set(metrics.measures_for(2, False)) <= set(result)


def test_aucs_are_absent_not_invented_when_a_split_has_one_class() -> None:
    proba, labels = faces_predictions()
    only_faces = labels == 0
    result = evaluation.evaluate(
        proba[only_faces], labels[only_faces], ["face", "nonface"], ["x"] * int(only_faces.sum())
    )
    assert result["auc"] is None and result["pr_auc"] is None and "curves" not in result


def test_multi_label_measures_match_their_definitions() -> None:
    proba, truth = trait_predictions()
    result = evaluation.evaluate(proba, truth, list(TRAITS), [f"{i}" for i in range(len(truth))])
    predicted = proba >= 0.5
    assert result["hamming_loss"] == pytest.approx((predicted != truth).mean())
    assert result["subset_accuracy"] == pytest.approx((predicted == truth).all(axis=1).mean())
    assert result["accuracy"] == result["subset_accuracy"]
    tp = (predicted & (truth == 1)).sum()
    micro = 2 * tp / (predicted.sum() + truth.sum())
    assert result["f1_micro"] == pytest.approx(micro)
    per_label = [result["per_class"][name]["f1"] for name in TRAITS]
    assert result["macro_f1"] == pytest.approx(np.mean(per_label))
    assert result["per_class"]["loop"]["support"] == int(truth[:, 1].sum())
    assert result["label_confusion"]["even"]["matrix"][1][1] == int(
        (predicted[:, 0] & (truth[:, 0] == 1)).sum()
    )
    first = result["predictions"][0]
    assert first["labels"] == [name for name, bit in zip(TRAITS, truth[0]) if bit]
    assert set(metrics.measures_for(3, True)) <= set(result)
    assert result["f1_micro"] > 0.8


def test_a_higher_threshold_trades_recall_for_precision() -> None:
    proba, truth = trait_predictions()
    low = evaluation.evaluate_multi_label(proba, truth, list(TRAITS), ["x"] * len(truth), 0.3)
    high = evaluation.evaluate_multi_label(proba, truth, list(TRAITS), ["x"] * len(truth), 0.8)
    assert high["per_class"]["large"]["precision"] >= low["per_class"]["large"]["precision"]
    assert high["per_class"]["large"]["recall"] <= low["per_class"]["large"]["recall"]


def test_pictures_fit_the_results(tmp_path: Path) -> None:
    proba, truth = trait_predictions()
    multi = {"test": evaluation.evaluate(proba, truth, list(TRAITS), ["x"] * len(truth))}
    assert [p.name for p in charts.results(multi, tmp_path)] == ["per_label.png"]
    binary = {"validation": faces_result(), "test": faces_result()}
    written = charts.results(binary, tmp_path)
    assert [p.name for p in written] == ["confusion_matrix.png", "roc_pr_curves.png"]
    for path in (tmp_path / "per_label.png", *written):
        assert path.stat().st_size > 10_000


def test_metric_definitions_stay_within_sagemakers_limit() -> None:
    assert len(metrics.METRIC_DEFINITIONS) <= 40
    assert metrics.direction("hamming_loss") == "Minimize"
    assert metrics.direction("f1_micro") == "Maximize"


def test_the_comparison_says_it_ranks_single_label_models_only() -> None:
    from smvision.comparison.rows import ScoresError, scores_from_evaluation

    proba, truth = trait_predictions()
    multi = {"test": evaluation.evaluate(proba, truth, list(TRAITS), ["x"] * len(truth))}
    with pytest.raises(ScoresError, match="'test' result is a multi-label model's"):
        scores_from_evaluation(multi)


def test_model_quality_statistics_refuse_a_multi_label_evaluation() -> None:
    from smvision.core import model_quality

    proba, truth = trait_predictions()
    multi = {"test": evaluation.evaluate(proba, truth, list(TRAITS), ["x"] * len(truth))}
    with pytest.raises(model_quality.EvaluationError, match="are a multi-label model's"):
        model_quality.from_evaluation(multi)
    assert model_quality.from_evaluation({"test": faces_result()})["dataset"]["item_count"] == 40
