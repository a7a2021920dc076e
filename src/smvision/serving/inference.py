"""Request bodies -> images -> probabilities -> response bodies. No HTTP here.

Bodies decode in smvision.data.bodies and answers encode in smvision.serving.codecs;
`Predictor.respond` decodes a batch of requests on its pool of threads, predicts them in
`predict_proba` calls of at most MAX_BATCH_IMAGES images and encodes each answer by its
Accept type. Two threads may call it at once (the batcher's `threads=2`): one decodes its
batch while the other predicts, and predictions take turns under a lock (a TFLite
interpreter runs one call at a time, and a prediction already has the model's threads).
Every problem with a request raises a `ValueError` subclass whose message names what was
wrong and what is accepted; a request whose prediction raises gets that error as its
answer, and the others of its batch get theirs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from smvision.algorithms.features import appearance
from smvision.core.artifacts import read_metadata
from smvision.core.contract import CONFORMAL_FILE, OOD_FILE
from smvision.core.machine import available_cores
from smvision.core.media import (
    JSON,
)
from smvision.data import images
from smvision.data.bodies import (
    InputError,
    decode_request,
)
from smvision.model import tta
from smvision.model.conformal import DEFAULT_MAX_SET_SIZE, Calibration
from smvision.model.ood import OodModel
from smvision.serving import models
from smvision.serving.codecs import (
    Judgement,
    encode_predictions,
)
from smvision.serving.models import ServableModel

# Images per predict_proba call and per micro-batch: Keras predicts 32 nearly as fast as
# one, and a bound keeps one request of a thousand images from holding up the others.
MAX_BATCH_IMAGES = 32


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
    # Custom attributes coverage=, max_set_size= and tta= (None: the Predictor's default).
    coverage: float | None = None
    max_set_size: int | None = None
    tta: str | None = None


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
        calibration: Calibration | None = None,
        detector: OodModel | None = None,
        default_tta: str = "none",
        default_coverage: float | None = None,
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
        self._predicting = threading.Lock()
        # What the model abstains by (conformal.json, ood.npz; None for older models) and the
        # defaults of requests that do not say (SMVISION_TTA, SMVISION_COVERAGE).
        self.calibration = calibration
        self.detector = detector
        self.default_tta = default_tta
        self.default_coverage = default_coverage

    @classmethod
    def load(
        cls,
        model_dir: Path,
        serve_format: str = "auto",
        keras_runtime: str = "auto",
        threads: int | None = None,
        default_tta: str = "none",
        default_coverage: float | None = None,
    ) -> Predictor:
        """The model SMVISION_SERVE_FORMAT picks (`models.choose`), compiled and warm,
        decoding and predicting on `threads` threads (default: every core it may use), with
        its calibration and out-of-distribution model when training wrote them."""
        threads = threads or available_cores()
        metadata = read_metadata(model_dir)
        choice = models.choose(model_dir, serve_format)
        algorithm = models.load(model_dir, metadata, choice, keras_runtime, threads)
        # Models trained before the key existed decoded every JPEG in full.
        scaled_jpeg = metadata.get("scaled_jpeg_decode") is True
        multi_label = metadata.get("multi_label") is True
        return cls(
            algorithm,
            metadata["class_names"],
            scaled_jpeg,
            threads=threads,
            multi_label=multi_label,
            calibration=Calibration.load(model_dir / CONFORMAL_FILE)
            if (model_dir / CONFORMAL_FILE).is_file()
            else None,
            detector=OodModel.load(model_dir / OOD_FILE)
            if (model_dir / OOD_FILE).is_file()
            else None,
            default_tta=default_tta,
            default_coverage=default_coverage,
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
        # No hand-over to a pool of one thread, or for a lone request: a thread hop each way.
        if len(requests) == 1 or self.threads == 1:
            return (self._decode(request) for request in requests)
        return self._decoders.map(self._decode, requests)

    def _decode(self, request: Request) -> Decoded:
        """The request's images at the model's input size (what predict_proba would make)."""
        try:
            self._check_coverage(request)
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
        modes = [self._tta(request) for request, found in group if not isinstance(found, Exception)]
        try:
            # Each image's test-time augmentation views, side by side (one view: the image).
            probabilities = self._predict(
                [
                    view
                    for found, mode in zip(decoded, modes)
                    for image in found
                    for view in tta.views(image, mode)
                ]
            )
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
            views = tta.view_count(self._tta(request))
            rows = tta.average(probabilities[start : start + len(found) * views], views)
            start += len(found) * views
            yield encode_predictions(
                rows,
                self.class_names,
                request.accept,
                request.top_k,
                self.multi_label,
                request.threshold,
                self._judge(request, found, rows),
            )

    # Abstention and test-time augmentation (smvision.model: conformal, ood, tta) ---------

    def _tta(self, request: Request) -> str:
        return request.tta or self.default_tta

    def _coverage(self, request: Request) -> float | None:
        return request.coverage if request.coverage is not None else self.default_coverage

    def _check_coverage(self, request: Request) -> None:
        if self._coverage(request) is None:
            return
        if self.multi_label:
            raise InputError(
                "coverage= asks for a prediction set of one class, and this model is "
                "multi-label (its answer is already a set: see threshold=); drop coverage."
            )
        if self.calibration is None:
            raise InputError(
                "coverage= needs the model's conformal calibration (conformal.json), which "
                "training writes from the validation split; this model has none (trained "
                "without validation images, or by an older smvision): retrain it, or drop "
                "coverage."
            )

    def _judge(self, request: Request, images: list[np.ndarray], rows: np.ndarray) -> Judgement:
        """Out-of-distribution flags of the images; prediction sets when coverage is asked."""
        flags = None
        if self.detector is not None and images:
            flags = self.detector.flags(appearance.embed(np.stack(images))).tolist()
        coverage = self._coverage(request)
        if coverage is None or self.calibration is None:
            return Judgement(flags)
        return Judgement(
            flags,
            self.calibration.sets(rows, coverage, self._tta(request)),
            coverage,
            request.max_set_size or DEFAULT_MAX_SET_SIZE,
        )

    def _predict(self, batch: list[np.ndarray]) -> np.ndarray:
        """Probabilities for the batch, predicted `max_batch_images` images at a time."""
        if not batch:
            return np.zeros((0, len(self.class_names)), np.float32)
        step = self.max_batch_images
        with self._predicting:
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
