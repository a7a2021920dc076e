"""Real sample data sets, exported as SageMaker train/validation/test channels.

    python -m smvision.local.samples digits|textures|faces|digit-traits OUT_DIR
        [--format folders|lst|rec|manifest] [--ref-prefix PREFIX]

writes OUT_DIR/{train,validation,test}/, split 60/20/20 per class:
- digits: scikit-learn's handwritten digits (1,797 8x8 greyscale scans, 10 classes);
- textures: 64x64 patches of scikit-image's brick, grass and gravel photographs (3
  classes, 100 patches each; train, validation and test come from separate bands of each
  photograph, so no test patch overlaps a training one);
- faces: scikit-image's subset of Labeled Faces in the Wild, 25x25 greyscale (100 faces
  and 100 non-faces: two classes);
- digit-traits: the digits, multi-label: each scan labelled with the traits of its digit
  among even, prime and large (5 or more); 1 has none, 2 is even and prime.

Formats, each as SageMaker's built-in image classifiers take it:
- folders (default for single-label sets): PNG files in <split>/<class>/;
- lst: PNG files in <split>/images/ and <split>/<split>.lst (index, label columns, path;
  a label per class, multi-hot, for a multi-label set), class indices in class order;
- rec: <split>/<split>.rec and .idx as im2rec writes them (PNG images, the label or the
  multi-hot labels packed in the IRHeader);
- manifest: PNG files in <split>/images/ and <split>/<split>.manifest, an augmented
  manifest as Ground Truth writes it (`source-ref`, a `class` attribute with the class id
  or the list of ids, and `class-metadata` with the class names). `source-ref` is the
  path relative to the manifest, or PREFIX<split>/images/<file> with --ref-prefix (the
  S3 prefix OUT_DIR is uploaded to).
textures and faces need scikit-image (a test dependency; not in the image).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from smvision.data.recordio import ImageRecord, ImageRecordWriter

SPLITS = {"train": 0.6, "validation": 0.2, "test": 0.2}
FORMATS = ("folders", "lst", "rec", "manifest")
DIGIT_TRAITS = {"even": {0, 2, 4, 6, 8}, "prime": {2, 3, 5, 7}, "large": {5, 6, 7, 8, 9}}


@dataclass(frozen=True)
class LabelledSet:
    """Images, each with its labels (one class, or any number of a multi-label set)."""

    pixels: np.ndarray
    labels: list[tuple[str, ...]]
    class_names: list[str]
    rows_by_split: dict[str, np.ndarray]
    stem: str
    multi_label: bool = False


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """The digits as uint8 8x8 images (0-16 intensities scaled to 0-255) and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return pixels, digits.target.astype(np.int64)


def split_indices(labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified 60/20/20 split of row indices."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        first = int(round(len(members) * SPLITS["train"]))
        second = first + int(round(len(members) * SPLITS["validation"]))
        parts["train"].extend(members[:first])
        parts["validation"].extend(members[first:second])
        parts["test"].extend(members[second:])
    return {name: np.array(sorted(rows)) for name, rows in parts.items()}


def digits_set(seed: int = 0) -> LabelledSet:
    pixels, labels = digits_images()
    names = [str(d) for d in range(10)]
    return LabelledSet(
        pixels, [(str(label),) for label in labels], names, split_indices(labels, seed), "digit"
    )


def digit_traits(digit: int) -> tuple[str, ...]:
    return tuple(name for name, members in DIGIT_TRAITS.items() if digit in members)


def digit_traits_set(seed: int = 0) -> LabelledSet:
    pixels, labels = digits_images()
    return LabelledSet(
        pixels,
        [digit_traits(int(label)) for label in labels],
        list(DIGIT_TRAITS),
        split_indices(labels, seed),
        "digit",
        multi_label=True,
    )


def faces_images() -> tuple[np.ndarray, list[str]]:
    """scikit-image's LFW subset: 100 faces, then 100 non-faces, 25x25 uint8."""
    from skimage import data

    faces = data.lfw_subset()  # type: ignore[no-untyped-call]
    pixels = np.rint(np.clip(faces, 0.0, 1.0) * 255.0).astype(np.uint8)
    return pixels, ["face"] * 100 + ["nonface"] * 100


def faces_set(seed: int = 0) -> LabelledSet:
    pixels, names = faces_images()
    labels = np.array([0 if name == "face" else 1 for name in names])
    return LabelledSet(
        pixels, [(name,) for name in names], ["face", "nonface"], split_indices(labels, seed), "lfw"
    )


TEXTURES = ("brick", "grass", "gravel")
TEXTURE_PATCH = 64
TEXTURE_PATCHES = {"train": 60, "validation": 20, "test": 20}


def texture_patches(seed: int = 0) -> dict[str, tuple[list[np.ndarray], list[str]]]:
    """Random patches of each texture photograph; each split from its own band of rows."""
    from skimage import data

    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[list[np.ndarray], list[str]]] = {s: ([], []) for s in SPLITS}
    for name in TEXTURES:
        photo = np.ascontiguousarray(getattr(data, name)())
        height, width = photo.shape[:2]
        top = 0
        for split, fraction in SPLITS.items():
            bottom = height if split == "test" else top + int(round(height * fraction))
            for _ in range(TEXTURE_PATCHES[split]):
                y = int(rng.integers(top, bottom - TEXTURE_PATCH + 1))
                x = int(rng.integers(0, width - TEXTURE_PATCH + 1))
                splits[split][0].append(photo[y : y + TEXTURE_PATCH, x : x + TEXTURE_PATCH])
                splits[split][1].append(name)
            top = bottom
    return splits


