"""What a channel directory may hold, read into samples: one per image, with its labels as
the layout wrote them.

- class folders: <channel>/<class>/<image>, the folder name the label;
- .lst files (the built-in's image lists): index<TAB>label(s)<TAB>path, one label column
  or several (multi-label), the path relative to the .lst file;
- .rec files (im2rec's RecordIO): the label, or the packed labels, in each record's header;
- .npz files: 'x' (N images) and 'y' (N labels, or N x classes 0/1 for multi-label), and
  optionally 'class_names'.

Labels stay raw here (`Sample.values`); `data` turns them into class names once it knows
whether the job is multi-label and how lists of labels read (labels.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smvision.data import images, recordio
from smvision.data.labels import label_text
from smvision.data.recordio import RecordIOError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
LAYOUT_HINT = (
    "class sub-folders (<channel>/<class>/<image>), .lst files (index<TAB>label<TAB>path) "
    "beside the images, .rec files (RecordIO, as im2rec writes them), or .npz files with "
    "'x' and 'y' arrays"
)
LabelValue = float | int | str
# Enough of a file for its header: size and colour without reading (or fetching) it all.
HEADER_BYTES = 64 * 1024


class LayoutError(ValueError):
    """A file of a channel that does not follow its layout, with the file, the line or
    record, and the fix."""


class SampleError(ValueError):
    """A sample that cannot be used (a record without a label): skipped like an unreadable
    image."""


@dataclass(frozen=True)
class Sample:
    """One labelled image: the file at `path`, the RecordIO record at byte `offset` of it,
    or row `array` of the .npz file at `path`.

    `values` are the labels as written; `labels` the class names they stand for (a single
    one unless the job is multi-label), filled in by `data`.
    """

    source: str
    path: Path
    values: tuple[LabelValue, ...]
    labels: tuple[str, ...] = ()
    array: np.ndarray | None = field(default=None, repr=False, compare=False)
    offset: int | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        """The class of a single-label sample (its first label; "" for an empty set)."""
        return self.labels[0] if self.labels else ""

    def read_bytes(self) -> bytes:
        """The image file's bytes (a record's image part for RecordIO)."""
        if self.error is not None:
            raise SampleError(f"{self.source}: {self.error}")
        if self.offset is None:
            return self.path.read_bytes()
        payload = recordio.read_record_at(self.path, self.offset)
        return recordio.unpack_image(payload, self.source).image

    def read(self) -> np.ndarray:
        if self.array is not None:
            return images.from_array(self.array, self.source)
        return images.decode_image(self.read_bytes(), self.source)

    def read_for(self, model_input: images.ModelInput) -> np.ndarray:
        """The image as the model's input (a large JPEG decoded at a reduced scale)."""
        if self.array is not None:
            return model_input.from_image(images.from_array(self.array, self.source))
        return model_input.from_file(self.read_bytes(), self.source)

    def is_grey(self) -> bool:
        if self.array is not None:
            return self.array.ndim == 2 or self.array.shape[-1] == 1
        return self.header().grey

    def longer_side(self) -> int:
        if self.array is not None:
            return int(max(self.array.shape[:2]))
        header = self.header()
        return max(header.width, header.height)

    def header(self) -> images.Header:
        """The image's header: a file's first bytes only (FastFile fetches no more). Its
        size is not judged here: decoding judges it (a large JPEG decodes at a reduced scale)."""
        if self.offset is None and self.error is None:
            with self.path.open("rb") as stream:
                head = stream.read(HEADER_BYTES)
            try:
                return images.read_header(head, self.source, max_pixels=None)
            except images.ImageError:  # a header past HEADER_BYTES (a large EXIF block)
                pass
        return images.read_header(self.read_bytes(), self.source, max_pixels=None)


def read_directory(directory: Path) -> list[Sample]:
    """Every sample of a channel directory in its layout, in a stable order."""
    for suffix, reader in ((".npz", read_npz), (".rec", read_rec), (".lst", read_lst)):
        files = sorted(directory.rglob(f"*{suffix}"))
        if files:
            return [sample for path in files for sample in reader(path, directory)]
    return read_class_folders(directory)


