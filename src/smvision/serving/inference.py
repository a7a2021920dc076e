"""Request bodies -> images -> probabilities -> response bodies. No HTTP here.

`decode_request` reads a body by its Content-Type with the training code's own decoders
(`images.ModelInput.from_file` for files, `images.from_array` for arrays).
`Predictor.respond` decodes a batch of requests on its pool of threads, predicts them in
`predict_proba` calls of at most MAX_BATCH_IMAGES images and encodes each answer by its
Accept type. Every problem with a request raises a `ValueError` subclass whose message
names what was wrong and what is accepted; a request whose prediction raises gets that
error as its answer, and the others of its batch get theirs.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
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
THRESHOLD_ATTRIBUTE = "threshold"
# A multi-label model's answer names the labels at or above this probability.
DEFAULT_THRESHOLD = 0.5
# Images per predict_proba call and per micro-batch: Keras predicts 32 nearly as fast as
# one, and a bound keeps one request of a thousand images from holding up the others.
MAX_BATCH_IMAGES = 32
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


def _custom_attribute(custom_attributes: str | None, wanted: str) -> str | None:
    """One `name=value` of X-Amzn-SageMaker-Custom-Attributes (others are ignored)."""
    for attribute in (custom_attributes or "").replace(";", ",").split(","):
        name, separator, value = attribute.partition("=")
        if separator and name.strip().lower() == wanted:
            return value.strip()
    return None


def parse_top_k(custom_attributes: str | None) -> int | None:
    """`top_k=N` from the custom attributes: the N most likely classes' probabilities."""
    value = _custom_attribute(custom_attributes, TOP_K_ATTRIBUTE)
    if value is None:
        return None
    try:
        top_k = int(value)
    except ValueError:
        top_k = 0
    if top_k < 1:
        raise InputError(
            f"X-Amzn-SageMaker-Custom-Attributes has top_k={value!r}; "
            "use a whole number >= 1, such as top_k=3."
        )
    return top_k


def parse_threshold(custom_attributes: str | None) -> float | None:
    """`threshold=P` from the custom attributes: a multi-label model's answer names the
    labels whose probability is at least P (default 0.5); other models ignore it."""
    value = _custom_attribute(custom_attributes, THRESHOLD_ATTRIBUTE)
    if value is None:
        return None
    try:
        threshold = float(value)
    except ValueError:
        threshold = -1.0
    if not 0.0 <= threshold <= 1.0:
        raise InputError(
            f"X-Amzn-SageMaker-Custom-Attributes has threshold={value!r}; use a probability "
            "from 0 to 1, such as threshold=0.7."
        )
    return threshold


# Decoding ----------------------------------------------------------------------------------


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
    for number, line in enumerate(body.splitlines(), start=first_line):
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
    probabilities: np.ndarray,
    class_names: Sequence[str],
    accept: str,
    top_k: int | None,
    multi_label: bool = False,
    threshold: float | None = None,
) -> bytes:
    """One prediction per row of probabilities, in the Accept type's format."""
    if multi_label:
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        return _encode_multi_label(probabilities, class_names, accept, top_k, threshold)
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


def _encode_multi_label(
    probabilities: np.ndarray,
    class_names: Sequence[str],
    accept: str,
    top_k: int | None,
    threshold: float,
) -> bytes:
    """Per image: the labels at or above the threshold, most likely first, and every
    label's probability (the top_k most likely with top_k). CSV: label,probability pairs."""
    rows: list[list[float]] = probabilities.tolist()
    chosen = [
        sorted((i for i, p in enumerate(row) if p >= threshold), key=lambda i: -row[i])
        for row in rows
    ]
    if accept == CSV:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerows(
            [value for i in picked for value in (class_names[i], row[i])]
            for row, picked in zip(rows, chosen)
        )
        return text.getvalue().encode()
    predictions = [
        {
            "labels": [class_names[i] for i in picked],
            "threshold": threshold,
            "probabilities": _probabilities(row, class_names, top_k),
        }
        for row, picked in zip(rows, chosen)
    ]
    if accept == JSON_LINES:
        return "".join(json.dumps(p) + "\n" for p in predictions).encode()
    return json.dumps({"predictions": predictions}).encode()


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
    # Where the body starts in the request's JSON Lines (a part of a streamed body).
    first_line: int = 1
    threshold: float | None = None


Decoded = list[np.ndarray] | Exception  # a request's images, or why it has none: 400
Answer = bytes | Exception  # a response body, or the error the request earned


