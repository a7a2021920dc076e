"""Generated request bodies (hypothesis) against smvision.data.bodies, the one decoder of
/invocations, batch transform and captured data.

Whatever the bytes and whatever the Content-Type, a body decodes to uint8 H x W x C images
or raises InputError or ImageError with a sentence: never another exception, never an
image that is not one. Bodies built from known pixels (arrays, nested lists, lossless
image files, JSON Lines of them) decode to exactly those pixels, in order, and a bad line
is named by its number in the request. The number of examples is the hypothesis profile's
(tests/support/hypothesis_profiles.py).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import cv2
import numpy as np
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smvision.core.media import CONTENT_TYPES, IMAGE_TYPES, JSON, JSON_LINES, NPY
from smvision.data import images
from smvision.data.bodies import InputError, decode_request, read_npy
from smvision.data.images import ImageError
from smvision.serving.streaming import LineGroups

SMALL_SIDE = st.integers(1, 12)
# What a pixel array may hold on the way in: the types an .npy body can carry.
ARRAY_DTYPES = st.sampled_from(
    [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.float32, np.float64, bool]
)


def npy_bytes(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def assert_images(decoded: list[np.ndarray]) -> None:
    assert decoded, "a body decoded to no image without an error"
    for image in decoded:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] in (1, 3)
        assert min(image.shape[:2]) >= 1


def decoded_or_refused(body: bytes, content_type: str) -> list[np.ndarray] | None:
    """The body's images, or None when it was refused with a sentence."""
    try:
        decoded = decode_request(body, content_type)
    except (InputError, ImageError) as error:
        message = str(error)
        assert message.strip() and message[0].isupper(), repr(message)
        return None
    assert_images(decoded)
    return decoded