def read_class_folders(directory: Path) -> list[Sample]:
    samples = []
    for class_dir in sorted(p for p in directory.iterdir() if p.is_dir() and not _hidden(p)):
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not _hidden(path):
                source = str(path.relative_to(directory))
                samples.append(Sample(source, path, (class_dir.name,)))
    return samples


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def read_lst(lst_file: Path, directory: Path) -> list[Sample]:
    """index<TAB>label[<TAB>label...]<TAB>path lines; the path inside the channel."""
    samples = []
    channel_root = os.path.abspath(directory)
    for number, line in enumerate(lst_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise LayoutError(
                f"{lst_file}, line {number}: expected index<TAB>label<TAB>relative path "
                f"(several label columns for multi-label), got {line!r}."
            )
        values: list[LabelValue] = []
        for column in fields[1:-1]:
            try:
                values.append(float(column))
            except ValueError:
                raise LayoutError(
                    f"{lst_file}, line {number}: label {column!r} is not a number; .lst labels "
                    "are class indices such as 0 or 3.000000."
                ) from None
        source = fields[-1].strip()
        # Judged by name, not by following links: SageMaker copies only the channel.
        path = Path(os.path.abspath(lst_file.parent / source))
        if os.path.commonpath([channel_root, path]) != channel_root:
            raise LayoutError(
                f"{lst_file}, line {number}: path {source!r} leads outside the channel "
                f"({directory}); paths in a .lst file are relative to the .lst file and inside "
                "the channel, so SageMaker copies the images with it."
            )
        samples.append(Sample(source, path, tuple(values)))
    return samples


def read_rec(rec_file: Path, directory: Path) -> list[Sample]:
    """One sample per record of an im2rec `.rec` file; its labels from the header.

    A record whose header cannot be read is kept as a sample that fails to read, counted
    against max_corrupt_fraction like an unreadable image."""
    relative = rec_file.relative_to(directory)
    try:
        offsets = recordio.record_offsets(rec_file)
    except RecordIOError as error:
        raise LayoutError(
            f"{error} Write .rec files with im2rec (or `python -m smvision.local.samples ... "
            "--format rec`), whole."
        ) from None
    samples = []
    with rec_file.open("rb") as stream:
        for index, offset in enumerate(offsets):
            source = f"{relative}#{index}"
            stream.seek(offset)
            try:
                header = recordio.read_image_header(stream, source)
            except RecordIOError as error:
                samples.append(Sample(source, rec_file, (), offset=offset, error=str(error)))
                continue
            samples.append(Sample(source, rec_file, header.labels, offset=offset))
    return samples


def read_npz(npz_file: Path, directory: Path) -> list[Sample]:
    try:
        with np.load(npz_file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise LayoutError(f"{npz_file} is not a readable .npz file ({error}).") from error
    if "x" not in arrays or "y" not in arrays:
        raise LayoutError(
            f"{npz_file} holds arrays {sorted(arrays)}; it needs 'x' (N images) and 'y' "
            "(N labels), and may add 'class_names'."
        )
    x, y = arrays["x"], arrays["y"]
    if len(x) != len(y) or y.ndim not in (1, 2):
        raise LayoutError(
            f"{npz_file}: 'x' has {len(x)} images but 'y' has shape {y.shape}; give one "
            "label per image (or, multi-label, one row of 0/1 per image)."
        )
    names = arrays.get("class_names")
    relative = npz_file.relative_to(directory)
    return [
        Sample(f"{relative}#{index}", npz_file, _npz_values(y[index], names), array=x[index])
        for index in range(len(y))
    ]


def _npz_values(value: np.ndarray, names: np.ndarray | None) -> tuple[LabelValue, ...]:
    if value.ndim == 1:  # a multi-hot row
        return tuple(float(v) for v in value)
    if names is not None and value.dtype.kind in "iu":
        return (str(names[int(value)]),)
    if value.dtype.kind in "iuf":
        return (float(value),)
    return (str(value),)


def describe_values(values: Sequence[LabelValue]) -> str:
    """Label values as a person reads them: 3, [1, 0, 1]."""
    shown = [label_text(v) for v in values]
    return shown[0] if len(shown) == 1 else "[" + ", ".join(shown) + "]"
