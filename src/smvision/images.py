"""Decoding and resizing: the one path every image takes, in training and in serving.

`decode_image` turns file bytes into a uint8 HxWxC array (C is 1 for greyscale, 3 for
RGB); `from_array` does the same for arrays that arrive as arrays (.npz channels,
application/x-npy, JSON pixel lists); `prepare` resizes to the model's square input.
Every algorithm feeds its model through `prepare`, so an image gets the same pixels
whether it came from a training channel or an HTTP request.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 40_000_000
SUPPORTED_FORMATS = "JPEG, PNG, BMP, TIFF or WebP"
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_DECODE_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH  # keeps grey and 16-bit, applies EXIF


class ImageError(ValueError):
    """An image that cannot be used, with a sentence that says why and what to send."""


class ImageTooLargeError(ImageError):
    """More pixels than MAX_PIXELS: refused before decoding (decompression bombs)."""


def probe(data: bytes, source: str = "image") -> tuple[int, int, bool]:
    """Width, height and whether it is greyscale, from the header alone."""
    if not data:
        raise ImageError(f"{source} is empty (0 bytes); send a {SUPPORTED_FORMATS} file.")
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            grey = header.mode in _GREY_MODES
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(
            f"{source} has more than {MAX_PIXELS / 1e6:.0f} megapixels ({error}); resize it "
            "before sending."
        ) from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageError(
            f"{source} is not a readable image ({_reason(error)}); send a {SUPPORTED_FORMATS} file."
        ) from error
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{source} is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
            f"{MAX_PIXELS / 1e6:.0f}-megapixel limit; resize it before sending."
        )
    return width, height, grey


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """File bytes -> uint8 HxWxC in RGB order (C = 1 or 3); alpha is dropped."""
    probe(data, source)
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _DECODE_FLAGS)
    if decoded is None:
        raise ImageError(
            f"{source} could not be decoded: the file is truncated or corrupt; "
            f"send a complete {SUPPORTED_FORMATS} file."
        )
    if decoded.ndim == 3 and decoded.shape[2] == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return _to_uint8(decoded, source)


def read_image(path: str, source: str | None = None) -> np.ndarray:
    with open(path, "rb") as handle:
        return decode_image(handle.read(), source or path)


def from_array(array: np.ndarray, source: str = "array") -> np.ndarray:
    """An HxW or HxWxC array (C = 1, 3 or 4; uint8, uint16, or float in [0, 1]) -> uint8 HxWxC."""
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)):
        raise ImageError(
            f"{source} has shape {tuple(array.shape)}; an image must be HxW or HxWxC with "
            "C = 1, 3 or 4."
        )
    if min(array.shape[:2]) < 1:
        raise ImageError(f"{source} has shape {tuple(array.shape)}: it holds no pixels.")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{source} has {array.shape[0]}x{array.shape[1]} pixels, over the "
            f"{MAX_PIXELS / 1e6:.0f}-megapixel limit; resize it before sending."
        )
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ImageError(f"{source} contains NaN or infinite values; send finite pixels.")
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise ImageError(
                f"{source} is a float array with values in [{array.min():.3g}, "
                f"{array.max():.3g}]; float pixels must lie in [0, 1] (or send uint8)."
            )
        array = np.rint(array * 255.0).astype(np.uint8)
    elif array.dtype not in (np.uint8, np.uint16):
        if array.dtype.kind in "iu" and array.size and array.min() >= 0 and array.max() <= 255:
            array = array.astype(np.uint8)
        else:
            raise ImageError(
                f"{source} has dtype {array.dtype}; send uint8 (0-255), uint16, or float in [0, 1]."
            )
    return _to_uint8(array, source)


def _to_uint8(array: np.ndarray, source: str) -> np.ndarray:
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 1.0
        array = np.clip(np.nan_to_num(array) * scale, 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageError(f"{source} has pixel type {array.dtype}, which is not supported.")
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    return np.ascontiguousarray(array)


def prepare(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 HxWxC -> uint8 size x size x channels: the model's input, whatever the source."""
    if image.shape[2] == 3 and channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, np.newaxis]
    height, width = image.shape[:2]
    if (height, width) != (size, size):
        shrinking = height * width > size * size
        resized = cv2.resize(
            image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
        image = resized if resized.ndim == 3 else resized[:, :, np.newaxis]
    if image.shape[2] == 1 and channels == 3:
        image = np.repeat(image, 3, axis=2)
    return image


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    if isinstance(error, UnidentifiedImageError) or text.startswith("cannot identify"):
        return "unknown format"
    return text or type(error).__name__
