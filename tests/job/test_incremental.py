"""Incremental training: a `model` channel with an earlier model.tar.gz (or its files).

cnn continues from the earlier weights and improves on new data (streaming its images);
the checks that refuse a model that cannot continue name both sides; svm refits and says
so. rf's warm start is in test_multi_label.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest

from smvision.data import images
from smvision.data.dataset import Dataset
from smvision.local.samples import digits_images
from smvision.model.parent import ParentModel, ParentModelError, check_parent
from smvision.schema import hyperparameters
from smvision.training import distributed
from smvision.training.main import JobRun
from tests.support.training_jobs import TrainJob


def model_archive(model_dir: Path, archive: Path) -> Path:
    """model.tar.gz as a SageMaker job writes it: the model directory's files at its root."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


@pytest.mark.slow
def test_cnn_continues_an_earlier_model_and_improves_on_new_data(
    train_job: TrainJob, digits: Path, tmp_path: Path
) -> None:
    """The earlier model saw 10 images of each digit for two epochs; it continues on the
    validation split, images it never saw, decoded as read (data_memory_mb=0 without the
    cache), and tells the digits of the test split apart better than before."""
    few = tmp_path / "few"
    for label_dir in sorted((digits / "train").iterdir()):
        (few / label_dir.name).mkdir(parents=True)
        for path in sorted(label_dir.glob("*.png"))[:10]:
            (few / label_dir.name / path.name).write_bytes(path.read_bytes())
    cnn = {"image_size": "16", "augment": "false", "validation_fraction": "0", "batch_size": "32"}
    earlier = train_job("cnn", {"train": few, "test": digits / "test"}, cnn | {"epochs": "2"})
    assert earlier.returncode == 0, earlier.output[-3000:]
    archive = model_archive(earlier.ml / "model", tmp_path / "model.tar.gz")
    job = train_job(
        "cnn",
        {"train": digits / "validation", "test": digits / "test", "model": archive},
        cnn | {"epochs": "3", "data_memory_mb": "0", "decoded_cache": "false"},
    )
    assert job.returncode == 0, job.output[-3000:]
    assert "decoded again each time they are read" in job.output
    assert "Starting from the model channel's weights (" in job.output
    parent = job.metadata["parent"]
    assert parent["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert parent["head"] == "kept" and parent["train_images"] == 100
    assert parent["metrics"]["test:accuracy"] == earlier.evaluation["test"]["accuracy"]
    before, after = earlier.evaluation["test"]["accuracy"], job.evaluation["test"]["accuracy"]
    assert after > before + 0.1, (before, after)
    # From the earlier weights, not from scratch: the first epoch starts where it ended.
    assert job.metrics()["train:loss"][0] < earlier.metrics()["train:loss"][0]


def _parent(**metadata: object) -> ParentModel:
    base = {
        "algorithm": "cnn",
        "image_size": 16,
        "channels": 1,
        "class_names": ["0", "1"],
        "multi_label": False,
    }
    return ParentModel(Path("/nowhere"), base | metadata, "ab" * 32)


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        ({"algorithm": "rf"}, "holds a rf model and this job trains cnn"),
        (
            {"image_size": 32},
            "takes 32x32 images and this job's image_size is 16; set image_size=32",
        ),
        ({"channels": 3}, "images of 3 channel(s) and this job's have 1; set grayscale=false"),
        (
            {"class_names": ["0", "1", "2"]},
            'knows the classes ["0", "1", "2"] and this job\'s train channel has ["0", "1"]',
        ),
        ({"multi_label": True}, "is multi-label and this job is single-label"),
    ],
)
def test_a_model_that_cannot_continue_is_refused_naming_both_sides(
    change: dict[str, object], sentence: str
) -> None:
    with pytest.raises(ParentModelError) as refused:
        check_parent(_parent(**change), "cnn", 16, 1, ["0", "1"], False, new_head_allowed=False)
    assert sentence in str(refused.value)


def test_reinitialize_top_layer_gives_other_classes_a_new_head() -> None:
    parent = _parent(class_names=["0", "1", "2"])
    assert check_parent(parent, "cnn", 16, 1, ["0", "1"], False, True).keeps_head is False
    assert check_parent(_parent(), "cnn", 16, 1, ["0", "1"], False, True).keeps_head is True


class Messages(JobRun):
    said: list[str]

    def info(self, message: str) -> None:
        self.said.append(message)


def test_svm_refits_and_says_so(tmp_path: Path) -> None:
    from smvision.algorithms.svm import SVMAlgorithm

    pixels, labels = digits_images()
    prepared = np.stack([images.prepare(p[:, :, None], 16, 1) for p in pixels[:200]])
    train = Dataset(prepared, labels[:200].astype("int32"), ["x"] * 200)
    hp = hyperparameters.parse({"algorithm": "svm", "image_size": "16"})
    run = Messages(
        tmp_path,
        distributed.Cluster(("algo-1",), "algo-1", 0, 1, 0),
        200,
        None,
        _parent(algorithm="svm"),
    )
    run.said = []
    SVMAlgorithm(16, 1, 10).fit(train, None, hp, run)
    assert any("svm cannot add to a fitted model: it refits" in m for m in run.said)
