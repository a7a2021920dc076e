"""An export beside the trained model: its file and export.json, written and compared alike
by `train` (an svm or rf compiled to ONNX) and `smvision.local export` (a Keras model as
TFLite or ONNX).

export.json says what serve needs to run the export without the library that trained it
(its format, file and input) and what it changed: accuracy and probabilities on the job's
test split (else validation) against the original model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from smvision.core.artifacts import library_versions, write_json
from smvision.core.contract import EXPORT_FILE

MODEL_FILES = {"tflite": "model.tflite", "onnx": "model.onnx"}


def compare(
    original: np.ndarray, compressed: np.ndarray, labels: np.ndarray, split: str
) -> dict[str, Any]:
    """What the export changed on `split`: accuracy, labels, the largest probability change
    (multi-label, labels a 0/1 matrix: subset accuracy, each label predicted at 0.5)."""
    if labels.ndim == 2:
        original_labels, compressed_labels = original >= 0.5, compressed >= 0.5
        original_accuracy = float(np.mean((original_labels == labels.astype(bool)).all(1)))
        export_accuracy = float(np.mean((compressed_labels == labels.astype(bool)).all(1)))
        same = float(np.mean((original_labels == compressed_labels).all(1)))
    else:
        original_accuracy = float(np.mean(original.argmax(1) == labels))
        export_accuracy = float(np.mean(compressed.argmax(1) == labels))
        same = float(np.mean(original.argmax(1) == compressed.argmax(1)))
    return {
        "split": split,
        "images": len(labels),
        "original_accuracy": original_accuracy,
        "export_accuracy": export_accuracy,
        "accuracy_change_points": 100.0 * (export_accuracy - original_accuracy),
        "same_label": same,
        "max_probability_difference": float(np.abs(original - compressed).max()),
    }


def record(
    fmt: str,
    quantize: str,
    content_bytes: int,
    original_bytes: int | None,
    model_input: dict[str, Any],
    evaluation: dict[str, Any],
    calibration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """export.json's content. `model_input`: the dtype and shape the export takes, and for a
    model on features (svm, rf) the feature settings that make its input from an image."""
    return {
        "format": fmt,
        "quantize": quantize,
        "file": MODEL_FILES[fmt],
        "bytes": content_bytes,
        "original_bytes": original_bytes,
        "input": model_input,
        "calibration": calibration,
        "evaluation": evaluation,
        "versions": library_versions(),
    }


def install(model_dir: Path, content: bytes, export_record: dict[str, Any]) -> None:
    """Write the export into model_dir (replacing any earlier one), export.json last, so a
    reader never finds a record whose file is not complete."""
    (model_dir / EXPORT_FILE).unlink(missing_ok=True)
    for name in MODEL_FILES.values():
        (model_dir / name).unlink(missing_ok=True)
    file_name = export_record["file"]
    temporary = model_dir / f".{file_name}.tmp"
    temporary.write_bytes(content)
    os.replace(temporary, model_dir / file_name)
    write_json(model_dir / EXPORT_FILE, export_record)
