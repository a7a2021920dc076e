"""Decoding and resizing: the one path every image takes, in training and in serving.

`decode_image` turns file bytes into a uint8 HxWxC array (C is 1 for greyscale, 3 for
RGB); `from_array` does the same for arrays that arrive as arrays (.npz channels,
application/x-npy, JSON pixel lists); `prepare` resizes to the model's square input.
`ModelInput.from_file` is what training channels and HTTP requests both go through: it
decodes a file straight to the model's input, a large JPEG at a reduced scale
(`jpeg_scale`), so an image gets the same pixels whether it came from a training channel
or an HTTP request.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from smvision.schema.params import MAX_IMAGE_MEGAPIXELS, MAX_IMAGE_MEGAPIXELS_CEILING

MAX_PIXELS = MAX_IMAGE_MEGAPIXELS * 1_000_000
SUPPORTED_FORMATS = "JPEG, PNG, BMP, TIFF or WebP"
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_DECODE_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH  # keeps grey and 16-bit, applies EXIF
# libjpeg's DCT scaling: an 8x8 block's inverse DCT computes 4x4, 2x2 or 1x1 pixels, so a
# JPEG decodes at 1/2, 1/4 or 1/8 of its size for less work (the entropy decoding stays).
# OpenCV's IMREAD_REDUCED_GRAYSCALE_n flags carry only the scale; ANYCOLOR keeps colour.
JPEG_SCALES = (8, 4, 2)
_REDUCED_FLAGS = {
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
# Pillow calls a camera's multi-picture JPEG (a JPEG with extra frames after it) "MPO".
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})


class ImageError(ValueError):
    """An image that cannot be used, with a sentence that says why and what to send."""


class ImageTooLargeError(ImageError):
    """More pixels than MAX_PIXELS: refused before decoding (decompression bombs)."""


@dataclass(frozen=True)
class Header:
    """What an image file's header says, read before any pixel is decoded."""

    width: int
    height: int
    grey: bool
    format: str  # Pillow's name: "JPEG", "PNG", ...


def probe(data: bytes, source: str = "image") -> tuple[int, int, bool]:
    """Width, height and whether it is greyscale, from the header alone."""
    header = read_header(data, source)
    return header.width, header.height, header.grey


def read_header(data: bytes, source: str = "image", max_pixels: int | None = MAX_PIXELS) -> Header:
    """The file's size, colour and format; refuses what cannot be or must not be decoded
    (over `max_pixels`; None leaves that to the caller, `ModelInput.from_file`)."""
    if not data:
        raise ImageError(f"{source} is empty (0 bytes); send a {SUPPORTED_FORMATS} file.")
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            grey = header.mode in _GREY_MODES
            kind = header.format or ""
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(
            f"{source} has more than {MAX_PIXELS / 1e6:.0f} megapixels ({error}); resize it "
            "before sending."
        ) from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageError(
            f"{source} is not a readable image ({_reason(error)}); send a {SUPPORTED_FORMATS} file."
        ) from error
    found = Header(width, height, grey, kind)
    if max_pixels is not None and width * height > max_pixels:
        raise too_large(found, source, max_pixels)
    return found


def too_large(
    header: Header, source: str, max_pixels: int, setting: str | None = None
) -> ImageTooLargeError:
    """The sentence for an image over the pixel limit: the limit, and the setting that
    raises it where there is one (training's max_image_megapixels)."""
    fix = (
        f"raise the hyperparameter {setting} (up to {MAX_IMAGE_MEGAPIXELS_CEILING}) to train "
        "on it, or resize it"
        if setting
        else "resize it before sending"
    )
    megapixels = header.width * header.height / 1e6
    return ImageTooLargeError(
        f"{source} is {header.width}x{header.height} = {megapixels:.1f} megapixels, over the "
        f"{max_pixels / 1e6:g}-megapixel limit; {fix}."
    )


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """File bytes -> uint8 HxWxC in RGB order (C = 1 or 3); alpha is dropped."""
    read_header(data, source)
    return _decode(data, _DECODE_FLAGS, source)


def jpeg_scale(width: int, height: int, size: int) -> int:
    """The divisor (8, 4, 2, else 1) at which to decode a width x height JPEG for a model of
    size x size: the largest that leaves the shorter side at least `size` pixels, so the
    final resize still shrinks (or keeps) every side and no detail the model sees is lost."""
    shorter = min(width, height)
    for scale in JPEG_SCALES:
        if shorter >= size * scale:
            return scale
    return 1


@dataclass(frozen=True)
class ModelInput:
    """A model's input: size x size x channels uint8 pixels, and how files get there.

    `scaled_jpeg` decodes a JPEG at `jpeg_scale` of its size (a model's metadata records
    whether it was trained so; models from before record nothing and decode in full).
    No image decodes to more than `max_pixels`: a JPEG over it is decoded at the first
    reduced scale that fits, any other image is refused with the limit and `limit_setting`,
    the setting that raises it (None: nothing does).
    """

    size: int
    channels: int
    scaled_jpeg: bool = False
    max_pixels: int = MAX_PIXELS
    limit_setting: str | None = None

    def from_file(self, data: bytes, source: str = "image") -> np.ndarray:
        """File bytes -> the model's input: the one path of training channels and requests."""
        header = read_header(data, source, max_pixels=None)
        scale = self.decode_scale(header, source)
        if scale == 1:
            return self.from_image(_decode(data, _DECODE_FLAGS, source))
        colour = cv2.IMREAD_ANYCOLOR if self.channels == 3 else cv2.IMREAD_GRAYSCALE
        flags = _REDUCED_FLAGS[scale] | colour | cv2.IMREAD_ANYDEPTH
        return self.from_image(_decode(data, flags, source))

    def decode_scale(self, header: Header, source: str) -> int:
        """The divisor a file is decoded at: `jpeg_scale` for a JPEG when `scaled_jpeg`, a
        larger one for a JPEG over `max_pixels`; 1 for any other file within it."""
        jpeg = header.format in _JPEG_FORMATS
        scale = (
            jpeg_scale(header.width, header.height, self.size) if jpeg and self.scaled_jpeg else 1
        )
        pixels = header.width * header.height
        if pixels <= self.max_pixels * scale * scale:
            return scale
        if jpeg:
            for reduced in sorted(_REDUCED_FLAGS):
                if reduced > scale and pixels <= self.max_pixels * reduced * reduced:
                    return reduced
        raise too_large(header, source, self.max_pixels, self.limit_setting)

    def from_image(self, image: np.ndarray) -> np.ndarray:
        """A decoded uint8 HxWxC image -> the model's input."""
        return prepare(image, self.size, self.channels)


def _decode(data: bytes, flags: int, source: str) -> np.ndarray:
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
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
