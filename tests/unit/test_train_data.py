"""inputs.load_data: the channels of a job -> this worker's datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from smvision.core import contract
from smvision.data.dataset import DataError
from smvision.schema import hyperparameters
from smvision.training import distributed
from smvision.training.inputs import load_data


def _job_with_train(tmp_path: Path, digits: Path, per_class: int) -> contract.Contract:
    job = contract.load({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    for label in ("0", "1"):
        folder = job.channel_dir("train") / label
        folder.mkdir(parents=True)
        for path in sorted((digits / "test" / label).glob("*.png"))[:per_class]:
            (folder / path.name).write_bytes(path.read_bytes())
    return job


def test_more_workers_than_train_images_is_refused_with_the_counts(
    tmp_path: Path, digits: Path
) -> None:
    job = _job_with_train(tmp_path, digits, per_class=1)
    hp = hyperparameters.parse({"algorithm": "cnn", "image_size": "16"})
    hosts = ("algo-1", "algo-2", "algo-3")
    third = distributed.Cluster(hosts, "algo-3", 2, 3, 8890)
    with pytest.raises(DataError, match=r"Channel 'train' has 2 images for 3 hosts"):
        load_data(job, hp, third)


def test_each_worker_decodes_its_own_shard_and_all_of_validation(
    tmp_path: Path, digits: Path
) -> None:
    job = _job_with_train(tmp_path, digits, per_class=5)
    hp = hyperparameters.parse({"algorithm": "cnn", "image_size": "16"})
    second = distributed.Cluster(("algo-1", "algo-2"), "algo-2", 1, 2, 8890)
    loaded = load_data(job, hp, second)
    assert (len(loaded.train), loaded.train_total, loaded.channels) == (4, 8, 1)
    assert loaded.validation is not None and len(loaded.validation) == 2
    assert loaded.test is None  # only the chief evaluates the test channel


@pytest.mark.parametrize(
    ("features", "size"), [("hog", 32), ("deep", 224), ("hog+deep", 224)], ids=str
)
def test_image_size_auto_gives_deep_features_the_backbones_input(
    tmp_path: Path, digits: Path, features: str, size: int
) -> None:
    """8-pixel digits: 32 (the floor of svm's range) for HOG, 224 once ResNet50 computes
    features, with the reason recorded for metadata.json."""
    job = _job_with_train(tmp_path, digits, per_class=3)
    hp = hyperparameters.parse({"algorithm": "svm", "features": features})
    loaded = load_data(job, hp, distributed.Cluster(("algo-1",), "algo-1", 0, 1, 8890))
    assert loaded.image_size == size and loaded.train.all_images().shape[1] == size
    if "deep" in features:
        assert "features=deep" in loaded.image_size_reason and "224" in loaded.image_size_reason
    else:
        assert "median longer side is 8 px" in loaded.image_size_reason
