"""features=deep: svm on a frozen ResNet50's pooled output, trained and served for real.

No ImageNet weights can be downloaded here: the job uses weights=none (random, seeded),
which exercises every path (extraction in batches, the weights travelling in the model,
the checks `serve` makes) but says nothing about what ImageNet features are worth.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from smvision.algorithms.classical import ClassicalAlgorithm
from smvision.algorithms.features.backbones import sha256_of
from smvision.core import contract
from smvision.data import dataset
from smvision.data.bodies import decode_request
from smvision.serving.inference import Predictor
from smvision.serving.settings import ModelDirectoryError, settings_from
from tests.support.server_process import running_server
from tests.support.serving import PROBABILITY_TOLERANCE, job_environment, offline_model
from tests.support.training_jobs import run_local_train

CLASSES = ("0", "1", "7")
PER_CLASS = {"train": 20, "test": 8}
HOG_WIDTH = 324  # 32 pixels: 3x3 blocks x 4 cells x 9 bins


@pytest.fixture(scope="session")
def deep_job(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """svm with features=hog+deep (weights=none) on three digits, trained once per session."""
    root = tmp_path_factory.mktemp("deep")
    for split, count in PER_CLASS.items():
        for name in CLASSES:
            (root / "data" / split / name).mkdir(parents=True)
            for path in sorted((digits / split / name).glob("*.png"))[:count]:
                shutil.copy(path, root / "data" / split / name / path.name)
    job_dir = root / "job"
    job = run_local_train(
        "svm",
        {split: root / "data" / split for split in PER_CLASS},
        job_dir,
        {"features": "hog+deep", "weights": "none", "image_size": "32"},
        env=job_environment(job_dir),
    )
    assert job.returncode == 0, job.output[-4000:]
    assert "ResNet50 starts from random weights (weights=none)." in job.output
    return job_dir


def model_dir(job_dir: Path) -> Path:
    return job_dir / "opt" / "ml" / "model"


def test_the_model_records_its_backbone_and_carries_its_random_weights(deep_job: Path) -> None:
    metadata = json.loads((model_dir(deep_job) / "metadata.json").read_text())
    backbone = metadata["preprocessing"]["backbone"]
    assert backbone["network"] == "resnet50"
    assert backbone["weights"] == "random (weights=none)"
    assert backbone["in_model_dir"] is True
    weights = model_dir(deep_job) / backbone["file"]
    assert weights.stat().st_size > 50_000_000  # all of ResNet50 without its top
    assert sha256_of(weights) == backbone["sha256"]
    assert metadata["preprocessing"]["features"]["kinds"] == ["hog", "deep"]
    evaluation = json.loads((deep_job / "opt/ml/output/data/evaluation.json").read_text())
    assert evaluation["test"]["count"] == 24 and evaluation["test"]["accuracy"] > 0.6


def test_training_and_serving_compute_the_same_features(deep_job: Path) -> None:
    """The test files through the training loader, then each alone through the request
    decoder. HOG is identical to the bit; the network's output to float32 round-off, as
    oneDNN picks its kernels by batch size (64 in training, 1 here)."""
    model, class_names = offline_model(deep_job)
    assert isinstance(model, ClassicalAlgorithm)
    metadata = json.loads((model_dir(deep_job) / "metadata.json").read_text())
    model_input = Predictor(model, class_names, metadata["scaled_jpeg_decode"]).model_input
    samples = dataset.list_channel(deep_job / "opt/ml/input/data/test", "test")
    loaded = dataset.load(samples, class_names, 32, 1, "test", 0.0, scaled_jpeg=True)
    training = model.extract(loaded.all_images())
    assert training.shape == (24, HOG_WIDTH + 2048)
    for row in (0, 9, 23):
        path = samples[row].path
        assert path is not None
        served = model.features_of(decode_request(path.read_bytes(), "image/png", model_input))[0]
        np.testing.assert_array_equal(served[:HOG_WIDTH], training[row, :HOG_WIDTH])
        deep = training[row, HOG_WIDTH:]
        np.testing.assert_allclose(
            served[HOG_WIDTH:], deep, rtol=0, atol=1e-6 * np.abs(deep).max() * 100
        )
    evaluation = json.loads((deep_job / "opt/ml/output/data/evaluation.json").read_text())
    first = evaluation["test"]["predictions"][0]
    probabilities = model.predict_proba(loaded.all_images()[:1])[0]
    assert class_names[int(probabilities.argmax())] == first["predicted"]
    assert abs(float(probabilities.max()) - first["probability"]) <= PROBABILITY_TOLERANCE


def test_serve_answers_with_the_weights_it_was_trained_with(deep_job: Path) -> None:
    digit = sorted((deep_job / "opt/ml/input/data/test/7").glob("*.png"))[0].read_bytes()
    # ResNet50 on TensorFlow in the worker: compiling it to TFLite at start (the default)
    # takes minutes on a busy machine; that path: test_transfer_learning.py.
    env = job_environment(deep_job) | {"SMVISION_KERAS_RUNTIME": "tensorflow"}
    with running_server(deep_job, env=env) as server:
        answer = httpx.post(
            f"{server.url}/invocations", content=digit, headers={"Content-Type": "image/png"}
        )
    assert answer.status_code == 200, answer.text
    offline = offline_model(deep_job)[0].predict_proba([decode_request(digit, "image/png")[0]])
    assert answer.json()["predictions"][0]["probability"] == pytest.approx(
        float(offline.max()), abs=PROBABILITY_TOLERANCE
    )


def test_serve_refuses_at_start_without_the_weights_it_was_trained_with(
    deep_job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing, other, or not baked into the image: the settings serve starts from refuse
    each with its sentence (no worker starts, no TensorFlow loads), and serve exits 2."""
    source = model_dir(deep_job)
    record = json.loads((source / "metadata.json").read_text())["preprocessing"]["backbone"]
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # an image without the file
    cases = {
        "missing": f"backbone weights {record['file']} are missing from",
        "other": f"but this model's features were computed with sha256 {record['sha256'][:12]}",
        "imagenet": "which this image does not hold at",
    }
    for case, expected in cases.items():
        ml = tmp_path / case / "opt" / "ml"
        (ml / "model").mkdir(parents=True)
        metadata = json.loads((source / "metadata.json").read_text())
        if case == "other":
            content = bytearray((source / record["file"]).read_bytes())
            content[-1] ^= 0xFF
            (ml / "model" / record["file"]).write_bytes(bytes(content))
        if case == "imagenet":  # as if trained with the ImageNet file the image was to hold
            metadata["preprocessing"]["backbone"] |= {"weights": "imagenet", "in_model_dir": False}
        (ml / "model" / "metadata.json").write_text(json.dumps(metadata))
        with pytest.raises(ModelDirectoryError, match=re.escape(expected)):
            settings_from(contract.load({"SAGEMAKER_BASE_DIR": str(ml)}))
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "serve")],
        env={"PATH": "/usr/bin:/bin", "SAGEMAKER_BASE_DIR": str(tmp_path / "missing/opt/ml")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert cases["missing"] in completed.stderr + completed.stdout
