"""images.py: one decode path for every format, and refusals that say what is wrong."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from smvision.data import images
from smvision.data.images import ImageError, ImageTooLargeError
from tests.support.photos import encode, grey_photo, photo


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff", ".webp"])
def test_lossless_formats_decode_to_the_same_rgb_pixels(suffix: str) -> None:
    original = photo("coffee")
    decoded = images.decode_image(encode(original, suffix))
    if suffix == ".webp":  # OpenCV's default WebP quality is lossy
        assert decoded.shape == original.shape
        assert np.abs(decoded.astype(int) - original).mean() < 3
    else:
        np.testing.assert_array_equal(decoded, original)


def test_jpeg_decodes_close_to_the_original() -> None:
    original = photo("china")
    decoded = images.decode_image(encode(original, ".jpg"))
    assert decoded.shape == original.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - original).mean() < 4


def test_grey_stays_one_channel_rgba_drops_alpha_16_bit_scales() -> None:
    grey = grey_photo("camera")
    assert images.decode_image(encode(grey, ".png")).shape == grey.shape + (1,)
    rgb = photo("astronaut")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    np.testing.assert_array_equal(images.decode_image(encode(rgba, ".png")), rgb)
    sixteen = grey.astype(np.uint16) * 257
    np.testing.assert_array_equal(images.decode_image(encode(sixteen, ".png"))[:, :, 0], grey)


def test_training_and_serving_see_the_same_pixels_for_a_file(tmp_path: Path) -> None:
    data = encode(photo("chelsea"), ".png")
    (tmp_path / "cat.png").write_bytes(data)
    np.testing.assert_array_equal(
        images.read_image(str(tmp_path / "cat.png")), images.decode_image(data)
    )


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "is empty"),
        (b"this is not an image at all", "not a readable image (unknown format)"),
    ],
)
def test_unreadable_bytes_are_refused(data: bytes, fragment: str) -> None:
    with pytest.raises(ImageError) as error:
        images.decode_image(data, "upload")
    assert str(error.value).startswith("upload ") and fragment in str(error.value)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_files_are_refused(suffix: str) -> None:
    data = encode(photo("flower"), suffix)
    with pytest.raises(ImageError, match="truncated or corrupt|not a readable image"):
        images.decode_image(data[: len(data) // 2], "half.jpg")


def test_decompression_bombs_are_refused_before_decoding() -> None:
    # A real property no bundled photo has: 8000 x 6000 = 48 megapixels that compress to little.
    bomb = encode(np.zeros((6000, 8000), np.uint8), ".png")
    assert len(bomb) < 200_000
    with pytest.raises(
        ImageTooLargeError, match="8000x6000 = 48.0 megapixels, over the 40-megapixel limit"
    ):
        images.decode_image(bomb, "bomb.png")


def test_arrays_in_every_accepted_form() -> None:
    rgb = photo("coffee")
    np.testing.assert_array_equal(images.from_array(rgb), rgb)
    np.testing.assert_array_equal(images.from_array(rgb / 255.0), rgb)
    assert images.from_array(grey_photo("coins")).shape[2] == 1
    assert images.from_array(np.dstack([rgb, rgb[:, :, :1]])).shape[2] == 3


@pytest.mark.parametrize(
    "array, fragment",
    [
        (np.zeros((2, 3, 4, 5), np.uint8), "shape (2, 3, 4, 5)"),
        (np.zeros((4, 4, 2), np.uint8), "shape (4, 4, 2)"),
        (np.full((4, 4), np.nan), "NaN or infinite"),
        (np.full((4, 4), 2.0), "float pixels must lie in [0, 1]"),
        (np.full((4, 4), -3, np.int16), "dtype int16"),
    ],
)
def test_bad_arrays_are_refused(array: np.ndarray, fragment: str) -> None:
    with pytest.raises(ImageError) as error:
        images.from_array(array, "instance 0")
    assert fragment in str(error.value) and "instance 0" in str(error.value)


def test_prepare_resizes_and_converts_channels() -> None:
    rgb = photo("astronaut")
    assert images.prepare(rgb, 64, 3).shape == (64, 64, 3)
    assert images.prepare(rgb, 64, 1).shape == (64, 64, 1)
    grey = images.decode_image(encode(grey_photo("camera"), ".png"))
    up = images.prepare(grey, 32, 3)
    assert up.shape == (32, 32, 3) and (up[:, :, 0] == up[:, :, 2]).all()
    prepared = images.prepare(rgb, 48, 3)
    np.testing.assert_array_equal(images.prepare(prepared, 48, 3), prepared)


@pytest.mark.parametrize(
    "width, height, size, scale",
    [
        (640, 427, 64, 4),  # 427 / 8 < 64 <= 427 / 4
        (640, 427, 224, 1),
        (640, 427, 213, 2),
        (640, 427, 214, 1),  # the shorter side would end at 213.5: no scaling
        (512, 512, 64, 8),
        (64, 64, 16, 4),
        (25, 25, 12, 2),
        (25, 25, 13, 1),
    ],
)
def test_jpeg_scale_keeps_the_shorter_side_at_least_the_model_size(
    width: int, height: int, size: int, scale: int
) -> None:
    assert images.jpeg_scale(width, height, size) == scale
    assert images.jpeg_scale(height, width, size) == scale


@pytest.mark.parametrize("channels, flag", [(3, cv2.IMREAD_COLOR), (1, cv2.IMREAD_GRAYSCALE)])
def test_a_large_jpeg_is_decoded_at_the_reduced_scale(channels: int, flag: int) -> None:
    data = encode(photo("china"), ".jpg")  # 640x427: scale 4 for a 64-pixel model
    reduced = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_REDUCED_GRAYSCALE_4)
    assert reduced is not None
    assert reduced.shape[:2] == (107, 160)
    if channels == 3:
        reduced = cv2.cvtColor(reduced, cv2.COLOR_BGR2RGB)
    else:
        reduced = reduced[:, :, np.newaxis]
    expected = images.prepare(reduced, 64, channels)
    scaled = images.ModelInput(64, channels, scaled_jpeg=True).from_file(data)
    np.testing.assert_array_equal(scaled, expected)
    full = images.ModelInput(64, channels, scaled_jpeg=False).from_file(data)
    np.testing.assert_array_equal(full, images.prepare(images.decode_image(data), 64, channels))
    # The same picture: a few grey levels apart on average, not a different image.
    assert 0 < np.abs(scaled.astype(int) - full).mean() < 3


def test_other_formats_decode_in_full_whatever_the_rule() -> None:
    data = encode(photo("china"), ".png")
    np.testing.assert_array_equal(
        images.ModelInput(64, 3, scaled_jpeg=True).from_file(data),
        images.prepare(images.decode_image(data), 64, 3),
    )


def test_a_jpeg_near_the_model_size_decodes_in_full() -> None:
    data = encode(photo("china")[:100, :100], ".jpg")
    np.testing.assert_array_equal(
        images.ModelInput(64, 3, scaled_jpeg=True).from_file(data),
        images.prepare(images.decode_image(data), 64, 3),
    )


def test_scaled_decoding_still_refuses_bad_files() -> None:
    data = encode(photo("china"), ".jpg")
    with pytest.raises(ImageError, match="half.jpg could not be decoded|half.jpg is not"):
        images.ModelInput(32, 3, scaled_jpeg=True).from_file(data[: len(data) // 3], "half.jpg")