@st.composite
def pixel_arrays(draw: st.DrawFn) -> np.ndarray:
    """Arrays of any of the .npy types, of 0 to 5 dimensions, small."""
    dtype = draw(ARRAY_DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def uint8_images(draw: st.DrawFn, channels: tuple[int, ...] = (1, 3)) -> np.ndarray:
    height, width = draw(SMALL_SIDE), draw(SMALL_SIDE)
    depth = draw(st.sampled_from(channels))
    return draw(hnp.arrays(np.uint8, (height, width, depth)))


def png_of(image: np.ndarray) -> bytes:
    """A lossless file of an RGB (or grey) image, as a client's library writes it."""
    pixels = image if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def instance_of(image: np.ndarray, as_file: bool) -> Any:
    if as_file:
        return {"b64": base64.b64encode(png_of(image)).decode()}
    return image.tolist()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@given(body=st.binary(max_size=2048), content_type=st.sampled_from(CONTENT_TYPES))
def test_any_bytes_decode_to_images_or_a_sentence(body: bytes, content_type: str) -> None:
    decoded_or_refused(body, content_type)


@given(array=pixel_arrays(), cut=st.integers(0, 64))
def test_any_npy_array_decodes_to_its_images_or_a_sentence(array: np.ndarray, cut: int) -> None:
    body = npy_bytes(array)
    decoded = decoded_or_refused(body, NPY)
    if decoded is not None:
        batch = array if array.ndim == 4 else array[np.newaxis]
        assert len(decoded) == len(batch)
        for image, source in zip(decoded, batch):
            assert np.array_equal(image, images.from_array(source))
    if cut:
        assert decoded_or_refused(body[:-cut], NPY) is None  # a truncated file


@given(image=uint8_images(channels=(1, 3, 4)))
def test_a_uint8_npy_image_comes_back_pixel_for_pixel(image: np.ndarray) -> None:
    (decoded,) = decode_request(npy_bytes(image), NPY)
    assert np.array_equal(decoded, image[:, :, :3])
    assert np.array_equal(read_npy(npy_bytes(image)), image)


@given(document=JSON_VALUES, content_type=st.sampled_from([JSON, JSON_LINES]))
def test_any_json_decodes_to_images_or_a_sentence(document: Any, content_type: str) -> None:
    decoded_or_refused(json.dumps(document).encode(), content_type)
    decoded_or_refused(json.dumps({"instances": [document]}).encode(), content_type)


@given(
    instances=st.lists(st.tuples(uint8_images(), st.booleans()), min_size=1, max_size=4),
    image_type=st.sampled_from(IMAGE_TYPES),
)
def test_json_instances_and_image_files_decode_to_their_pixels(
    instances: list[tuple[np.ndarray, bool]], image_type: str
) -> None:
    body = json.dumps({"instances": [instance_of(i, as_file) for i, as_file in instances]})
    decoded = decode_request(body.encode(), JSON)
    assert len(decoded) == len(instances)
    for image, (expected, _) in zip(decoded, instances):
        assert np.array_equal(image, expected)
    first, _ = instances[0]
    (as_file,) = decode_request(png_of(first), image_type)
    assert np.array_equal(as_file, first)


@given(
    lines=st.lists(
        st.one_of(
            st.tuples(uint8_images(), st.booleans()).map(lambda pair: instance_of(*pair)),
            st.just(None),  # a blank line
        ),
        min_size=1,
        max_size=6,
    ),
    first_line=st.integers(1, 10_000),
    bad=st.booleans(),
    bad_at=st.integers(0, 5),
)
def test_json_lines_decode_in_order_and_a_bad_line_is_named_by_its_number(
    lines: list[Any], first_line: int, bad: bool, bad_at: int
) -> None:
    text = [json.dumps(line) if line is not None else "" for line in lines]
    assume(any(line is not None for line in lines))
    if bad:
        bad_at %= len(text)
        text[bad_at] = '{"b64": "not base64!"}'
    body = "\n".join(text).encode()
    try:
        decoded = decode_request(body, JSON_LINES, first_line=first_line)
    except InputError as error:
        assert bad, error
        assert str(error).startswith(f"Line {first_line + bad_at} has a 'b64' value"), error
        return
    assert not bad
    expected = [line for line in lines if line is not None]
    assert len(decoded) == len(expected)
    for image, line in zip(decoded, expected):
        pixels = np.asarray(line, np.uint8) if isinstance(line, list) else None
        if pixels is not None:
            assert np.array_equal(image, images.from_array(pixels))


LINE_PIECES = st.sampled_from(["[[1, 2], [3, 4]]", "[[9]]", "", " ", "bad", "\r", '{"b64": 1}'])


@example(  # found by the thorough profile: a bare \r is no line break in JSON Lines
    pieces=["[[1]]\r[[2]]", "[[3]]", "bad"], separators=["\n"] * 12, group_lines=1
)
@given(
    pieces=st.lists(st.lists(LINE_PIECES, min_size=1, max_size=3).map("".join), max_size=12),
    separators=st.lists(st.sampled_from(["\n", "\r\n"]), min_size=12, max_size=12),
    group_lines=st.integers(1, 4),
)
def test_a_json_lines_body_decodes_alike_whole_and_in_the_groups_it_streams_in(
    pieces: list[str], separators: list[str], group_lines: int
) -> None:
    """serve predicts a JSON Lines body a group of lines at a time as it arrives
    (smvision.serving.streaming.LineGroups): the images, and the line an error names, must
    be those of the whole body decoded at once."""
    body = "".join(piece + separator for piece, separator in zip(pieces, separators)).encode()
    whole: list[np.ndarray] | str
    try:
        whole = decode_request(body, JSON_LINES)
    except InputError as error:
        whole = str(error)
    grouper = LineGroups(group_lines)
    groups = grouper.feed(body)
    last = grouper.close()
    groups += [last] if last is not None else []
    streamed: list[np.ndarray] | str = []
    decoded: list[np.ndarray] = []
    for group in groups:
        if not group.lines:
            continue
        try:
            decoded += decode_request(group.body, JSON_LINES, first_line=group.first_line)
        except InputError as error:
            streamed = str(error)
            break
    else:
        streamed = decoded
    if isinstance(whole, str) or isinstance(streamed, str):
        if not (isinstance(whole, str) and "holds no lines" in whole and streamed == []):
            assert streamed == whole
        return
    assert len(streamed) == len(whole)
    for one, other in zip(streamed, whole):
        assert np.array_equal(one, other)
