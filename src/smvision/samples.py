"""Real sample data sets, exported as a SageMaker train/validation/test channel layout.

    python -m smvision.samples digits OUT_DIR

writes scikit-learn's bundled handwritten digits (1,797 8x8 greyscale scans, 10 classes)
as PNG files in OUT_DIR/{train,validation,test}/<digit>/, split 60/20/20 per class.
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
    counts = {}
    for split, rows in split_indices(labels, seed).items():
        for row in rows:
            folder = out_dir / split / str(labels[row])
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"digit-{row:04d}.png"), pixels[row])
        counts[split] = len(rows)
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m smvision.samples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=["digits"])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    counts = export_digits(args.out_dir)
    print(f"Wrote digits to {args.out_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
