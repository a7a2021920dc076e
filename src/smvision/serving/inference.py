"""Request bodies -> images -> probabilities -> response bodies. No HTTP here.

`decode_request` reads a body by its Content-Type with the training code's own decoders
(`images.ModelInput.from_file` for files, `images.from_array` for arrays); `Predictor.respond`
decodes a batch of requests, predicts them with one `predict_proba` call and encodes
each answer by its Accept type. Every problem with a request raises a `ValueError`
subclass whose message names what was wrong and what is accepted.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from smvision import images
from smvision.artifacts import read_metadata
from smvision.machine import available_cores
from smvision.media import (
    ACCEPT_TYPES,
    CONTENT_TYPES,
    CSV,
    IMAGE_TYPES,
    JSON,
    JSON_LINES,
    NPY,
    media_type,
)
from smvision.serving import models
from smvision.serving.models import ServableModel

_WILDCARD_ACCEPT = {"*/*": JSON, "application/*": JSON, "text/*": CSV}
TOP_K_ATTRIBUTE = "top_k"
_INSTANCE_FORMS = '{"b64": "<base64 image file>"} or a nested list of pixel values'


class InputError(ValueError):
    """A body that is not what its Content-Type promises, or a bad request attribute."""


class UnsupportedContentTypeError(ValueError):
    """A Content-Type that /invocations does not read."""


class UnsupportedAcceptError(ValueError):
    """An Accept header that names no type /invocations can answer in."""


def check_content_type(header: str | None) -> str:
    content_type = media_type(header)
    if content_type not in CONTENT_TYPES:
        shown = f"'{header}'" if header else "missing"
        raise UnsupportedContentTypeError(
            f"Content-Type {shown} is not supported; send one of {', '.join(CONTENT_TYPES)}."
        )
    return content_type


def choose_accept(header: str | None) -> str:
    """The response type for an Accept header: its most preferred type that we can write."""
    if not header or not header.strip():
        return JSON
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        kind, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, kind.lower()))
    for negative_quality, _, kind in sorted(ranked):
        if negative_quality >= 0:
            break
        if kind in ACCEPT_TYPES:
            return kind
        if kind in _WILDCARD_ACCEPT:
            return _WILDCARD_ACCEPT[kind]
    raise UnsupportedAcceptError(
        f"Accept '{header}' names no type this server writes; accept one of "
        f"{', '.join(ACCEPT_TYPES)}."
    )


def parse_top_k(custom_attributes: str | None) -> int | None:
    """`top_k=N` from X-Amzn-SageMaker-Custom-Attributes (other attributes are ignored)."""
    if not custom_attributes:
        return None
    for attribute in custom_attributes.replace(";", ",").split(","):
        name, separator, value = attribute.partition("=")
        if separator and name.strip().lower() == TOP_K_ATTRIBUTE:
            try:
                top_k = int(value.strip())
            except ValueError:
                top_k = 0
            if top_k < 1:
                raise InputError(
                    f"X-Amzn-SageMaker-Custom-Attributes has top_k={value.strip()!r}; "
                    "use a whole number >= 1, such as top_k=3."
                )
            return top_k
    return None


# Decoding ----------------------------------------------------------------------------------


def decode_request(
    body: bytes, content_type: str, model_input: images.ModelInput | None = None
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
        return _jsonlines_images(body, model_input)
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


def _jsonlines_images(body: bytes, model_input: images.ModelInput | None) -> list[np.ndarray]:
    decoded: list[np.ndarray] = []
    for number, line in enumerate(body.splitlines(), start=1):
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


# Encoding ----------------------------------------------------------------------------------


def encode_predictions(
    probabilities: np.ndarray, class_names: Sequence[str], accept: str, top_k: int | None
) -> bytes:
    """One prediction per row of probabilities, in the Accept type's format."""
    rows: list[list[float]] = probabilities.tolist()
    best = probabilities.argmax(axis=1).tolist()
    if accept == CSV:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerows((class_names[i], row[i]) for row, i in zip(rows, best))
        return text.getvalue().encode()
    predictions = [
        {
            "label": class_names[i],
            "probability": row[i],
            "probabilities": _probabilities(row, class_names, top_k),
            # The flat names SageMaker's built-in classifiers answer with, which Model
            # Monitor's model-quality jobs read (inference and probability attributes).
            "predicted_label": class_names[i],
        }
        for row, i in zip(rows, best)
    ]
    if accept == JSON_LINES:
        return "".join(json.dumps(p) + "\n" for p in predictions).encode()
    document: dict[str, Any] = {"predictions": predictions}
    if len(predictions) == 1:  # one image: its answer is also flat, at the top level
        document |= {"predicted_label": predictions[0]["label"],
                     "probability": predictions[0]["probability"]}
    return json.dumps(document).encode()


