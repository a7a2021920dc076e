"""multi_label=true: sets of labels in, a sigmoid (cnn) or one-vs-rest (rf) model, per-label
metrics, and a `serve` that answers every label's probability and the labels over a
threshold. Data: the digits labelled with their traits (even, prime, large), real scans.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from smvision.data import dataset
from smvision.local.job_dir import lay_out_job
from smvision.local.samples import DIGIT_TRAITS, digit_traits_set, export
from smvision.schema import hyperparameters
from smvision.training import distributed
from smvision.training import main as train
from smvision.training.main import JobRun
from tests.support.server_process import running_server
from tests.support.training_jobs import JobResult, TrainJob, run_local_train

TRAITS = list(DIGIT_TRAITS)


@pytest.fixture(scope="session")
def traits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("traits")
    for file_format in ("lst", "manifest"):
        export(digit_traits_set(), root / file_format, file_format)
    return {"lst": root / "lst", "manifest": root / "manifest"}


@pytest.fixture(scope="session")
def rf_traits_job(traits: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> JobResult:
    """rf, one forest per trait, from Ground Truth style manifests (class ids, class map)."""
    manifests = traits["manifest"]
    return run_local_train(
        "rf",
        {},
        tmp_path_factory.mktemp("rf-traits") / "job",
        {"image_size": "16", "multi_label": "true", "n_estimators": "40"},
        manifests={
            "train": manifests / "train" / "train.manifest",
            "test": manifests / "test" / "test.manifest",
        },
        attribute_names=("source-ref", "class", "class-metadata"),
    )


def test_rf_learns_one_forest_per_label_with_the_manifests_names(
    rf_traits_job: JobResult,
) -> None:
    job = rf_traits_job
    assert job.returncode == 0, job.output[-3000:]
    assert job.metadata["class_names"] == TRAITS and job.metadata["multi_label"] is True
    test = job.evaluation["test"]
    assert test["f1_micro"] > 0.8 and test["hamming_loss"] < 0.15
    assert set(test["per_class"]) == set(TRAITS)
    assert {"test:f1_micro", "test:hamming_loss", "test:subset_accuracy"} <= set(job.metrics())
    assert (job.ml / "output" / "data" / "per_label.png").stat().st_size > 10_000


@pytest.mark.slow
def test_cnn_gets_a_sigmoid_per_label_and_trains_on_binary_cross_entropy(
    tmp_path: Path, traits: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """In this process: the training loop's multi-label path, two short epochs, its
    train images read from the decoded cache, a batch_size larger than the data set."""
    from smvision.algorithms.cnn import CNNAlgorithm

    decoded = dataset.decode_labels(
        {
            split: dataset.list_channel(traits["lst"] / split, split)[:300]
            for split in ("train", "validation")
        },
        multi_label=True,
    )
    names = dataset.class_names_of(decoded["train"], multi_label=True)
    cache = dataset.Storage("cache", tmp_path / "cache")
    train = dataset.load(
        decoded["train"], names, 16, 1, "train", 0.0, multi_label=True, storage=cache
    )
    validation = dataset.load(
        decoded["validation"], names, 16, 1, "validation", 0.0, multi_label=True
    )
    hp = hyperparameters.parse(
        {
            "algorithm": "cnn",
            "image_size": "16",
            "multi_label": "true",
            "epochs": "2",
            "augment": "false",
            "batch_size": "512",
        }
    )
    run = JobRun(tmp_path, distributed.Cluster(("algo-1",), "algo-1", 0, 1, 0), len(train), None)
    cnn = CNNAlgorithm(16, 1, len(names))
    with caplog.at_level("WARNING"):
        history = cnn.fit(train, validation, hp, run)
    assert isinstance(train.images, np.memmap)
    assert "batch_size 512 is more than the 300 train images" in caplog.text
    assert cnn.model.layers[-1].activation.__name__ == "sigmoid"
    proba = cnn.predict_proba(validation.all_images())
    # Sigmoids: a row need not sum to one, as softmax outputs would.
    assert np.abs(proba.sum(axis=1) - 1.0).max() > 0.3
    assert history["train:loss"][1] < history["train:loss"][0]
    # Every epoch reports the measure a tuning job follows for a multi-label model.
    assert len(history["validation:f1_micro"]) == 2


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(120.0)) as http:
        yield http


def test_serve_answers_every_labels_probability_and_those_over_the_threshold(
    rf_traits_job: JobResult, traits: dict[str, Path], client: httpx.Client
) -> None:
    job_dir = rf_traits_job.ml.parent.parent
    lines = (traits["manifest"] / "test" / "test.manifest").read_text().splitlines()
    entry = next(e for e in map(json.loads, lines) if sorted(e["class"]) == [0, 1])  # a 2
    image = (traits["manifest"] / "test" / entry["source-ref"]).read_bytes()
    with running_server(job_dir) as server:
        url = f"{server.url}/invocations"
        headers = {"Content-Type": "image/png"}
        [answer] = client.post(url, content=image, headers=headers).json()["predictions"]
        assert set(answer["probabilities"]) == set(TRAITS)
        over = [n for n, p in answer["probabilities"].items() if p >= 0.5]
        assert sorted(answer["labels"]) == sorted(over) and answer["threshold"] == 0.5
        assert set(answer["labels"]) == {"even", "prime"}
        strict = client.post(
            url,
            content=image,
            headers=headers | {"X-Amzn-SageMaker-Custom-Attributes": "threshold=0.999, top_k=1"},
        ).json()["predictions"][0]
        assert strict["threshold"] == 0.999 and len(strict["probabilities"]) == 1
        assert sorted(strict["labels"]) == sorted(
            n for n, p in answer["probabilities"].items() if p >= 0.999
        )
        as_csv = client.post(url, content=image, headers=headers | {"Accept": "text/csv"})
        [row] = list(csv.reader(io.StringIO(as_csv.text)))
        assert row[0::2] == answer["labels"]
        np.testing.assert_allclose(
            [float(p) for p in row[1::2]], [answer["probabilities"][n] for n in answer["labels"]]
        )
        refused = client.post(
            url,
            content=image,
            headers=headers | {"X-Amzn-SageMaker-Custom-Attributes": "threshold=1.5"},
        )
        assert refused.status_code == 400
        assert "threshold='1.5'; use a probability from 0 to 1" in refused.json()["error"]


def test_rf_adds_trees_to_the_earlier_forests(
    rf_traits_job: JobResult, traits: dict[str, Path], train_job: TrainJob
) -> None:
    """Incremental rf: each label's forest keeps its 40 trees and grows 40 on new data."""
    manifests = traits["manifest"]
    job = train_job(
        "rf",
        {"model": rf_traits_job.ml / "model"},
        {"image_size": "16", "multi_label": "true", "n_estimators": "40"},
        manifests={"train": manifests / "validation" / "validation.manifest"},
        attribute_names=("source-ref", "class", "class-metadata"),
    )
    assert job.returncode == 0, job.output[-3000:]
    assert "Added 40 trees to the model channel's forest: 240 trees in all." in job.output
    assert job.metadata["parent"]["class_names"] == TRAITS


def test_a_model_of_another_algorithm_fails_the_job_with_both_names(
    rf_traits_job: JobResult,
    traits: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channels = {"train": traits["lst"] / "test", "model": rf_traits_job.ml / "model"}
    hps = {"algorithm": "svm", "image_size": "16", "multi_label": "true"}
    job = lay_out_job(tmp_path / "job", channels, hps)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(job.base_dir))
    assert train.main([f"--{k}={v}" for k, v in hps.items()]) == 2
    assert "holds a rf model and this job trains svm" in job.failure_file.read_text()
