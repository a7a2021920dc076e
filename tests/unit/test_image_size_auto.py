"""image_size auto: the training images' median side, read from headers (real images)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from smvision.data import dataset
from tests.support.photos import encode, grey_photo


def test_median_side_reads_headers_of_files_and_arrays(digits: Path, tmp_path: Path) -> None:
    assert dataset.median_side(dataset.list_channel(digits / "train", "train")) == 8
    photos = tmp_path / "photos" / "camera"
    photos.mkdir(parents=True)
    for index, (width, height) in enumerate([(90, 40), (50, 70), (120, 30)]):
        resized = cv2.resize(grey_photo("camera"), (width, height), interpolation=cv2.INTER_AREA)
        (photos / f"{index}.jpg").write_bytes(encode(resized, ".jpg"))
    assert dataset.median_side(dataset.list_channel(tmp_path / "photos", "train")) == 90
    np.savez(tmp_path / "arrays.npz", x=np.zeros((5, 20, 30, 3), np.uint8), y=np.arange(5) % 2)
    (tmp_path / "npz").mkdir()
    (tmp_path / "arrays.npz").rename(tmp_path / "npz" / "arrays.npz")
    assert dataset.median_side(dataset.list_channel(tmp_path / "npz", "train")) == 30


def test_median_side_skips_unreadable_files(tmp_path: Path, digits: Path) -> None:
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    for file in sorted((digits / "train" / "3").iterdir())[:3]:
        (folder / file.name).write_bytes(file.read_bytes())
    (folder / "broken.png").write_bytes(b"not an image")
    samples = dataset.list_channel(tmp_path / "train", "train")
    assert len(samples) == 4 and dataset.median_side(samples) == 8
    assert dataset.median_side([s for s in samples if s.source.endswith("broken.png")]) is None
