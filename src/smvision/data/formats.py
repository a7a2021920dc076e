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

import logging
import math
import os
from collections.abc import Iterator, Sequence
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
log = logging.getLogger(__name__)
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


LAYOUTS = ("npz", "rec", "lst")  # in the order they are looked for; else class folders


def layout_of(directory: Path) -> str:
    """A channel's layout: the first of LAYOUTS it holds a file of, else "folders"."""
    for layout in LAYOUTS:
        if next(directory.rglob(f"*.{layout}"), None) is not None:
            return layout
    return "folders"


def read_directory(directory: Path, layout: str | None = None) -> list[Sample]:
    """Every sample of a channel directory in its layout (`layout_of`), in a stable order."""
    layout = layout or layout_of(directory)
    if layout == "folders":
        return read_class_folders(directory)
    files = sorted(directory.rglob(f"*.{layout}"))
    if layout == "lst":
        return read_lst_files(files, directory)
    reader = read_npz if layout == "npz" else read_rec
    return [sample for path in files for sample in reader(path, directory)]


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


def read_lst_files(files: Sequence[Path], directory: Path) -> list[Sample]:
    """The samples of a channel's .lst files, each image once.

    A row that repeats an earlier one (the same image and labels) is dropped, and said in
    one line per file: read twice, an image could be trained on and held out for validation
    at once. The same image with other labels is refused.
    """
    first: dict[Path, tuple[Sample, Path, int]] = {}
    samples = []
    repeats: dict[Path, list[tuple[int, str]]] = {}
    for lst_file in files:
        for number, sample in read_lst(lst_file, directory):
            if sample.path not in first:
                first[sample.path] = (sample, lst_file, number)
                samples.append(sample)
                continue
            earlier, earlier_file, earlier_number = first[sample.path]
            where = f"line {earlier_number}"
            if earlier_file != lst_file:
                where = f"{earlier_file}, {where}"
            if earlier.values != sample.values:
                raise LayoutError(
                    f"{lst_file}, line {number} labels {sample.source} "
                    f"{describe_values(sample.values)}, and {where} labels it "
                    f"{describe_values(earlier.values)}: an image has one set of labels; "
                    "remove one of the two rows."
                )
            repeats.setdefault(lst_file, []).append((number, where))
    for lst_file, rows in repeats.items():
        number, where = rows[0]
        log.warning(
            "%s: %d rows list an image that an earlier row lists with the same labels "
            "(line %d repeats %s); each image is read once, so that none is both trained on "
            "and held out for validation.",
            lst_file,
            len(rows),
            number,
            where,
        )
    return samples


def read_lst(lst_file: Path, directory: Path) -> Iterator[tuple[int, Sample]]:
    """index<TAB>label[<TAB>label...]<TAB>path lines, with their line numbers; the path
    inside the channel, each label a class index."""
    channel_root = os.path.abspath(directory)
    for number, line in enumerate(text_lines(lst_file), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise LayoutError(
                f"{lst_file}, line {number}: expected index<TAB>label<TAB>relative path "
                f"(several label columns for multi-label), got {line!r}."
            )
        where = f"{lst_file}, line {number}"
        values: list[LabelValue] = [class_index(column, where) for column in fields[1:-1]]
        source = fields[-1].strip()
        # Judged by name, not by following links: SageMaker copies only the channel.
        path = Path(os.path.abspath(lst_file.parent / source))
        if os.path.commonpath([channel_root, path]) != channel_root:
            raise LayoutError(
                f"{lst_file}, line {number}: path {source!r} leads outside the channel "
                f"({directory}); paths in a .lst file are relative to the .lst file and inside "
                "the channel, so SageMaker copies the images with it."
            )
        yield number, Sample(source, path, tuple(values))


def text_lines(path: Path) -> list[str]:
    """A text file's lines; a file that is not UTF-8 is refused at the line that is not."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise LayoutError(
            f"{path}, line {line}: byte 0x{data[error.start]:02x} is not UTF-8 text; write "
            "the file as UTF-8 text."
        ) from None


def class_index(column: str, where: str) -> float:
    """A .lst label column as a class index (a whole number from 0, written as a float)."""
    try:
        value = float(column)
    except ValueError:
        raise LayoutError(
            f"{where}: label {column!r} is not a number; .lst labels are class indices "
            "such as 0 or 3.000000."
        ) from None
    return require_index(value, column, where)


def require_index(value: float, shown: str, where: str) -> float:
    if not math.isfinite(value) or value < 0 or not value.is_integer():
        raise LayoutError(
            f"{where}: label {shown!r} is not a class index: .lst and .rec labels are whole "
            "numbers from 0 (such as 0 or 3.000000), one per class."
        )
    return value


def check_class_indices(samples: Sequence[Sample], channel: str) -> None:
    """The class indices of a single-label .lst or .rec channel that defines the classes
    (train) run 0, 1, 2, ... without a gap, as im2rec writes them and the built-in
    algorithm requires (a label below num_classes); a gap is a mistyped label."""
    if not samples or any(len(s.values) != 1 or s.error is not None for s in samples):
        return
    indices = sorted({int(float(s.values[0])) for s in samples})
    count = len(indices)
    if indices[-1] < count:
        return
    beyond = next(s for s in samples if int(float(s.values[0])) >= count)
    raise LayoutError(
        f"Channel '{channel}' numbers its classes {_spans(indices)} "
        f"({label_text(beyond.values[0])} labels {beyond.source}): .lst and .rec labels are "
        "class indices 0, 1, 2, ... without gaps, as im2rec writes them "
        f"({count} classes here: 0 to {count - 1}); correct the label, or renumber the classes."
    )


def _spans(numbers: Sequence[int]) -> str:
    """0 to 9 and 99; 0, 1 and 3."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    parts: list[str] = []
    for run in runs:
        parts += [f"{run[0]} to {run[-1]}"] if len(run) > 2 else [str(n) for n in run]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


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
            for label in header.labels:
                require_index(label, label_text(label), f"{rec_file}, record {index}")
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
