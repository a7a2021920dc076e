""".lst channels a hostile user writes (issue 22, defect 10): labels that are no class index
are refused, duplicate rows are said once and dropped, so no image is both trained on and
held out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from smvision.data import dataset
from smvision.data.dataset import DataError


def lst_channel(digits: Path, folder: Path, per_class: int = 4, extra: Sequence[str] = ()) -> Path:
    """The first `per_class` test scans of each digit beside a train.lst that lists them
    (label = the digit), then the `extra` lines."""
    folder.mkdir(parents=True)
    lines: list[str] = []
    for digit in range(10):
        for path in sorted((digits / "test" / str(digit)).glob("*.png"))[:per_class]:
            (folder / path.name).write_bytes(path.read_bytes())
            lines.append(f"{len(lines)}\t{digit}\t{path.name}")
    (folder / "train.lst").write_text("\n".join([*lines, *extra]) + "\n")
    return folder


def first_scan(digits: Path) -> str:
    return sorted((digits / "test" / "0").glob("*.png"))[0].name


@pytest.mark.parametrize(
    ("label", "why"),
    [
        ("nan", "is not a class index: .lst and .rec labels are whole numbers from 0"),
        ("inf", "is not a class index: .lst and .rec labels are whole numbers from 0"),
        ("-1e30", "is not a class index: .lst and .rec labels are whole numbers from 0"),
        ("-1", "is not a class index: .lst and .rec labels are whole numbers from 0"),
        ("2.5", "is not a class index: .lst and .rec labels are whole numbers from 0"),
    ],
)
def test_lst_labels_that_are_no_class_index_are_refused_by_line(
    label: str, why: str, digits: Path, tmp_path: Path
) -> None:
    channel = lst_channel(digits, tmp_path / "lst", extra=[f"40\t{label}\t{first_scan(digits)}"])
    with pytest.raises(DataError) as refused:
        dataset.list_channel(channel, "train")
    assert str(refused.value).startswith(f"{channel / 'train.lst'}, line 41: label '{label}' {why}")


def test_a_class_index_beyond_the_classes_of_train_is_refused(digits: Path, tmp_path: Path) -> None:
    channel = lst_channel(digits, tmp_path / "lst", extra=["40\t99\textra.png"])
    (channel / "extra.png").write_bytes((channel / first_scan(digits)).read_bytes())
    with pytest.raises(DataError) as refused:
        dataset.list_channel(channel, "train")
    assert str(refused.value) == (
        "Channel 'train' numbers its classes 0 to 9 and 99 (99 labels extra.png): "
        ".lst and .rec labels are class indices 0, 1, 2, ... without gaps, as im2rec writes "
        "them (11 classes here: 0 to 10); correct the label, or renumber the classes."
    )
    # A validation or test channel may hold some of the classes only: train judges them.
    assert len(dataset.list_channel(channel, "validation")) == 41


def test_duplicate_rows_are_said_once_and_dropped_so_no_image_is_in_two_splits(
    digits: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    channel = lst_channel(digits, tmp_path / "lst")
    listed = (channel / "train.lst").read_text().splitlines()
    (channel / "train.lst").write_text("\n".join(listed * 6) + "\n")  # 200 duplicate rows
    with caplog.at_level(logging.WARNING):
        samples = dataset.list_channel(channel, "train")
    assert len(samples) == 40
    [said] = [r.getMessage() for r in caplog.records if "duplicate" in r.getMessage()]
    assert said.startswith(
        f"{channel / 'train.lst'}: 200 rows list an image that an earlier row lists with the "
        "same labels (line 41 repeats line 1"
    )
    train, held_out = dataset.stratified_split(samples, 0.25, seed=0)
    assert not {s.source for s in train} & {s.source for s in held_out}


def test_an_image_listed_with_two_labels_is_refused(digits: Path, tmp_path: Path) -> None:
    channel = lst_channel(digits, tmp_path / "lst", extra=[f"40\t7\t{first_scan(digits)}"])
    with pytest.raises(DataError) as refused:
        dataset.list_channel(channel, "train")
    assert str(refused.value) == (
        f"{channel / 'train.lst'}, line 41 labels {first_scan(digits)} 7, and line 1 labels "
        "it 0: an image has one set of labels; remove one of the two rows."
    )
