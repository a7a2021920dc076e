"""data.py: the three channel layouts, splits, shards and unreadable files."""

from pathlib import Path

import numpy as np
import pytest

from smvision.data import dataset, images
from smvision.data.dataset import DataError
from smvision.local.samples import digits_images
from tests.support.photos import encode, photo


def test_class_folders_in_natural_order(digits: Path) -> None:
    samples = dataset.list_channel(digits / "train", "train")
    assert len(samples) == 1078
    assert dataset.class_names_of(samples) == [str(d) for d in range(10)]
    assert samples[0].source.startswith("0/")


def test_lst_files_beside_the_images(digits: Path, tmp_path: Path) -> None:
    folder = tmp_path / "lst"
    (folder / "images").mkdir(parents=True)
    lines = []
    for index, path in enumerate(sorted((digits / "test").rglob("*.png"))[:40]):
        target = folder / "images" / path.name
        target.write_bytes(path.read_bytes())
        lines.append(f"{index}\t{float(path.parent.name):.6f}\timages/{path.name}")
    (folder / "test.lst").write_text("\n".join(lines) + "\n")
    samples = dataset.list_channel(folder, "test")
    assert len(samples) == 40 and samples[0].label == "0"
    loaded = dataset.load(samples, [str(d) for d in range(10)], 16, 1, "test", 0.0)
    assert loaded.all_images().shape == (40, 16, 16, 1)


def test_bad_lst_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "x.lst").write_text("0\tcat\tcat.png\n")
    with pytest.raises(DataError, match=r"x.lst, line 1: label 'cat' is not a number"):
        dataset.list_channel(tmp_path, "train")


def _lst_channel(root: Path, digits: Path, listed: str) -> Path:
    """A .lst channel of two real digits plus one line that lists `listed`."""
    channel = root / "channel"
    channel.mkdir()
    lines = []
    for index, path in enumerate(sorted((digits / "test").rglob("*.png"))[:2]):
        (channel / path.name).write_bytes(path.read_bytes())
        lines.append(f"{index}\t{path.parent.name}\t{path.name}")
    lines.append(f"2\t1\t{listed}")
    (channel / "train.lst").write_text("\n".join(lines) + "\n")
    return channel


@pytest.mark.parametrize("escape", ["parent", "absolute"])
def test_lst_paths_that_leave_the_channel_are_refused(
    digits: Path, tmp_path: Path, escape: str
) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(next((digits / "test").rglob("*.png")).read_bytes())
    listed = "../outside.png" if escape == "parent" else str(outside)
    channel = _lst_channel(tmp_path, digits, listed)
    with pytest.raises(DataError) as refused:
        dataset.list_channel(channel, "train")
    message = str(refused.value)
    assert f"{channel / 'train.lst'}, line 3: path {listed!r}" in message
    assert "relative to the .lst file and inside the channel" in message


def test_a_missing_lst_file_is_an_unreadable_image_not_a_crash(
    digits: Path, tmp_path: Path
) -> None:
    samples = dataset.list_channel(_lst_channel(tmp_path, digits, "gone.png"), "train")
    assert dataset.all_grey(samples)  # the probe skips what it cannot read, as load() does
    loaded = dataset.load(samples, ["0", "1"], 16, 1, "train", max_corrupt_fraction=0.5)
    assert len(loaded) == 2
    assert loaded.skipped[0][0] == "gone.png" and "No such file" in loaded.skipped[0][1]


def test_npz_arrays_with_class_names(tmp_path: Path) -> None:
    pixels, labels = digits_images()
    np.savez(
        tmp_path / "digits.npz",
        x=pixels[:100],
        y=labels[:100],
        class_names=np.array([f"digit-{d}" for d in range(10)]),
    )
    samples = dataset.list_channel(tmp_path, "train")
    assert samples[3].source == "digits.npz#3"
    assert samples[3].label == f"digit-{labels[3]}"
    names = dataset.class_names_of(samples)
    loaded = dataset.load(samples, names, 8, 1, "train", 0.0)
    np.testing.assert_array_equal(loaded.all_images()[:, :, :, 0], pixels[:100])


