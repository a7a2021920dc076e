"""Channel readers: class folders, .lst files and .npz arrays -> labelled uint8 arrays.

A channel is listed first (cheap: names, labels and image headers), then decoded and
resized in parallel with `images.ModelInput`, which `serve` decodes requests with too, so
training sees exactly the pixels serving will. Unreadable files are skipped and reported
while they stay under the job's limit.
"""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smvision import images
from smvision.machine import available_cores

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
_LAYOUT_HINT = (
    "class sub-folders (<channel>/<class>/<image>), .lst files (index<TAB>label<TAB>path) "
    "beside the images, or .npz files with 'x' and 'y' arrays"
)


class DataError(ValueError):
    """A channel the job cannot train on, with the file or value and the fix."""


@dataclass(frozen=True)
class Sample:
    """One labelled image: the file at `path`, or row `array` of the .npz file at `path`."""

    source: str
    label: str
    path: Path
    array: np.ndarray | None = field(default=None, repr=False, compare=False)

    def read(self) -> np.ndarray:
        if self.array is not None:
            return images.from_array(self.array, self.source)
        return images.read_image(str(self.path), self.source)

    def read_for(self, model_input: images.ModelInput) -> np.ndarray:
        """The image as the model's input (a large JPEG decoded at a reduced scale)."""
        if self.array is not None:
            return model_input.from_image(images.from_array(self.array, self.source))
        return model_input.from_file(self.path.read_bytes(), self.source)

    def is_grey(self) -> bool:
        if self.array is not None:
            return self.array.ndim == 2 or self.array.shape[-1] == 1
        return images.probe(self.path.read_bytes(), self.source)[2]

    def longer_side(self) -> int:
        if self.array is not None:
            return int(max(self.array.shape[:2]))
        width, height, _grey = images.probe(self.path.read_bytes(), self.source)
        return max(width, height)


@dataclass
class Dataset:
    """Images prepared for the model, their label indices, and where each came from."""

    images: np.ndarray
    labels: np.ndarray
    sources: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def list_channel(directory: Path, channel: str) -> list[Sample]:
    """Every labelled image in a channel directory, in a stable order."""
    if not directory.is_dir():
        raise DataError(
            f"Channel '{channel}' is missing: expected a directory at {directory}. Give the "
            f"job a '{channel}' input holding {_LAYOUT_HINT}."
        )
    npz_files = sorted(directory.rglob("*.npz"))
    lst_files = sorted(directory.rglob("*.lst"))
    if npz_files:
        samples = [s for f in npz_files for s in _read_npz(f, directory)]
    elif lst_files:
        samples = [s for f in lst_files for s in _read_lst(f, directory)]
    else:
        samples = _read_class_folders(directory)
    if not samples:
        raise DataError(
            f"Channel '{channel}' at {directory} holds no images; it must hold {_LAYOUT_HINT}."
        )
    return samples


