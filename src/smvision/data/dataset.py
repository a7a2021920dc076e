"""Channels -> labelled samples -> decoded data sets the algorithms train on.

A channel is listed first (cheap: names, labels and headers; layouts.py reads each
layout), its labels turned into class names (`decode_labels`), then decoded and resized
in parallel with `images.ModelInput`, which `serve` decodes requests with too, so
training sees exactly the pixels serving will. Unreadable images (and records) are
skipped and reported while they stay under the job's limit.

Decoded images live where a `Storage` says (memory.py chooses): in memory, in a cache
file on the training volume read through a memory map, or nowhere (decoded again each
time they are read). A `Dataset` hands them out the same way in every case (`take`,
`chunks`).
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from smvision.core.machine import available_cores
from smvision.data import images, labels
from smvision.data.formats import (
    LAYOUT_HINT,
    LayoutError,
    Sample,
    SampleError,
    check_class_indices,
    describe_values,
    layout_of,
    read_directory,
)
from smvision.data.images import ModelInput
from smvision.data.labels import LabelError, label_text
from smvision.data.recordio import RecordIOError

log = logging.getLogger(__name__)

__all__ = ["DataError", "Dataset", "Sample", "Storage", "list_channel", "load"]

# What makes an image unusable (skipped, and counted against max_corrupt_fraction).
PIXEL_LIMIT_SETTING = "max_image_megapixels"
UNREADABLE = (images.ImageError, OSError, RecordIOError, SampleError)


class DataError(ValueError):
    """A channel the job cannot train on, with the file or value and the fix."""


@dataclass(frozen=True)
class Storage:
    """Where decoded images live: `memory`; `cache`, a file in `directory` read through a
    memory map; or `stream`, decoded again whenever they are read."""

    kind: Literal["memory", "cache", "stream"] = "memory"
    directory: Path | None = None


@dataclass
class Dataset:
    """Images prepared for the model, their labels, and where each came from.

    `images` is the uint8 array (in memory, or a memory map of the cache file), or None
    when the images are decoded from `samples` as they are read. `labels` holds class
    indices, or for a multi-label job a 0/1 matrix with a column per class.
    """

    images: np.ndarray | None
    labels: np.ndarray
    sources: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    samples: Sequence[Sample] = ()
    model_input: ModelInput | None = None
    # The sources among `skipped` that were over the pixel limit, not unreadable.
    too_large: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_memory(self) -> bool:
        return self.images is not None and not isinstance(self.images, np.memmap)

    def take(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """The images of `rows`, uint8 N x size x size x channels, in that order."""
        if self.images is not None:
            return np.asarray(self.images[np.asarray(rows, dtype=np.int64)])
        if self.model_input is None:
            raise RuntimeError("a streamed Dataset needs its model_input")
        model_input = self.model_input
        return np.stack([self.samples[int(row)].read_for(model_input) for row in rows])

    def all_images(self) -> np.ndarray:
        """Every image at once, in memory: for an algorithm that needs them all together
        (a streamed data set may not fit; `chunks` reads it a part at a time)."""
        return self.take(np.arange(len(self)))

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """The images in order, `size` at a time (the last chunk may be smaller)."""
        for start in range(0, len(self), size):
            yield self.take(np.arange(start, min(start + size, len(self))))


# Listing --------------------------------------------------------------------------------


def list_channel(directory: Path, channel: str) -> list[Sample]:
    """Every labelled image in a channel directory, in a stable order; a sample with one
    label value gets it as its class name (`decode_labels` does the rest)."""
    if not directory.is_dir():
        raise DataError(
            f"Channel '{channel}' is missing: expected a directory at {directory}. Give the "
            f"job a '{channel}' input holding {LAYOUT_HINT}."
        )
    layout = layout_of(directory)
    try:
        samples = read_directory(directory, layout)
        if channel == "train" and layout in ("lst", "rec"):  # train defines the classes
            check_class_indices(samples, channel)
    except LayoutError as error:
        raise DataError(str(error)) from None
    if not samples:
        raise DataError(
            f"Channel '{channel}' at {directory} holds no images; it must hold {LAYOUT_HINT}."
        )
    return [with_single_label(sample) for sample in samples]


def with_single_label(sample: Sample) -> Sample:
    if len(sample.values) == 1 and not sample.labels:
        return replace(sample, labels=(label_text(sample.values[0]),))
    return sample


def decode_labels(
    channels: Mapping[str, list[Sample]], multi_label: bool, label_format: str = "auto"
) -> dict[str, list[Sample]]:
    """Every sample's class names. A single-label job needs one label per image; a
    multi-label job reads lists of labels in one format for all channels, the train
    channel's (`labels.resolve_format`; `label_format` auto, multi-hot or class-id)."""
    if not multi_label:
        for channel, samples in channels.items():
            for sample in samples:
                if sample.error is None and len(sample.values) != 1:
                    raise DataError(
                        f"Channel '{channel}': {sample.source} has "
                        f"{len(sample.values)} labels ({describe_values(sample.values)}), and "
                        "this job is single-label (one class per image); set "
                        "multi_label=true to train on sets of labels."
                    )
        return dict(channels)
    rows = [s.values for s in channels.get("train", []) if s.error is None]
    multi_hot = labels.resolve_format(label_format, rows)
    log.info(
        "Multi-label: lists of labels read as %s (label_format=%s).",
        "multi-hot (a 0/1 per class)" if multi_hot else "class ids",
        label_format,
    )
    decoded = {}
    for channel, samples in channels.items():
        try:
            decoded[channel] = [
                replace(s, labels=labels.decode(s.values, multi_hot, _where(channel, s)))
                if s.error is None
                else s
                for s in samples
            ]
        except LabelError as error:
            raise DataError(str(error)) from None
    return decoded


