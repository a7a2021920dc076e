"""Data sets larger than the memory budget: a decoded cache on disk, or decoding as read,
the same pixels either way; features in chunks; a sentence instead of running out of
memory. (cnn trains from both kinds of streamed data in test_incremental.)"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from smvision.algorithms import features
from smvision.algorithms.features import FeatureSettings
from smvision.algorithms.svm import SVMAlgorithm
from smvision.data import dataset, memory_budget
from smvision.data.dataset import DataError, Storage
from smvision.schema import hyperparameters
from smvision.training import distributed
from smvision.training.main import JobRun
from tests.support.photos import encode, photo


def photo_channel(root: Path, broken: int = 0) -> list[dataset.Sample]:
    """Crops of two real photographs as JPEG class folders, `broken` of them truncated."""
    for name in ("chelsea", "coffee"):
        (root / name).mkdir(parents=True)
        picture = photo(name)
        for i in range(40):
            crop = picture[i * 4 : i * 4 + 120, i * 5 : i * 5 + 160]
            (root / name / f"{i:02d}.jpg").write_bytes(encode(crop, ".jpg"))
    for i in range(broken):
        jpeg = (root / "chelsea" / f"{i:02d}.jpg").read_bytes()
        (root / "chelsea" / f"{i:02d}.jpg").write_bytes(jpeg[: len(jpeg) // 4])
    return dataset.list_channel(root, "train")


@pytest.mark.parametrize("kind", ["cache", "stream"])
def test_streamed_images_are_the_pixels_held_in_memory(
    tmp_path: Path, kind: Literal["cache", "stream"]
) -> None:
    samples = photo_channel(tmp_path / "photos", broken=2)
    in_memory = dataset.load(samples, ["chelsea", "coffee"], 32, 3, "train", 0.1)
    streamed = dataset.load(
        samples,
        ["chelsea", "coffee"],
        32,
        3,
        "train",
        0.1,
        storage=Storage(kind, tmp_path / "cache"),
    )
    assert len(streamed) == len(in_memory) == 78
    assert [s for s, _ in streamed.skipped] == ["chelsea/00.jpg", "chelsea/01.jpg"]
    assert streamed.in_memory is False
    if kind == "cache":
        assert isinstance(streamed.images, np.memmap)
        assert list((tmp_path / "cache").glob("train-*.u8")), "the cache file"
    else:
        assert streamed.images is None
    np.testing.assert_array_equal(streamed.all_images(), in_memory.all_images())
    rows = np.array([5, 70, 0])
    np.testing.assert_array_equal(streamed.take(rows), in_memory.take(rows))
    chunks = list(streamed.chunks(32))
    assert [len(c) for c in chunks] == [32, 32, 14]
    np.testing.assert_array_equal(streamed.labels, in_memory.labels)


def test_the_budget_chooses_memory_then_the_cache_then_decoding_as_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert memory_budget.plan_storage(100, 100, True, tmp_path).kind == "memory"
    assert memory_budget.plan_storage(101, 100, True, tmp_path) == Storage(
        "cache", tmp_path / "decoded"
    )
    assert memory_budget.plan_storage(101, 100, False, tmp_path).kind == "stream"
    with caplog.at_level(logging.WARNING):
        beyond_the_disk = memory_budget.plan_storage(1 << 62, 100, True, tmp_path)
    assert beyond_the_disk.kind == "stream"
    assert "too little for the decoded-image cache" in caplog.text


def test_auto_budget_is_half_of_what_the_machine_has_free() -> None:
    available = memory_budget.available_bytes()
    assert 0 < memory_budget.budget_bytes("auto") <= available // 2 + 1
    assert memory_budget.budget_bytes(1.5) == int(1.5 * memory_budget.MB)


def _svm_run(tmp_path: Path, budget: int) -> JobRun:
    cluster = distributed.Cluster(("algo-1",), "algo-1", 0, 1, 0)
    return JobRun(tmp_path, cluster, 80, None, None, budget)


def test_svm_extracts_features_a_chunk_at_a_time(tmp_path: Path) -> None:
    samples = photo_channel(tmp_path / "photos")
    streamed = dataset.load(
        samples, ["chelsea", "coffee"], 32, 3, "train", 0.0, storage=Storage("stream")
    )
    svm = SVMAlgorithm(32, 3, 2, FeatureSettings.parse("hog+color"))
    whole = features.extract(streamed.all_images(), "hog+color")
    np.testing.assert_array_equal(
        svm.extract_features(streamed, _svm_run(tmp_path, 1 << 30)), whole
    )


def test_features_that_cannot_fit_fail_with_a_sentence(tmp_path: Path) -> None:
    samples = photo_channel(tmp_path / "photos")
    streamed = dataset.load(
        samples, ["chelsea", "coffee"], 64, 3, "train", 0.0, storage=Storage("stream")
    )
    hp = hyperparameters.parse({"algorithm": "svm", "image_size": "64"})
    with pytest.raises(DataError) as refused:
        SVMAlgorithm(64, 3, 2).fit(streamed, None, hp, _svm_run(tmp_path, 100_000))
    message = str(refused.value)
    assert "The 1764 'hog' features of 80 images take 0.5 MB" in message
    assert "over the memory budget of 0.1 MB (data_memory_mb" in message
    assert "train cnn, which streams its images from disk" in message