def textures_set(seed: int = 0) -> LabelledSet:
    patches: list[np.ndarray] = []
    names: list[str] = []
    rows: dict[str, np.ndarray] = {}
    for split, (split_patches, split_names) in texture_patches(seed).items():
        rows[split] = np.arange(len(patches), len(patches) + len(split_patches))
        patches += split_patches
        names += split_names
    return LabelledSet(np.stack(patches), [(n,) for n in names], list(TEXTURES), rows, "patch")


def export(
    labelled: LabelledSet, out_dir: Path, file_format: str = "folders", ref_prefix: str = ""
) -> dict[str, int]:
    """Write a set's splits in `file_format`; returns the image count per split."""
    if file_format == "folders" and labelled.multi_label:
        raise ValueError(
            "A multi-label set cannot be written as class folders; use --format lst, rec "
            "or manifest."
        )
    counts = {}
    for split, rows in labelled.rows_by_split.items():
        folder = out_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        WRITERS[file_format](labelled, rows, folder, split, ref_prefix)
        counts[split] = len(rows)
    return counts


def _png(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return encoded.tobytes()


def _file_name(labelled: LabelledSet, row: int) -> str:
    return f"{labelled.stem}-{row:04d}.png"


def _class_values(labelled: LabelledSet, row: int) -> list[float]:
    """The labels as the built-in takes them: a class index, or a multi-hot row."""
    if labelled.multi_label:
        return [1.0 if name in labelled.labels[row] else 0.0 for name in labelled.class_names]
    return [float(labelled.class_names.index(labelled.labels[row][0]))]


def _write_folders(labelled: LabelledSet, rows: np.ndarray, folder: Path, *_: str) -> None:
    for row in rows:
        class_dir = folder / labelled.labels[row][0]
        class_dir.mkdir(exist_ok=True)
        (class_dir / _file_name(labelled, row)).write_bytes(_png(labelled.pixels[row]))


def _write_images(labelled: LabelledSet, rows: np.ndarray, folder: Path) -> list[str]:
    (folder / "images").mkdir(exist_ok=True)
    paths = []
    for row in rows:
        path = f"images/{_file_name(labelled, row)}"
        (folder / path).write_bytes(_png(labelled.pixels[row]))
        paths.append(path)
    return paths


def _write_lst(labelled: LabelledSet, rows: np.ndarray, folder: Path, split: str, _: str) -> None:
    paths = _write_images(labelled, rows, folder)
    with (folder / f"{split}.lst").open("w") as lst:
        for row, path in zip(rows, paths):
            columns = "\t".join(f"{v:.6f}" for v in _class_values(labelled, row))
            lst.write(f"{row}\t{columns}\t{path}\n")


def _write_rec(labelled: LabelledSet, rows: np.ndarray, folder: Path, split: str, _: str) -> None:
    with ImageRecordWriter(folder / f"{split}.rec") as writer:
        for row in rows:
            labels = tuple(_class_values(labelled, row))
            writer.write(ImageRecord(labels, _png(labelled.pixels[row]), id=int(row)))


def _write_manifest(
    labelled: LabelledSet, rows: np.ndarray, folder: Path, split: str, ref_prefix: str
) -> None:
    paths = _write_images(labelled, rows, folder)
    index = {name: i for i, name in enumerate(labelled.class_names)}
    with (folder / f"{split}.manifest").open("w") as manifest:
        for row, path in zip(rows, paths):
            ids = [index[name] for name in labelled.labels[row]]
            if labelled.multi_label:
                value: object = ids
                metadata: dict[str, object] = {
                    "class-map": {str(i): labelled.class_names[i] for i in ids},
                    "type": "groundtruth/image-classification-multilabel",
                }
            else:
                value = ids[0]
                metadata = {
                    "class-name": labelled.labels[row][0],
                    "type": "groundtruth/image-classification",
                }
            ref = f"{ref_prefix}{split}/{path}" if ref_prefix else path
            line = {"source-ref": ref, "class": value, "class-metadata": metadata}
            manifest.write(json.dumps(line) + "\n")


WRITERS: dict[str, Callable[[LabelledSet, np.ndarray, Path, str, str], None]] = {
    "folders": _write_folders,
    "lst": _write_lst,
    "rec": _write_rec,
    "manifest": _write_manifest,
}
SETS: dict[str, Callable[[], LabelledSet]] = {
    "digits": digits_set,
    "textures": textures_set,
    "faces": faces_set,
    "digit-traits": digit_traits_set,
}


def export_digits(out_dir: Path, seed: int = 0) -> dict[str, int]:
    """Write the digits as PNG class folders; returns the image count per split."""
    return export(digits_set(seed), out_dir)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m smvision.local.samples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=sorted(SETS))
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="folders (the default for single-label sets) or the built-in's lst, rec, "
        "manifest (lst is the default for digit-traits)",
    )
    parser.add_argument(
        "--ref-prefix",
        default="",
        metavar="PREFIX",
        help="with --format manifest: the S3 prefix OUT_DIR is uploaded to, such as "
        "s3://BUCKET/digits/; source-ref is then PREFIX<split>/images/<file>",
    )
    args = parser.parse_args(argv)
    labelled = SETS[args.dataset]()
    file_format = args.format or ("lst" if labelled.multi_label else "folders")
    if args.ref_prefix and file_format != "manifest":
        parser.error("--ref-prefix applies to --format manifest only.")
    try:
        counts = export(labelled, args.out_dir, file_format, args.ref_prefix)
    except ValueError as error:
        parser.error(str(error))
    print(
        f"Wrote {args.dataset} to {args.out_dir} as {file_format}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


if __name__ == "__main__":
    main()