def _probabilities(
    row: list[float], class_names: Sequence[str], top_k: int | None
) -> dict[str, float]:
    if top_k is None:
        return dict(zip(class_names, row))
    order = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:top_k]
    return {class_names[i]: row[i] for i in order}


# Prediction --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One /invocations call, as far as inference cares."""

    body: bytes
    content_type: str
    accept: str = JSON
    top_k: int | None = None


class Predictor:
    """A loaded model and its class names; answers batches of requests."""

    def __init__(
        self, algorithm: ServableModel, class_names: Sequence[str], scaled_jpeg: bool = False
    ) -> None:
        if len(class_names) != algorithm.class_count:
            raise ValueError(
                f"metadata.json names {len(class_names)} classes but the model predicts "
                f"{algorithm.class_count}; the model directory is inconsistent."
            )
        self.algorithm = algorithm
        self.class_names = list(class_names)
        self.model_input = images.ModelInput(algorithm.image_size, algorithm.channels, scaled_jpeg)
        self._decoders = ThreadPoolExecutor(
            max_workers=available_cores(), thread_name_prefix="decode"
        )

    @classmethod
    def load(
        cls, model_dir: Path, serve_format: str = "auto", keras_runtime: str = "auto"
    ) -> Predictor:
        """The model SMVISION_SERVE_FORMAT picks (`models.choose`), compiled and warm."""
        metadata = read_metadata(model_dir)
        choice = models.choose(model_dir, serve_format)
        algorithm = models.load(model_dir, metadata, choice, keras_runtime, available_cores())
        # Models trained before the key existed decoded every JPEG in full.
        scaled_jpeg = metadata.get("scaled_jpeg_decode") is True
        return cls(algorithm, metadata["class_names"], scaled_jpeg)

    def warm_up_request(self) -> Request:
        """A PNG of the model's input size: the first prediction traces and allocates."""
        grey = np.full((self.algorithm.image_size, self.algorithm.image_size), 128, np.uint8)
        ok, encoded = cv2.imencode(".png", grey)
        assert ok
        return Request(encoded.tobytes(), "image/png")

    def respond(self, requests: Sequence[Request]) -> list[bytes | Exception]:
        """Response bodies (or the error each request earned), predicted as one batch."""
        if len(requests) == 1:
            decoded: list[list[np.ndarray] | Exception] = [self._decode(requests[0])]
        else:
            decoded = list(self._decoders.map(self._decode, requests))
        batch = [image for item in decoded if not isinstance(item, Exception) for image in item]
        if not batch:  # every request failed to decode
            return [item for item in decoded if isinstance(item, Exception)]
        try:
            probabilities = self.algorithm.predict_proba(batch)
        except Exception:
            if len(requests) == 1:
                raise
            # Find the request that broke the batch; the others still get their answers.
            return [answer for request in requests for answer in self.respond([request])]
        answers: list[bytes | Exception] = []
        start = 0
        for request, item in zip(requests, decoded):
            if isinstance(item, Exception):
                answers.append(item)
                continue
            rows = probabilities[start : start + len(item)]
            start += len(item)
            answers.append(
                encode_predictions(rows, self.class_names, request.accept, request.top_k)
            )
        return answers

    def _decode(self, request: Request) -> list[np.ndarray] | Exception:
        """The request's images at the model's input size (what predict_proba would make)."""
        try:
            return [
                self.model_input.from_image(image)
                for image in decode_request(request.body, request.content_type, self.model_input)
            ]
        except (images.ImageError, InputError) as error:  # the client's to fix: 400
            return error
