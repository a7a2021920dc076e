"""The worked example of docs/guides/data-report.md: python -m scripts.data_report_example OUT

Exports scikit-learn's digits as train/validation/test class folders in OUT/digits, then
spoils them as data sets get spoilt (seed 0): 25 test digits copied into train under new
names, 20 train digits moved to the folder of another class, a black and a white image
added to train. Then runs `python -m smvision.local inspect` over the three channels into
OUT/report.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np

from smvision.local import cli
from smvision.local.samples import export_digits


def spoil(root: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    tests = sorted((root / "test").rglob("*.png"))
    for index in rng.choice(len(tests), 25, replace=False):
        path = tests[index]
        shutil.copy(path, root / "train" / path.parent.name / f"copy-{path.name}")
    trains = sorted(p for p in (root / "train").rglob("*.png") if "copy-" not in p.name)
    for index in rng.choice(len(trains), 20, replace=False):
        path = trains[index]
        wrong = str((int(path.parent.name) + int(rng.integers(1, 10))) % 10)
        path.rename(root / "train" / wrong / path.name)
    cv2.imwrite(str(root / "train" / "0" / "black.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(root / "train" / "1" / "white.png"), np.full((8, 8), 255, np.uint8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.data_report_example", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", type=Path, help="where the spoilt digits and the report go")
    out: Path = parser.parse_args(argv).out
    digits = out / "digits"
    if digits.exists():
        shutil.rmtree(digits)
    export_digits(digits)
    spoil(digits)
    arguments = ["inspect", "--out", str(out / "report")]
    for split in ("train", "validation", "test"):
        arguments += ["--channel", f"{split}={digits / split}"]
    return cli.main(arguments)


if __name__ == "__main__":
    raise SystemExit(main())
