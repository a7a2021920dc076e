"""Real sample data sets, exported as a SageMaker train/validation/test channel layout.

    python -m smvision.samples digits|textures|faces OUT_DIR

writes PNG files in OUT_DIR/{train,validation,test}/<class>/, split 60/20/20 per class:
- digits: scikit-learn's handwritten digits (1,797 8x8 greyscale scans, 10 classes);
- textures: 64x64 patches of scikit-image's brick, grass and gravel photographs (3
  classes, 100 patches each; train, validation and test come from separate bands of each
  photograph, so no test patch overlaps a training one);
- faces: scikit-image's subset of Labeled Faces in the Wild, 25x25 greyscale (100 faces
  and 100 non-faces: two classes).
textures and faces need scikit-image (a test dependency; not in the image).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

SPLITS = {"train": 0.6, "validation": 0.2, "test": 0.2}


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


def export_digits(out_dir: Path, seed: int = 0) -> dict[str, int]:
    """Write the digits as PNG class folders; returns the image count per split."""
    pixels, labels = digits_images()
    names = [str(label) for label in labels]
    return _export(out_dir, pixels, names, split_indices(labels, seed), "digit")


def faces_images() -> tuple[np.ndarray, list[str]]:
    """scikit-image's LFW subset: 100 faces, then 100 non-faces, 25x25 uint8."""
    from skimage import data

    faces = data.lfw_subset()  # type: ignore[no-untyped-call]
    pixels = np.rint(np.clip(faces, 0.0, 1.0) * 255.0).astype(np.uint8)
    return pixels, ["face"] * 100 + ["nonface"] * 100


def export_faces(out_dir: Path, seed: int = 0) -> dict[str, int]:
    pixels, names = faces_images()
    labels = np.array([0 if name == "face" else 1 for name in names])
    return _export(out_dir, pixels, names, split_indices(labels, seed), "lfw")


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


def export_textures(out_dir: Path, seed: int = 0) -> dict[str, int]:
    counts: dict[str, int] = {}
    for split, (patches, names) in texture_patches(seed).items():
        rows = {split: np.arange(len(names))}
        counts |= _export(out_dir, np.stack(patches), names, rows, "patch")
    return counts


def _export(
    out_dir: Path,
    pixels: np.ndarray,
    names: Sequence[str],
    rows_by_split: dict[str, np.ndarray],
    stem: str,
) -> dict[str, int]:
    counts = {}
    for split, rows in rows_by_split.items():
        for row in rows:
            folder = out_dir / split / names[row]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{stem}-{row:04d}.png"), pixels[row])
        counts[split] = len(rows)
    return counts


EXPORTERS = {"digits": export_digits, "textures": export_textures, "faces": export_faces}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m smvision.samples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=sorted(EXPORTERS))
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    counts = EXPORTERS[args.dataset](args.out_dir)
    print(
        f"Wrote {args.dataset} to {args.out_dir}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


if __name__ == "__main__":
    main()
