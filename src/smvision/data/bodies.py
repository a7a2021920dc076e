"""Request bodies -> images: what /invocations, a batch transform and captured data hold.

`decode_request` reads a body by its Content-Type with the training code's own decoders
(`images.ModelInput.from_file` for files, `images.from_array` for arrays). Every problem
raises a `ValueError` subclass whose message names what was wrong and what is accepted.
Serving and the drift monitor (which reads captured request bodies) both decode here.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from typing import Any

import numpy as np

from smvision.core.media import (
    CONTENT_TYPES,
    IMAGE_TYPES,
    JSON,
    JSON_LINES,
    NPY,
    media_type,
)
from smvision.data import images

_INSTANCE_FORMS = '{"b64": "<base64 image file>"} or a nested list of pixel values'


class InputError(ValueError):
    """A body that is not what its Content-Type promises, or a bad request attribute."""


class UnsupportedContentTypeError(ValueError):
    """A Content-Type that /invocations does not read."""


def check_content_type(header: str | None) -> str:
    content_type = media_type(header)
    if content_type not in CONTENT_TYPES:
        shown = f"'{header}'" if header else "missing"
        raise UnsupportedContentTypeError(
            f"Content-Type {shown} is not supported; send one of {', '.join(CONTENT_TYPES)}."
        )
    return content_type


def decode_request(
    body: bytes,
    content_type: str,
    model_input: images.ModelInput | None = None,
    first_line: int = 1,
) -> list[np.ndarray]:
    """A body of a supported Content-Type -> its images, uint8 HxWxC, in request order.

    With `model_input`, image files decode straight to the model's input, as training
    decoded them (a large JPEG at a reduced scale); arrays are prepared afterwards."""
    if content_type in IMAGE_TYPES:
        return [_file_image(body, f"The {content_type} body", model_input)]
    if content_type == NPY:
        return _npy_images(body)
    if content_type == JSON:
        return _json_images(body, model_input)
    if content_type == JSON_LINES:
        return _jsonlines_images(body, model_input, first_line)
    raise UnsupportedContentTypeError(f"Content-Type '{content_type}' has no decoder.")


def _npy_images(body: bytes) -> list[np.ndarray]:
    array = read_npy(body)
    if array.ndim == 4:
        if not len(array):
            raise InputError(f"The array has shape {array.shape}: it holds no images.")
        return [
            images.from_array(image, f"Image {i} of the array") for i, image in enumerate(array)
        ]
    if array.ndim == 3 and array.shape[2] not in (1, 3, 4):
        raise InputError(
            f"The array has shape {array.shape}: a 3-D array is one H x W x C image with "
            "C = 1, 3 or 4; send a batch of greyscale images as N x H x W x 1."
        )
    if array.ndim not in (2, 3):
        raise InputError(
            f"The array has shape {array.shape}; send H x W, H x W x C or N x H x W x C "
            "(C = 1, 3 or 4)."
        )
    return [images.from_array(array, "The array")]


def read_npy(body: bytes) -> np.ndarray:
    """An application/x-npy body, checked against its header before anything is allocated."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0  # 3.0 differs only in allowing UTF-8
        )
        shape, fortran_order, dtype = read_header(stream)
    except (ValueError, EOFError, SyntaxError) as error:
        raise InputError(
            f"The body is not an .npy file ({error}); send the bytes numpy.save writes."
        ) from error
    if dtype.hasobject or dtype.kind not in "biuf":
        raise InputError(
            f"The array has dtype {dtype}; send uint8 (0-255), uint16, or float in [0, 1]."
        )
    expected = math.prod(shape) * dtype.itemsize
    data = memoryview(body)[stream.tell() :]
    if len(data) != expected:
        raise InputError(
            f"The array header declares shape {shape} of {dtype} ({expected} bytes) but "
            f"{len(data)} bytes follow it; the file is truncated or corrupt."
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _file_image(data: bytes, source: str, model_input: images.ModelInput | None) -> np.ndarray:
    if model_input is None:
        return images.decode_image(data, source)
    return model_input.from_file(data, source)


def _json_images(body: bytes, model_input: images.ModelInput | None) -> list[np.ndarray]:
    document = _parse_json(body, "The body")
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list):
        raise InputError(
            'The JSON body must be an object {"instances": [...]} whose instances are each '
            f"{_INSTANCE_FORMS}."
        )
    if not instances:
        raise InputError('The JSON body has an empty "instances" list; send at least one image.')
    return [
        _instance_image(instance, f"Instance {i}", model_input)
        for i, instance in enumerate(instances)
    ]


def _jsonlines_images(
    body: bytes, model_input: images.ModelInput | None, first_line: int
) -> list[np.ndarray]:
    """The images of a JSON Lines body whose first line is line `first_line` of the request
    (a streamed body comes in parts: smvision.serving.streaming)."""
    decoded: list[np.ndarray] = []
    # Lines end at \n alone (a \r before it is JSON's whitespace), as serve's streaming
    # cuts them; splitlines() would also break at a bare \r and number lines otherwise.
    for number, line in enumerate(body.split(b"\n"), start=first_line):
        if line.strip():
            source = f"Line {number}"
            decoded.append(_instance_image(_parse_json(line, source), source, model_input))
    if not decoded:
        raise InputError(
            f"The JSON Lines body holds no lines; send one {_INSTANCE_FORMS} per line."
        )
    return decoded


def _parse_json(text: bytes, source: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise InputError(f"{source} is not valid JSON ({error}).") from error


def _instance_image(
    instance: Any, source: str, model_input: images.ModelInput | None
) -> np.ndarray:
    if isinstance(instance, dict):
        encoded = instance.get("b64")
        if not isinstance(encoded, str):
            raise InputError(
                f"{source} is an object without a string 'b64'; send {_INSTANCE_FORMS}."
            )
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InputError(f"{source} has a 'b64' value that is not base64 ({error}).") from error
        return _file_image(data, source, model_input)
    if isinstance(instance, list):
        try:
            array = np.array(instance)
        except (ValueError, TypeError) as error:
            raise InputError(
                f"{source} is not a rectangular nested list of pixel values ({error})."
            ) from error
        if array.dtype.kind not in "iuf":
            raise InputError(
                f"{source} holds {array.dtype} values; pixel values are numbers, 0-255 or "
                "floats in [0, 1]."
            )
        return images.from_array(array, source)
    raise InputError(f"{source} is {json.dumps(instance)[:40]}; send {_INSTANCE_FORMS}.")
