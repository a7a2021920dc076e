"""`python -m smvision.local export`: TFLite and ONNX exports of a trained Keras model.

Each export is run against the Keras model it came from on the job's test split, by
this test and by the export itself (export.json): float32 gives the same probabilities
within 1e-5, float16 within 1e-2, and int8 (calibrated on the job's training images)
the same accuracy within one percentage point.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smvision.core import contract
from smvision.data import dataset
from smvision.local import cli
from smvision.model import runtimes
from tests.support.serving import JobDirs, exported_copy, model_input, offline_model

PROBABILITY_TOLERANCE = {"float32": 1e-5, "float16": 1e-2}
INT8_ACCURACY_POINTS = 1.0


def load_test_split(job_dir: Path) -> dataset.Dataset:
    """The job's test channel, decoded as training decoded it."""
    ml = job_dir / "opt" / "ml"
    names = json.loads((ml / "model" / contract.METADATA_FILE).read_text())["class_names"]
    decode = model_input(job_dir)
    return dataset.load(
        dataset.list_channel(ml / "input" / "data" / "test", "test"),
        names,
        decode.size,
        decode.channels,
        "test",
        None,
        scaled_jpeg=decode.scaled_jpeg,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt, quantize",
    [
        ("tflite", "float32"),
        ("tflite", "float16"),
        ("tflite", "int8"),
        ("onnx", "float32"),
        ("onnx", "int8"),
    ],
)
def test_an_export_predicts_like_the_keras_model(
    serving_jobs: JobDirs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    quantize: str,
) -> None:
    job_dir = exported_copy(serving_jobs, tmp_path, fmt, quantize)
    model_dir = job_dir / "opt" / "ml" / "model"
    record = json.loads((model_dir / contract.EXPORT_FILE).read_text())
    exported = model_dir / record["file"]
    assert record["format"] == fmt and record["quantize"] == quantize
    assert exported.stat().st_size == record["bytes"] < record["original_bytes"] * 1.01
    assert f"Wrote {record['file']}" in capsys.readouterr().out

    test = load_test_split(job_dir)
    keras_model, _ = offline_model(serving_jobs("cnn"))
    original = keras_model.predict_proba(test.all_images())
    compressed = runtimes.load(exported, threads=1).predict(test.all_images())
    evaluation = record["evaluation"]
    assert evaluation["split"] == "test" and evaluation["images"] == len(test)
    original_accuracy = float(np.mean(original.argmax(1) == test.labels))
    export_accuracy = float(np.mean(compressed.argmax(1) == test.labels))
    assert evaluation["original_accuracy"] == pytest.approx(original_accuracy, abs=1e-9)
    assert evaluation["export_accuracy"] == pytest.approx(export_accuracy, abs=1e-9)
    assert original_accuracy > 0.9  # a trained model, or agreement would mean little
    if quantize == "int8":
        assert abs(export_accuracy - original_accuracy) * 100 <= INT8_ACCURACY_POINTS
        assert record["calibration"] == {"channel": "train", "images": 200}
    else:
        tolerance = PROBABILITY_TOLERANCE[quantize]
        np.testing.assert_allclose(compressed, original, rtol=0, atol=tolerance)
        assert evaluation["max_probability_difference"] <= tolerance


@pytest.mark.slow
def test_a_new_export_replaces_the_last(serving_jobs: JobDirs, tmp_path: Path) -> None:
    job_dir = exported_copy(serving_jobs, tmp_path, "tflite", "float16")
    command = ["export", "--job-dir", str(job_dir), "--format", "onnx"]
    assert cli.main(command) == 0
    model_dir = job_dir / "opt" / "ml" / "model"
    assert (model_dir / "model.onnx").is_file() and not (model_dir / "model.tflite").exists()
    assert not [p.name for p in model_dir.iterdir() if p.name.startswith(".")]
    assert json.loads((model_dir / contract.EXPORT_FILE).read_text())["quantize"] == "float32"


@pytest.mark.slow
def test_a_classical_model_is_refused_with_the_reason(
    serving_jobs: JobDirs, capsys: pytest.CaptureFixture[str]
) -> None:
    job_dir = serving_jobs("svm")
    assert cli.main(["export", "--job-dir", str(job_dir), "--format", "onnx"]) == 2
    error = capsys.readouterr().err
    assert "holds a svm model" in error and "export converts Keras models (cnn, resnet50)" in error
    assert not (job_dir / "opt" / "ml" / "model" / contract.EXPORT_FILE).exists()


def test_a_job_without_a_model_says_to_train_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["export", "--job-dir", str(tmp_path), "--format", "tflite"]) == 2
    assert "Train the job first" in capsys.readouterr().err


@pytest.mark.parametrize(
    "count, sizes",
    [(1, [1]), (3, [1, 1, 1]), (8, [8]), (9, [8, 1]), (70, [32, 32, 1, 1, 1, 1, 1, 1])],
)
def test_batches_run_in_pieces_of_the_fixed_sizes(count: int, sizes: list[int]) -> None:
    seen: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        seen.append(len(batch))
        return batch.reshape(len(batch), -1)[:, :2].astype(np.float32)

    pixels = np.arange(count * 4, dtype=np.uint8).reshape(count, 2, 2, 1)
    result = runtimes.in_fixed_batches(pixels, runtimes.BATCH_SIZES, run)
    assert seen == sizes
    np.testing.assert_array_equal(result, pixels.reshape(count, -1)[:, :2])
