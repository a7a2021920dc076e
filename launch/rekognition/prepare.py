"""Make an image acceptable to Rekognition, re-encoding it with Pillow only when needed.

Rekognition Image takes JPEG or PNG, at most 5 MB as request bytes (15 MB as an S3
object), at least 80 pixels on each side and at most 10,000 (DetectLabels); see "Guidelines
and quotas in Amazon Rekognition". An image that breaks a rule is re-encoded and the
result says what was done and why, so the output can tell the user:
- too large: a JPEG (quality 90) at full size, then downscaled until it fits;
- another format (BMP, TIFF, WebP, GIF): a PNG (lossless) when that fits, else as above;
- too small: enlarged (bicubic) to 80 pixels on the short side, as a PNG.
EXIF orientation is applied before re-encoding, since the new file carries no EXIF.

Pillow, not OpenCV: the launchers must not import OpenCV or numpy, and Pillow does
neither (requirements/launch.txt installs it).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 5 * 1024 * 1024
MAX_S3_OBJECT_BYTES = 15 * 1024 * 1024
MIN_SIDE = 80
MAX_SIDE = 10_000
FORMATS = ("JPEG", "PNG")
S3_SUFFIXES = (".jpg", ".jpeg", ".png")
JPEG_QUALITY = 90
PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")
# Each downscale aims this far under the limit, so that one or two rounds fit.
_SHRINK_MARGIN = 0.9
_MAX_ROUNDS = 8


class ImageRejected(ValueError):
    """An image Pillow cannot read, or cannot bring under the limits."""


@dataclass(frozen=True)
class Prepared:
    data: bytes
    # None when sent as it was; else what was done and why ("re-encoded (...): ...").
    change: str | None


def prepare(data: bytes, name: str) -> Prepared:
    """The bytes to send for one image: the image itself when Rekognition takes it as is."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ImageRejected(f"{name}: Pillow cannot read it as an image ({error}).") from error
    original_format = image.format or "unknown"
    width, height = image.size
    reasons = []
    if original_format not in FORMATS:
        reasons.append(f"{original_format} is not JPEG or PNG")
    if len(data) > MAX_BYTES:
        reasons.append(f"{_size(len(data))} is over Rekognition's 5 MB limit for image bytes")
    if min(width, height) < MIN_SIDE:
        reasons.append(f"{width}x{height} is under Rekognition's {MIN_SIDE}-pixel minimum")
    if max(width, height) > MAX_SIDE:
        reasons.append(f"{width}x{height} is over Rekognition's {MAX_SIDE}-pixel maximum")
    if not reasons:
        return Prepared(data, None)

    fitted = _within_sides(ImageOps.exif_transpose(image))
    # A JPEG or PNG over the limit would come out of the same encoder no smaller.
    lossless_first = original_format not in FORMATS or len(data) <= MAX_BYTES
    encoded, encoding = _encode_under_limit(fitted, name, lossless_first)
    with Image.open(io.BytesIO(encoded)) as result:
        new_width, new_height = result.size
    change = (
        f"re-encoded ({'; '.join(reasons)}): {original_format} {width}x{height} "
        f"{_size(len(data))} -> {encoding} {new_width}x{new_height} {_size(len(encoded))}"
    )
    return Prepared(encoded, change)


def _within_sides(image: Image.Image) -> Image.Image:
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        scale = MIN_SIDE / min(width, height)
        size = (max(MIN_SIDE, math.ceil(width * scale)), max(MIN_SIDE, math.ceil(height * scale)))
        return image.resize(size, Image.Resampling.BICUBIC)
    if max(width, height) > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
        size = (min(MAX_SIDE, int(width * scale)), min(MAX_SIDE, int(height * scale)))
        return image.resize(size, Image.Resampling.LANCZOS)
    return image


def _encode_under_limit(image: Image.Image, name: str, lossless_first: bool) -> tuple[bytes, str]:
    """A PNG when it fits (if tried), else a JPEG, downscaled until it fits."""
    if lossless_first:
        png = _save(image if image.mode in PNG_MODES else image.convert("RGB"), "PNG")
        if len(png) <= MAX_BYTES:
            return png, "PNG"
    flat = image.convert("L" if image.mode in ("1", "L", "I", "I;16") else "RGB")
    for _ in range(_MAX_ROUNDS):
        jpeg = _save(flat, "JPEG")
        if len(jpeg) <= MAX_BYTES:
            return jpeg, "JPEG"
        factor = math.sqrt(MAX_BYTES * _SHRINK_MARGIN / len(jpeg))
        width, height = flat.size
        flat = flat.resize(
            (max(1, int(width * factor)), max(1, int(height * factor))), Image.Resampling.LANCZOS
        )
    raise ImageRejected(f"{name}: could not bring it under 5 MB in {_MAX_ROUNDS} rounds.")


def _save(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:.2f} MB" if count >= 10_000 else f"{count} bytes"