def _read_class_folders(directory: Path) -> list[Sample]:
    samples = []
    for class_dir in sorted(p for p in directory.iterdir() if p.is_dir() and not _hidden(p)):
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not _hidden(path):
                source = str(path.relative_to(directory))
                samples.append(Sample(source=source, label=class_dir.name, path=path))
    return samples


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _read_lst(lst_file: Path, directory: Path) -> list[Sample]:
    samples = []
    channel_root = os.path.abspath(directory)
    for number, line in enumerate(lst_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise DataError(
                f"{lst_file}, line {number}: expected index<TAB>label<TAB>relative path, "
                f"got {line!r}."
            )
        try:
            label = _label_text(float(fields[1]))
        except ValueError:
            raise DataError(
                f"{lst_file}, line {number}: label {fields[1]!r} is not a number; .lst labels "
                "are class indices such as 0 or 3.000000."
            ) from None
        source = fields[-1].strip()
        # Judged by name, not by following links: SageMaker copies only the channel.
        path = Path(os.path.abspath(lst_file.parent / source))
        if os.path.commonpath([channel_root, path]) != channel_root:
            raise DataError(
                f"{lst_file}, line {number}: path {source!r} leads outside the channel "
                f"({directory}); paths in a .lst file are relative to the .lst file and inside "
                "the channel, so SageMaker copies the images with it."
            )
        samples.append(Sample(source=source, label=label, path=path))
    return samples


def _label_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _read_npz(npz_file: Path, directory: Path) -> list[Sample]:
    try:
        with np.load(npz_file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise DataError(f"{npz_file} is not a readable .npz file ({error}).") from error
    if "x" not in arrays or "y" not in arrays:
        raise DataError(
            f"{npz_file} holds arrays {sorted(arrays)}; it needs 'x' (N images) and 'y' "
            "(N labels), and may add 'class_names'."
        )
    x, y = arrays["x"], arrays["y"]
    if len(x) != len(y) or y.ndim != 1:
        raise DataError(
            f"{npz_file}: 'x' has {len(x)} images but 'y' has shape {y.shape}; give one "
            "label per image."
        )
    names = arrays.get("class_names")
    relative = npz_file.relative_to(directory)
    samples = []
    for index in range(len(y)):
        value = y[index]
        if names is not None and value.dtype.kind in "iu":
            label = str(names[int(value)])
        elif value.dtype.kind in "iuf":
            label = _label_text(float(value))
        else:
            label = str(value)
        samples.append(
            Sample(source=f"{relative}#{index}", label=label, path=npz_file, array=x[index])
        )
    return samples


def class_names_of(samples: Sequence[Sample], channel: str = "train") -> list[str]:
    """Class names in index order: numeric order when every label is a number."""
    names = sorted({s.label for s in samples}, key=_natural_key)
    if len(names) < 2:
        only = f"'{names[0]}'" if names else "none"
        raise DataError(
            f"Channel '{channel}' has a single class ({only}); a classifier needs at least "
            "two: add a folder (or label) per class."
        )
    return names


def _natural_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def check_known_classes(
    samples: Sequence[Sample], class_names: Sequence[str], channel: str
) -> None:
    unknown = sorted({s.label for s in samples} - set(class_names), key=_natural_key)
    if unknown:
        raise DataError(
            f"Channel '{channel}' has classes {unknown} that the train channel lacks "
            f"(train has {list(class_names)}); every class must appear in train."
        )


def stratified_split(
    samples: Sequence[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Hold out `fraction` of each class (at least one image stays in train per class)."""
    rng = np.random.default_rng(seed)
    train: list[Sample] = []
    held_out: list[Sample] = []
    by_class: dict[str, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample.label, []).append(sample)
    for label in sorted(by_class, key=_natural_key):
        members = by_class[label]
        order = rng.permutation(len(members))
        count = min(int(round(len(members) * fraction)), len(members) - 1)
        held_out.extend(members[i] for i in order[:count])
        train.extend(members[i] for i in order[count:])
    return train, held_out


def shard(samples: Sequence[Sample], index: int, count: int) -> list[Sample]:
    """This worker's share: every count-th image of each class, so shards stay balanced."""
    if count == 1:
        return list(samples)
    ordered = sorted(samples, key=lambda s: (_natural_key(s.label), s.source))
    return ordered[index::count]


def all_grey(samples: Sequence[Sample]) -> bool:
    """Whether every image is greyscale, from headers only; unreadable ones are not counted."""
    for sample in samples:
        try:
            if not sample.is_grey():
                return False
        except (images.ImageError, OSError):  # load() skips them and names them
            continue
    return True


def median_side(samples: Sequence[Sample], limit: int = 256) -> int | None:
    """The median longer side of the images, from the headers of up to `limit` of them
    spread evenly over the list; None when none is readable."""
    step = max(1, len(samples) // limit)
    sides = []
    for sample in list(samples)[::step][:limit]:
        try:
            sides.append(sample.longer_side())
        except (images.ImageError, OSError):  # load() skips them and names them
            continue
    return int(statistics.median_low(sides)) if sides else None


def load(
    samples: Sequence[Sample],
    class_names: Sequence[str],
    size: int,
    channels: int,
    channel: str,
    max_corrupt_fraction: float | None,
    workers: int | None = None,
    scaled_jpeg: bool = False,
) -> Dataset:
    """Decode and prepare every sample in parallel; skip unreadable ones within the limit.

    With `max_corrupt_fraction` None the caller checks `skipped` itself (a channel split
    in two is judged as one channel). `scaled_jpeg`: see `images.ModelInput`.
    """
    model_input = images.ModelInput(size, channels, scaled_jpeg)
    index_of = {name: i for i, name in enumerate(class_names)}
    prepared: list[np.ndarray | None] = [None] * len(samples)
    errors: list[str | None] = [None] * len(samples)

    def work(i: int) -> None:
        try:
            prepared[i] = samples[i].read_for(model_input)
        except (images.ImageError, OSError) as error:
            errors[i] = str(error)

    _parallel(work, len(samples), workers)
    skipped = [(s.source, e) for s, e in zip(samples, errors) if e is not None]
    if max_corrupt_fraction is not None:
        check_corrupt(skipped, len(samples), channel, max_corrupt_fraction)
    kept = [(samples[i], image) for i, image in enumerate(prepared) if image is not None]
    array = np.empty((len(kept), size, size, channels), dtype=np.uint8)
    for row, (_, image) in enumerate(kept):
        array[row] = image
    labels = np.array([index_of[sample.label] for sample, _ in kept], dtype=np.int32)
    return Dataset(array, labels, [sample.source for sample, _ in kept], skipped)


def check_corrupt(
    skipped: list[tuple[str, str]], total: int, channel: str, max_fraction: float
) -> None:
    """Log skipped files; fail, naming them, when they exceed the channel's allowance."""
    if not skipped:
        return
    for _source, reason in skipped:
        log.warning("Skipping unreadable image in channel '%s': %s", channel, reason)
    fraction = len(skipped) / total
    if fraction > max_fraction or len(skipped) == total:
        listed = ", ".join(source for source, _ in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        raise DataError(
            f"Channel '{channel}' has {len(skipped)} unreadable images of {total} "
            f"({fraction:.1%}, over the max_corrupt_fraction limit of {max_fraction:.1%}): "
            f"{listed}{more}. Remove or re-export them, or raise max_corrupt_fraction."
        )
    log.warning(
        "Channel '%s': skipped %d unreadable images of %d (%.2f%%), within max_corrupt_fraction.",
        channel,
        len(skipped),
        total,
        100 * fraction,
    )


def _parallel(work: Callable[[int], None], count: int, workers: int | None) -> None:
    """Run work(i) for every i on a thread pool; OpenCV releases the GIL while decoding."""
    workers = workers or available_cores()
    if workers == 1 or count < 64:
        for i in range(count):
            work(i)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(count), chunksize=32))