def _where(channel: str, sample: Sample) -> str:
    return f"Channel '{channel}', {sample.source}"


def class_names_of(
    samples: Sequence[Sample], channel: str = "train", multi_label: bool = False
) -> list[str]:
    """Class names in index order: numeric order when every label is a number."""
    names = sorted({name for s in samples for name in s.labels}, key=_natural_key)
    if multi_label and not names:
        raise DataError(
            f"Channel '{channel}' has no labels at all; a multi-label model needs images "
            "labelled with at least one class."
        )
    if not multi_label and len(names) < 2:
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
    unknown = sorted({n for s in samples for n in s.labels} - set(class_names), key=_natural_key)
    if unknown:
        raise DataError(
            f"Channel '{channel}' has classes {unknown} that the train channel lacks "
            f"(train has {list(class_names)}); every class must appear in train."
        )


def stratified_split(
    samples: Sequence[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Hold out `fraction` of each class (at least one image stays in train per class);
    a multi-label image counts under its rarest label."""
    rng = np.random.default_rng(seed)
    train: list[Sample] = []
    held_out: list[Sample] = []
    by_stratum: dict[str, list[Sample]] = {}
    for sample, stratum in zip(samples, _strata(samples)):
        by_stratum.setdefault(stratum, []).append(sample)
    for stratum in sorted(by_stratum, key=_natural_key):
        members = by_stratum[stratum]
        order = rng.permutation(len(members))
        count = min(int(round(len(members) * fraction)), len(members) - 1)
        held_out.extend(members[i] for i in order[:count])
        train.extend(members[i] for i in order[count:])
    return train, held_out


def _strata(samples: Sequence[Sample]) -> list[str]:
    counts = Counter(name for s in samples for name in s.labels)
    return [min(s.labels, key=lambda n: (counts[n], n)) if s.labels else "" for s in samples]


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
        except UNREADABLE:  # load() skips them and names them
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
        except UNREADABLE:  # load() skips them and names them
            continue
    return int(statistics.median_low(sides)) if sides else None


def label_array(
    samples: Sequence[Sample], class_names: Sequence[str], multi_label: bool
) -> np.ndarray:
    """Class indices (int32), or for multi-label a 0/1 matrix (uint8) with a column per class."""
    index_of = {name: i for i, name in enumerate(class_names)}
    if not multi_label:
        return np.array([index_of[s.label] for s in samples], dtype=np.int32)
    matrix = np.zeros((len(samples), len(class_names)), dtype=np.uint8)
    for row, sample in enumerate(samples):
        matrix[row, [index_of[name] for name in sample.labels]] = 1
    return matrix


# Decoding -------------------------------------------------------------------------------


def load(
    samples: Sequence[Sample],
    class_names: Sequence[str],
    size: int,
    channels: int,
    channel: str,
    max_corrupt_fraction: float | None,
    workers: int | None = None,
    scaled_jpeg: bool = False,
    multi_label: bool = False,
    storage: Storage = Storage(),
    max_pixels: int = images.MAX_PIXELS,
) -> Dataset:
    """Decode and prepare every sample in parallel, into `storage`; skip unreadable ones
    within the limit.

    With `max_corrupt_fraction` None the caller checks `skipped` itself (a channel split
    in two is judged as one channel). `scaled_jpeg` and `max_pixels` (the hyperparameter
    max_image_megapixels): see `images.ModelInput`. A streamed data set is decoded once here
    all the same, to find the unusable images before training starts.
    """
    model_input = images.ModelInput(size, channels, scaled_jpeg, max_pixels, PIXEL_LIMIT_SETTING)
    shape = (size, size, channels)
    target: np.ndarray | None = None
    if storage.kind == "memory":
        target = np.empty((len(samples), *shape), dtype=np.uint8)
    elif storage.kind == "cache":
        target = _cache_file(storage, channel, (len(samples), *shape))
    errors: list[Exception | None] = [None] * len(samples)

    def work(i: int) -> None:
        try:
            image = samples[i].read_for(model_input)
        except UNREADABLE as error:
            errors[i] = error
            return
        if target is not None:
            target[i] = image

    _parallel(work, len(samples), workers)
    skipped = [(s.source, str(e)) for s, e in zip(samples, errors) if e is not None]
    too_large = [
        s.source for s, e in zip(samples, errors) if isinstance(e, images.ImageTooLargeError)
    ]
    if max_corrupt_fraction is not None:
        check_corrupt(skipped, len(samples), channel, max_corrupt_fraction, too_large)
    keep = [i for i, error in enumerate(errors) if error is None]
    kept = [samples[i] for i in keep]
    if target is not None and len(keep) < len(samples):
        target = _compact(target, keep)
    return Dataset(
        target,
        label_array(kept, class_names, multi_label),
        [s.source for s in kept],
        skipped,
        kept if storage.kind == "stream" else (),
        model_input,
        too_large,
    )


def _cache_file(storage: Storage, channel: str, shape: tuple[int, ...]) -> np.ndarray:
    if storage.directory is None:
        raise ValueError("a cache Storage needs its directory")
    storage.directory.mkdir(parents=True, exist_ok=True)
    path = storage.directory / f"{channel}-{'x'.join(map(str, shape))}.u8"
    log.info("Decoding channel '%s' into the cache file %s.", channel, path)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def _compact(target: np.ndarray, keep: list[int]) -> np.ndarray:
    """The kept rows moved to the front, in order (in place: a cache file stays one file)."""
    for row, source in enumerate(keep):
        if row != source:
            target[row] = target[source]
    return target[: len(keep)]


def check_corrupt(
    skipped: list[tuple[str, str]],
    total: int,
    channel: str,
    max_fraction: float,
    too_large: Collection[str] = (),
) -> None:
    """Log skipped files; fail, naming them, when they exceed the channel's allowance.
    `too_large`: the sources among them over the pixel limit, whose sentence names the limit
    and the setting that raises it."""
    if not skipped:
        return
    for source, reason in skipped:
        if source in too_large:
            log.warning("Skipping an image of channel '%s': %s", channel, reason)
        else:
            log.warning("Skipping unreadable image in channel '%s': %s", channel, reason)
    fraction = len(skipped) / total
    count = len(skipped)
    if not too_large:
        what, found = (
            "unreadable images",
            f"Channel '{channel}' has {count} unreadable images of {total}",
        )
    elif len(too_large) == count:
        what = "images over the pixel limit"
        found = f"Channel '{channel}' has {count} images over the pixel limit among its {total}"
    else:
        what = "unreadable or too large images"
        found = f"Channel '{channel}' has {count} unreadable or too large images of {total}"
    if fraction > max_fraction or count == total:
        listed = ", ".join(source for source, _ in skipped[:10])
        more = f" and {count - 10} more" if count > 10 else ""
        first_too_large = next((reason for s, reason in skipped if s in too_large), "")
        raise DataError(
            f"{found} ({fraction:.1%}, over the max_corrupt_fraction limit of {max_fraction:.1%}): "
            f"{listed}{more}. {first_too_large + ' ' if first_too_large else ''}Remove or "
            "re-export them, or raise max_corrupt_fraction."
        )
    log.warning(
        "Channel '%s': skipped %d %s of %d (%.2f%%), within max_corrupt_fraction.",
        channel,
        count,
        what,
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