def test_npz_without_y_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match="it needs 'x'"):
        dataset.list_channel(tmp_path, "train")


def test_empty_and_missing_channels(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Channel 'train' is missing"):
        dataset.list_channel(tmp_path / "nope", "train")
    (tmp_path / "cats").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        dataset.list_channel(tmp_path, "train")


def test_a_single_class_is_refused(digits: Path) -> None:
    samples = [s for s in dataset.list_channel(digits / "train", "train") if s.label == "3"]
    with pytest.raises(DataError, match=r"single class \('3'\)"):
        dataset.class_names_of(samples)


def test_stratified_split_keeps_every_class_in_train(digits: Path) -> None:
    samples = dataset.list_channel(digits / "train", "train")
    train, held = dataset.stratified_split(samples, 0.2, seed=1)
    assert len(held) == pytest.approx(0.2 * len(samples), abs=10)
    for label in map(str, range(10)):
        share = sum(s.label == label for s in held) / sum(s.label == label for s in samples)
        assert share == pytest.approx(0.2, abs=0.03)
    assert {s.source for s in train}.isdisjoint({s.source for s in held})
    assert dataset.stratified_split(samples, 0.2, seed=1)[1] == held


def test_shards_are_disjoint_and_balanced(digits: Path) -> None:
    samples = dataset.list_channel(digits / "train", "train")
    first, second = dataset.shard(samples, 0, 2), dataset.shard(samples, 1, 2)
    assert len(first) + len(second) == len(samples)
    assert {s.source for s in first}.isdisjoint({s.source for s in second})
    for label in map(str, range(10)):
        assert (
            abs(sum(s.label == label for s in first) - sum(s.label == label for s in second)) <= 1
        )


def _channel_with_broken_files(root: Path, good: int, broken: int) -> list[dataset.Sample]:
    for name, image in (("cat", photo("chelsea")), ("cup", photo("coffee"))):
        folder = root / name
        folder.mkdir(parents=True)
        png = encode(image, ".png")
        for i in range(good):
            (folder / f"{i}.png").write_bytes(png)
    for i in range(broken):
        (root / "cat" / f"broken-{i}.png").write_bytes(png[: len(png) // 3])
    return dataset.list_channel(root, "train")


def test_unreadable_files_under_the_limit_are_skipped_and_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    samples = _channel_with_broken_files(tmp_path, good=60, broken=1)
    loaded = dataset.load(samples, ["cat", "cup"], 32, 3, "train", 0.01)
    assert len(loaded) == 120 and loaded.skipped[0][0] == "cat/broken-0.png"
    assert "cat/broken-0.png" in caplog.text


def test_unreadable_files_over_the_limit_fail_and_are_named(tmp_path: Path) -> None:
    samples = _channel_with_broken_files(tmp_path, good=20, broken=2)
    with pytest.raises(
        DataError,
        match=r"2 unreadable images of 42 .*cat/broken-0.png, cat/broken-1.png.*max_corrupt_",
    ):
        dataset.load(samples, ["cat", "cup"], 32, 3, "train", 0.01)


def test_greyscale_detection_reads_headers(digits: Path, tmp_path: Path) -> None:
    assert dataset.all_grey(dataset.list_channel(digits / "test", "test"))
    assert not dataset.all_grey(_channel_with_broken_files(tmp_path, good=2, broken=0))


@pytest.mark.parametrize("scaled_jpeg", [True, False])
def test_channels_decode_through_the_model_input(tmp_path: Path, scaled_jpeg: bool) -> None:
    for name, image in (("cat", photo("chelsea")), ("cup", photo("coffee"))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "photo.jpg").write_bytes(encode(image, ".jpg"))
    samples = dataset.list_channel(tmp_path, "train")
    loaded = dataset.load(samples, ["cat", "cup"], 32, 3, "train", 0.0, scaled_jpeg=scaled_jpeg)
    model_input = images.ModelInput(32, 3, scaled_jpeg)
    for row, sample in enumerate(samples):
        assert sample.path is not None
        np.testing.assert_array_equal(
            loaded.all_images()[row], model_input.from_file(sample.path.read_bytes())
        )
