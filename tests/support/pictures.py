"""Checks that a PNG the code drew is a real picture: its size, and something drawn on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def assert_picture(path: Path, min_width: int = 400, min_height: int = 200) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG", path
        assert image.width >= min_width and image.height >= min_height, (path, image.size)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10, f"{path} looks blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, f"{path} has almost no colours"
