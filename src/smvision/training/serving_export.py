"""svm and rf compiled to ONNX at the end of training, so that `serve` runs them without
scikit-learn: their probabilities on ONNX Runtime, after features extracted as in training.

On 64-pixel digits (bench/NOTES.md), one image's rf probabilities (300 trees) cost 23 ms of
CPU in scikit-learn, nearly all of it Python work per tree, and 0.03 ms on ONNX Runtime;
an svm's 2.0 ms (the one-pass Platt scaling) against 1.2 ms. The compiled model is kept only
when it agrees with scikit-learn on the job's test split (else validation) within
AGREEMENT; otherwise, and for features=deep (TensorFlow's backbone), serve runs
scikit-learn, as before. What it changed is recorded in export.json, as for any export.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from smvision.algorithms.base import Algorithm, NotConvertibleError
from smvision.algorithms.exported import ExportedModel
from smvision.algorithms.features import FeatureSettings
from smvision.core.machine import available_cores
from smvision.model import exports, runtimes
from smvision.training.inputs import JobData

log = logging.getLogger(__name__)

# The largest difference from scikit-learn's probabilities a compiled model may show:
# ONNX Runtime sums in float32, where scikit-learn sums in float64.
AGREEMENT = 1e-5
_CHUNK = 256

Export = tuple[bytes, dict[str, Any]]


def compile_for_serving(
    algorithm: Algorithm, job: JobData, probabilities: dict[str, np.ndarray]
) -> Export | None:
    """The ONNX model and its export.json record, or None (logged why) where serve keeps
    to the trained model. `probabilities`: scikit-learn's, by split, from the evaluation."""
    try:
        converted = algorithm.to_onnx()
    except NotConvertibleError as error:
        log.info("Not compiled to ONNX (%s): serve runs scikit-learn.", error)
        return None
    if converted is None:
        return None
    content, model_input = converted
    split, chunks, labels, expected = _checked_split(algorithm, job, probabilities)
    compiled = ExportedModel(
        runtimes.OnnxRuntime(content, available_cores()),
        algorithm.image_size,
        algorithm.channels,
        algorithm.class_count,
        FeatureSettings.from_dict(model_input["features"]),
    )
    got = np.concatenate([compiled.predict_proba(chunk) for chunk in chunks])
    evaluation = exports.compare(expected, got, labels, split)
    difference = evaluation["max_probability_difference"]
    if difference > AGREEMENT:
        log.warning(
            "The model compiled to ONNX differs from scikit-learn by up to %.2e on the %s "
            "split (more than %.0e): not kept; serve runs scikit-learn.",
            difference,
            split,
            AGREEMENT,
        )
        return None
    log.info(
        "Compiled to ONNX for serving (%.2f MB): on the %s split (%d images) its probabilities "
        "differ from scikit-learn's by at most %.1e.",
        len(content) / 1e6,
        split,
        len(labels),
        difference,
    )
    record = exports.record("onnx", "float32", len(content), None, model_input, evaluation)
    return content, record


def _checked_split(
    algorithm: Algorithm, job: JobData, probabilities: dict[str, np.ndarray]
) -> tuple[str, Iterable[np.ndarray], np.ndarray, np.ndarray]:
    """The split to compare on (its name, its images a chunk at a time, its labels) and
    scikit-learn's probabilities for it: test, else validation, else train's first chunk."""
    for split, dataset in (("test", job.test), ("validation", job.validation)):
        if dataset is not None and split in probabilities:
            return split, dataset.chunks(_CHUNK), dataset.labels, probabilities[split]
    first = next(job.train.chunks(_CHUNK))
    return "train", [first], job.train.labels[: len(first)], algorithm.predict_proba(first)
