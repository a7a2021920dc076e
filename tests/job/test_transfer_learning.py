"""Transfer learning with the genuine ImageNet weights, on real photos (LFW faces and
non-faces, scikit-image): resnet50's cached phases, and its compiled runtime.

Few images (16 to train, 8 to validate) and few epochs: ResNet50 costs about 0.1 s per
224-pixel image per core. What is asserted holds for every run: the head and the
fine-tuned layers trained on the frozen layers' cached output equal, within float
round-off, what training on the images computes; the compiled model's probabilities
equal Keras's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from smvision.data import dataset
from smvision.local.samples import export, faces_set
from smvision.schema import hyperparameters
from smvision.training import distributed
from smvision.training.main import JobRun

pytestmark = pytest.mark.slow

SIZE = 224
PER_CLASS = {"train": 8, "validation": 4}
# Plain SGD: Adam divides by the gradient's running size, so gradients that are zero but
# for round-off would step as far as real ones and the two runs could not be compared.
HPS = {
    "algorithm": "resnet50",
    "epochs": "2",
    "fine_tune_epochs": "1",
    "batch_size": "8",
    "augment": "false",
    "dropout": "0",
    "optimizer": "sgd",
    "learning_rate": "0.01",
    "fine_tune_learning_rate": "0.001",
    "early_stopping_patience": "0",
}


@dataclass(frozen=True)
class Faces:
    train: dataset.Dataset
    validation: dataset.Dataset
    class_names: list[str]


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Faces:
    """The first images of each class of the faces' train and validation splits, at 224."""
    root = tmp_path_factory.mktemp("faces")
    export(faces_set(), root)
    names = ["face", "nonface"]
    splits = {}
    for split, count in PER_CLASS.items():
        samples = dataset.list_channel(root / split, split)
        chosen = [s for name in names for s in [s for s in samples if s.labels == (name,)][:count]]
        splits[split] = dataset.load(chosen, names, SIZE, 3, split, 0.0)
    return Faces(splits["train"], splits["validation"], names)