class Predictor:
    """A loaded model and its class names; answers batches of requests.

    Decoding runs on a pool of `threads` threads; prediction in calls of at most
    `max_batch_images` images each, so a request of many images is predicted alone.
    """

    def __init__(
        self,
        algorithm: ServableModel,
        class_names: Sequence[str],
        scaled_jpeg: bool = False,
        *,
        threads: int = 1,
        max_batch_images: int = MAX_BATCH_IMAGES,
        multi_label: bool = False,
    ) -> None:
        if len(class_names) != algorithm.class_count:
            raise ValueError(
                f"metadata.json names {len(class_names)} classes but the model predicts "
                f"{algorithm.class_count}; the model directory is inconsistent."
            )
        if threads < 1 or max_batch_images < 1:
            raise ValueError(
                f"threads is {threads} and max_batch_images {max_batch_images}; "
                "each must be at least 1."
            )
        self.algorithm = algorithm
        self.class_names = list(class_names)
        self.multi_label = multi_label
        self.model_input = images.ModelInput(algorithm.image_size, algorithm.channels, scaled_jpeg)
        self.threads = threads
        self.max_batch_images = max_batch_images
        self._decoders = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")

    @classmethod
    def load(
        cls,
        model_dir: Path,
        serve_format: str = "auto",
        keras_runtime: str = "auto",
        threads: int | None = None,
    ) -> Predictor:
        """The model SMVISION_SERVE_FORMAT picks (`models.choose`), compiled and warm,
        decoding and predicting on `threads` threads (default: every core it may use)."""
        threads = threads or available_cores()
        metadata = read_metadata(model_dir)
        choice = models.choose(model_dir, serve_format)
        algorithm = models.load(model_dir, metadata, choice, keras_runtime, threads)
        # Models trained before the key existed decoded every JPEG in full.
        scaled_jpeg = metadata.get("scaled_jpeg_decode") is True
        multi_label = metadata.get("multi_label") is True
        return cls(
            algorithm, metadata["class_names"], scaled_jpeg, threads=threads,
            multi_label=multi_label,
        )

    def close(self) -> None:
        """Let the decoding threads end (the model is being unloaded)."""
        self._decoders.shutdown(wait=False, cancel_futures=True)

    def warm_up_request(self) -> Request:
        """A PNG of the model's input size: the first prediction traces and allocates."""
        grey = np.full((self.algorithm.image_size, self.algorithm.image_size), 128, np.uint8)
        ok, encoded = cv2.imencode(".png", grey)
        if not ok:
            raise RuntimeError("OpenCV could not encode the warm-up PNG.")
        return Request(encoded.tobytes(), "image/png")

    def respond(self, requests: Sequence[Request]) -> Iterator[Answer]:
        """An answer per request, in order, each as soon as the group it is in is predicted.

        Consecutive requests share a `predict_proba` call while their images fit in
        `max_batch_images`; a request with more images forms a group of its own."""
        group: list[tuple[Request, Decoded]] = []
        group_images = 0
        for request, decoded in zip(requests, self._decode_all(requests)):
            count = 0 if isinstance(decoded, Exception) else len(decoded)
            if group_images and group_images + count > self.max_batch_images:
                yield from self._answer_group(group)
                group, group_images = [], 0
            group.append((request, decoded))
            group_images += count
        yield from self._answer_group(group)

    def _decode_all(self, requests: Sequence[Request]) -> Iterator[Decoded]:
        if len(requests) == 1:  # no hand-over to the pool for a lone request
            return iter([self._decode(requests[0])])
        return self._decoders.map(self._decode, requests)

    def _decode(self, request: Request) -> Decoded:
        """The request's images at the model's input size (what predict_proba would make)."""
        try:
            return [
                self.model_input.from_image(image)
                for image in decode_request(
                    request.body, request.content_type, self.model_input, request.first_line
                )
            ]
        except (images.ImageError, InputError) as error:  # the client's to fix: 400
            return error

    def _answer_group(self, group: list[tuple[Request, Decoded]]) -> Iterator[Answer]:
        """One prediction for the group; if it raises, each request alone, so that only
        the requests that raise on their own fail (each with its own error)."""
        decoded = [found for _, found in group if not isinstance(found, Exception)]
        try:
            probabilities = self._predict([image for found in decoded for image in found])
        except Exception as error:
            if len(decoded) > 1:
                for member in group:
                    yield from self._answer_group([member])
                return
            for _, found in group:  # the one request with images earned the error
                yield found if isinstance(found, Exception) else error
            return
        start = 0
        for request, found in group:
            if isinstance(found, Exception):
                yield found
                continue
            rows = probabilities[start : start + len(found)]
            start += len(found)
            yield encode_predictions(
                rows,
                self.class_names,
                request.accept,
                request.top_k,
                self.multi_label,
                request.threshold,
            )

    def _predict(self, batch: list[np.ndarray]) -> np.ndarray:
        """Probabilities for the batch, predicted `max_batch_images` images at a time."""
        if not batch:
            return np.zeros((0, len(self.class_names)), np.float32)
        step = self.max_batch_images
        parts = [
            self.algorithm.predict_proba(batch[start : start + step])
            for start in range(0, len(batch), step)
        ]
        probabilities = parts[0] if len(parts) == 1 else np.concatenate(parts)
        expected = (len(batch), len(self.class_names))
        if probabilities.shape != expected:
            raise RuntimeError(
                f"{type(self.algorithm).__name__}.predict_proba returned an array of shape "
                f"{probabilities.shape} for {len(batch)} images; expected {expected}."
            )
        return probabilities


def limit_threads(threads: int) -> None:
    """Let OpenCV's own pool use `threads` threads in this process (its default: one per core).

    Every serving worker decodes and resizes with OpenCV; with a worker per core, a pool
    per core in each would make cores x cores threads."""
    cv2.setNumThreads(threads)
