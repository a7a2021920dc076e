"""`python -m smvision.local export`: TFLite and ONNX exports of a trained Keras model; the
ONNX that train compiles an svm or rf to, and that export compiles for one trained before.

Each export is run against the Keras model it came from on the job's test split, by
this test and by the export itself (export.json): float32 gives the same probabilities
within 1e-5, float16 within 1e-2. int8 (calibrated on the job's training images) keeps the
same accuracy within one percentage point by construction: the export's gate installs no
export that loses more, and makes an int8 one that does again as float16.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from smvision.algorithms.exported import ExportedModel
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
    refused = [r["quantize"] for r in record["gate"]["refused"]]
    assert record["format"] == fmt and record["gate"]["asked"] == quantize
    assert (record["quantize"], refused) in ((quantize, []), ("float16", ["int8"]))
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
        assert (original_accuracy - export_accuracy) * 100 <= INT8_ACCURACY_POINTS
        if not refused:
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


def compiled_classical(model_dir: Path) -> ExportedModel:
    """The svm or rf as serve runs it from its export: features, then ONNX Runtime."""
    record = json.loads((model_dir / contract.EXPORT_FILE).read_text())
    metadata = json.loads((model_dir / contract.METADATA_FILE).read_text())
    return ExportedModel.of(runtimes.load(model_dir / record["file"], threads=1), metadata, record)


@pytest.mark.slow
def test_an_export_that_loses_accuracy_is_refused_and_nothing_is_installed(
    serving_jobs: JobDirs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A gate no export can pass (it must gain 101 points): the float16 export is refused
    with its sentence, and the model directory keeps what it had."""
    from smvision.serving import export

    job_dir = exported_copy(serving_jobs, tmp_path, "onnx", "float32")
    model_dir = job_dir / "opt" / "ml" / "model"
    before = sorted(p.name for p in model_dir.iterdir())
    monkeypatch.setattr(export, "MAX_ACCURACY_LOSS_POINTS", -101.0)
    command = ["export", "--job-dir", str(job_dir), "--format", "tflite", "--quantize", "float16"]
    assert cli.main(command) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "The float16 tflite export scored" in error and "more than the -101 point" in error
    assert "Nothing was exported" in error
    assert sorted(p.name for p in model_dir.iterdir()) == before
    assert json.loads((model_dir / contract.EXPORT_FILE).read_text())["format"] == "onnx"


def test_the_gate_names_the_loss_and_the_fallback() -> None:
    from smvision.serving.export import gate_refusal

    compared = {
        "split": "test",
        "images": 32,
        "original_accuracy": 1.0,
        "export_accuracy": 0.96875,
        "accuracy_change_points": -3.125,
    }
    sentence = gate_refusal("onnx", "int8", compared)
    assert sentence is not None
    assert "The int8 onnx export scored 0.9688 on the 32 test images" in sentence
    assert "(-3.12 points)" in sentence and sentence.endswith("trying float16 instead.")
    assert gate_refusal("onnx", "int8", compared | {"accuracy_change_points": -1.0}) is None
    assert gate_refusal("onnx", "int8", compared | {"accuracy_change_points": 2.0}) is None


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["svm", "rf"])
def test_train_compiles_svm_and_rf_to_onnx_that_agrees_with_scikit_learn(
    serving_jobs: JobDirs, algorithm: str
) -> None:
    job_dir = serving_jobs(algorithm)
    model_dir = job_dir / "opt" / "ml" / "model"
    record = json.loads((model_dir / contract.EXPORT_FILE).read_text())
    assert (record["format"], record["quantize"]) == ("onnx", "float32")
    assert record["file"] == "model.onnx"
    assert record["input"]["features"]["kinds"] == ["hog"]
    assert record["original_bytes"] == (model_dir / "model.joblib").stat().st_size
    test = load_test_split(job_dir)
    original = offline_model(job_dir)[0].predict_proba(test.all_images())
    compiled = compiled_classical(model_dir).predict_proba(test.all_images())
    np.testing.assert_allclose(compiled, original, rtol=0, atol=PROBABILITY_TOLERANCE["float32"])
    assert record["evaluation"]["split"] == "test"
    assert record["evaluation"]["max_probability_difference"] <= 1e-5
    assert record["evaluation"]["same_label"] == 1.0


@pytest.mark.slow
def test_export_compiles_an_svm_trained_before_train_did(
    serving_jobs: JobDirs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_dir = tmp_path / "job"
    shutil.copytree(serving_jobs("svm"), job_dir)
    model_dir = job_dir / "opt" / "ml" / "model"
    (model_dir / contract.EXPORT_FILE).unlink()
    (model_dir / "model.onnx").unlink()
    assert cli.main(["export", "--job-dir", str(job_dir), "--format", "onnx"]) == 0
    assert "Wrote model.onnx" in capsys.readouterr().out
    record = json.loads((model_dir / contract.EXPORT_FILE).read_text())
    assert record["original_bytes"] == (model_dir / "model.joblib").stat().st_size
    assert record["evaluation"]["max_probability_difference"] <= 1e-5
    test = load_test_split(job_dir)
    np.testing.assert_allclose(
        compiled_classical(model_dir).predict_proba(test.all_images()),
        offline_model(serving_jobs("svm"))[0].predict_proba(test.all_images()),
        rtol=0,
        atol=PROBABILITY_TOLERANCE["float32"],
    )


@pytest.mark.slow
def test_a_classical_model_as_tflite_is_refused_with_the_reason(
    serving_jobs: JobDirs, capsys: pytest.CaptureFixture[str]
) -> None:
    job_dir = serving_jobs("rf")
    before = (job_dir / "opt" / "ml" / "model" / contract.EXPORT_FILE).read_bytes()
    assert cli.main(["export", "--job-dir", str(job_dir), "--format", "tflite"]) == 2
    error = capsys.readouterr().err
    assert "holds a rf model, which exports as ONNX float32 only" in error
    assert "use --format onnx" in error
    assert (job_dir / "opt" / "ml" / "model" / contract.EXPORT_FILE).read_bytes() == before


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