@pytest.fixture(scope="module")
def pretrained(imagenet_notop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    channel = tmp_path_factory.mktemp("pretrained")
    (channel / imagenet_notop.name).symlink_to(imagenet_notop)
    return channel


@dataclass
class Fitted:
    algorithm: Any
    history: dict[str, list[float]]
    checkpoints: Path
    log: list[str]


def fit(faces: Faces, pretrained: Path, directory: Path, **values: str) -> Fitted:
    from smvision.algorithms.resnet50 import ResNet50Algorithm

    hp = hyperparameters.parse(HPS | values, strict=True)
    cluster = distributed.Cluster(("algo-1",), "algo-1", 0, 1, 0)
    run = LoggedRun(directory / "checkpoints", cluster, len(faces.train), pretrained)
    algorithm = ResNet50Algorithm(SIZE, 3, len(faces.class_names))
    history = algorithm.fit(faces.train, faces.validation, hp, run)
    return Fitted(algorithm, history, directory / "checkpoints", run.lines)


@dataclass
class LoggedRun(JobRun):
    """The job's run context, keeping its log lines."""

    lines: list[str] = field(default_factory=list)

    def info(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture(scope="module")
def fitted(
    faces: Faces, pretrained: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Fitted]]:
    root = tmp_path_factory.mktemp("fits")
    yield {
        cached: fit(faces, pretrained, root / cached, frozen_cache=cached)
        for cached in ("true", "false")
    }


def last_epoch_weights(checkpoints: Path) -> dict[str, np.ndarray]:
    (path,) = checkpoints.glob("epoch-*.weights.h5")
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as stream:
        stream.visititems(
            lambda name, item: (
                found.__setitem__(name, np.asarray(item))
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return found


def test_phases_on_the_cached_frozen_output_train_what_the_images_would(
    fitted: dict[str, Fitted],
) -> None:
    cached, images = fitted["true"], fitted["false"]
    assert any("Ran ResNet50's frozen layers once over 16 train images" in m for m in cached.log)
    assert any("fine-tuning on conv4_block6_out's" in m for m in cached.log)
    assert not any("frozen layers once" in m for m in images.log)
    for name in ("train:loss", "validation:loss", "validation:accuracy"):
        np.testing.assert_allclose(
            cached.history[name], images.history[name], rtol=1e-3, atol=1e-6, err_msg=name
        )
    ours, theirs = last_epoch_weights(cached.checkpoints), last_epoch_weights(images.checkpoints)
    assert ours.keys() == theirs.keys() and len(ours) > 300  # every ResNet50 weight, the head
    for name, values in ours.items():
        np.testing.assert_allclose(values, theirs[name], rtol=1e-3, atol=1e-5, err_msg=name)


def test_the_head_trained_away_from_its_starting_weights(
    fitted: dict[str, Fitted], pretrained: Path, tmp_path: Path
) -> None:
    """So that the equality above is of two trainings, not of two untouched models."""
    import keras

    algorithm = fitted["true"].algorithm
    hp = hyperparameters.parse(HPS, strict=True)
    keras.utils.set_random_seed(hp.integer("seed"))  # as fit seeds it before building
    cluster = distributed.Cluster(("algo-1",), "algo-1", 0, 1, 0)
    run = JobRun(tmp_path, cluster, 16, pretrained)
    start = type(algorithm)(SIZE, 3, 2).build_model(hp, run).layers[-1].get_weights()[0]
    trained = algorithm.model.layers[-1].get_weights()[0]
    assert start.shape == trained.shape == (2048, 2)
    assert np.abs(trained - start).max() > 1e-3


def test_the_compiled_model_answers_as_keras_does(
    fitted: dict[str, Fitted], faces: Faces, tmp_path: Path
) -> None:
    """The conversion serve's child process makes (`python -m smvision.serving.export`),
    run here without the child's time limit: ResNet50 converts in tens of seconds on an
    idle machine, minutes on a busy one. The child itself: test_serve_exported.py."""
    from smvision.model import runtimes
    from smvision.serving.export import compile_saved_model

    algorithm = fitted["true"].algorithm
    algorithm.save(tmp_path)
    (tmp_path / "metadata.json").write_text(
        json.dumps({"algorithm": "resnet50", "image_size": SIZE, "channels": 3})
    )
    fmt = "tflite"  # what serve compiles it to with SMVISION_KERAS_RUNTIME=tflite (the
    assert fmt in runtimes.FORMATS  # other format: tests/server/test_serve_exported.py)
    compile_saved_model(tmp_path, tmp_path / f"model.{fmt}")
    runtime = runtimes.load(tmp_path / f"model.{fmt}", threads=2)
    pixels = faces.validation.all_images()
    expected = algorithm.predict_proba(pixels)
    np.testing.assert_allclose(runtime.predict(pixels), expected, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def faces_channels(tmp_path_factory: pytest.TempPathFactory, pretrained: Path) -> dict[str, Path]:
    """Eight faces and eight non-faces to train on, four of each to test, as PNG folders;
    the pretrained channel."""
    source = tmp_path_factory.mktemp("faces-source")
    export(faces_set(), source)
    root = tmp_path_factory.mktemp("faces-channels")
    for split, count in (("train", 8), ("test", 4)):
        for name in ("face", "nonface"):
            (root / split / name).mkdir(parents=True)
            for path in sorted((source / split / name).iterdir())[:count]:
                (root / split / name / path.name).write_bytes(path.read_bytes())
    return {"train": root / "train", "test": root / "test", "pretrained": pretrained}


def test_svm_on_deep_features_sees_224_pixels_and_serves_on_the_compiled_network(
    faces_channels: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """image_size auto gives deep features the backbone's own input; serve computes them
    with the network compiled at start (SMVISION_KERAS_RUNTIME=tflite; the default runs it
    on TensorFlow), and answers as the Keras network does."""
    from smvision import algorithms
    from smvision.algorithms.classical import ClassicalAlgorithm
    from smvision.data.bodies import decode_request
    from smvision.serving import models
    from smvision.serving.export import compile_saved_model
    from smvision.serving.inference import Predictor
    from tests.support.serving import job_environment
    from tests.support.training_jobs import run_local_train

    job_dir = tmp_path / "job"
    hps = {"features": "deep", "validation_fraction": "0"}
    job = run_local_train("svm", faces_channels, job_dir, hps, env=job_environment(job_dir))
    assert job.returncode == 0, job.output[-4000:]
    model_dir = job_dir / "opt" / "ml" / "model"
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["image_size"] == SIZE and "features=deep" in metadata["image_size_reason"]
    assert metadata["preprocessing"]["backbone"]["weights"] == "pretrained channel"
    # serve's compile, made here without the child's time limit and left in its cache
    monkeypatch.setattr(models, "COMPILE_CACHE", tmp_path / "cache")
    fmt = "tflite"
    cached = tmp_path / "cache" / f"{models._network_digest(model_dir)}.{fmt}"
    cached.parent.mkdir()
    compile_saved_model(model_dir, cached)
    served = Predictor.load(model_dir, keras_runtime=fmt)
    assert isinstance(served.algorithm, ClassicalAlgorithm)
    assert served.algorithm.compiled_backbone is not None and served.algorithm.backbone is None
    keras_network = algorithms.get("svm").load(model_dir)  # its Keras network, offline
    files = sorted((faces_channels["test"]).rglob("*.png"))
    decoded = [
        decode_request(path.read_bytes(), "image/png", served.model_input)[0] for path in files
    ]
    np.testing.assert_allclose(
        served.algorithm.predict_proba(decoded),
        keras_network.predict_proba(decoded),
        rtol=0,
        atol=1e-4,
    )
