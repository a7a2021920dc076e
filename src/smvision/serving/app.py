"""The HTTP side of serving: GET /ping, POST /invocations, GET /execution-parameters (ASGI).

Written against the bare ASGI interface: three routes need no framework, and every
microsecond a request spends outside the model shows up in latency. The event loop only
moves bytes; decoding, prediction and encoding run in the inference thread
(`smvision.serving.batcher`), together with the requests that arrived meanwhile, so /ping
answers at once even while the model loads or works.

The model loads in a background thread when the worker starts. /ping says 503 until it
is loaded and has answered one warm-up request through the same path requests take;
/invocations that arrive before then wait for it (within the request timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from smvision.images import ImageError
from smvision.serving.batcher import BatcherStoppedError, MicroBatcher
from smvision.serving.inference import (
    MAX_BATCH_IMAGES,
    InputError,
    Predictor,
    Request,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
    check_content_type,
    choose_accept,
    limit_threads,
    parse_top_k,
)
from smvision.serving.settings import ServerSettings

log = logging.getLogger("smvision.serve")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

# gunicorn's WORKER_BOOT_ERROR: the master stops the server instead of starting the
# worker again and again on a model that cannot load.
LOAD_FAILURE_EXIT_CODE = 3
BATCHER_STOP_S = 5.0
JSON_TYPE = b"application/json"
CLIENT_ERRORS = (ImageError, InputError)  # what the client sent: 400


class HTTPError(Exception):
    """An answer other than 200, with the sentence that goes into {"error": ...}."""

    def __init__(self, status: int, message: str, headers: Iterable[Header] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass(frozen=True)
class _Model:
    """What a worker serves with, once loaded: the predictor and its inference thread."""

    predictor: Predictor
    batcher: MicroBatcher[Request, bytes]


class ServingApp:
    """The ASGI application one worker runs."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._model: _Model | None = None
        self._ready = asyncio.Event()  # set once self._model is loaded and warmed up
        self._execution_parameters = json.dumps(
            {
                "MaxConcurrentTransforms": settings.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": _whole_if_whole(settings.max_payload_mb),
            }
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # Lifespan: load in the background at start, stop the inference thread at the end ------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                loop = asyncio.get_running_loop()
                threading.Thread(
                    target=self._load, args=(loop,), name="model-loader", daemon=True
                ).start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._model is not None:
                    self._model.batcher.stop(BATCHER_STOP_S)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _load(self, loop: asyncio.AbstractEventLoop) -> None:
        started = time.perf_counter()
        try:
            limit_threads(self.settings.threads_per_worker)
            predictor = Predictor.load(
                self.settings.model_dir,
                self.settings.serve_format,
                self.settings.keras_runtime,
                self.settings.threads_per_worker,
            )
            # Requests hold an image each at least: a batch of MAX_BATCH_IMAGES requests is
            # enough to fill a prediction, and respond() predicts no more images at once.
            batcher: MicroBatcher[Request, bytes] = MicroBatcher(
                predictor.respond, MAX_BATCH_IMAGES
            )
            batcher.start()
            batcher.submit(predictor.warm_up_request()).result()
        except BaseException:  # a worker without a model must not pretend to serve
            log.exception(
                "Could not load the %s model in %s; stopping the server.",
                self.settings.algorithm,
                self.settings.model_dir,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(LOAD_FAILURE_EXIT_CODE)
        self._model = _Model(predictor, batcher)
        with suppress(RuntimeError):  # the loop is closed: the worker stopped while loading
            loop.call_soon_threadsafe(self._ready.set)
        log.info(
            "Worker %d: %s model loaded and warmed up in %.1f s; ready.",
            os.getpid(),
            self.settings.algorithm,
            time.perf_counter() - started,
        )

    # HTTP ---------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        try:
            if path == "/invocations":
                _allow(method, "POST")
                body, accept = await self._invoke(scope, receive)
                await _respond(send, 200, body, accept.encode())
            elif path == "/ping":
                _allow(method, "GET")
                if not self._ready.is_set():
                    raise HTTPError(503, "The model is still loading; ask again shortly.")
                await _respond(send, 200, b'{"status": "ready"}', JSON_TYPE)
            elif path == "/execution-parameters":
                _allow(method, "GET")
                await _respond(send, 200, self._execution_parameters, JSON_TYPE)
            else:
                raise HTTPError(
                    404,
                    f"No route {path}; use GET /ping, POST /invocations or "
                    "GET /execution-parameters.",
                )
        except HTTPError as error:
            if error.status != 503:
                log.info("%s %s -> %d: %s", method, path, error.status, error.message)
            body = json.dumps({"error": error.message}).encode()
            await _respond(send, error.status, body, JSON_TYPE, error.headers)

    async def _invoke(self, scope: Scope, receive: Receive) -> tuple[bytes, str]:
        try:
            content_type = check_content_type(_header(scope, b"content-type"))
            accept = choose_accept(_header(scope, b"accept"))
            top_k = parse_top_k(_header(scope, b"x-amzn-sagemaker-custom-attributes"))
        except UnsupportedContentTypeError as error:
            raise HTTPError(415, str(error)) from error
        except UnsupportedAcceptError as error:
            raise HTTPError(406, str(error)) from error
        except InputError as error:
            raise HTTPError(400, str(error)) from error
        request = Request(await self._read_body(scope, receive), content_type, accept, top_k)
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                return await self._answer(request), accept
        except TimeoutError as error:
            raise HTTPError(
                504,
                f"The request took longer than {self.settings.timeout_s:g} s "
                "(SAGEMAKER_MODEL_SERVER_TIMEOUT); send fewer or smaller images per request, "
                "or raise the limit.",
            ) from error
        except CLIENT_ERRORS as error:
            raise HTTPError(400, str(error)) from error
        except BatcherStoppedError as error:
            raise HTTPError(503, str(error)) from error
        except Exception as error:
            log.exception("Internal error on a %s request", content_type)
            raise HTTPError(
                500, f"Internal error ({type(error).__name__}: {error}); see the server log."
            ) from error

    async def _answer(self, request: Request) -> bytes:
        """Wait for the model, then for the inference thread's answer."""
        await self._ready.wait()
        if self._model is None:
            raise RuntimeError("The ready event was set before the model was loaded.")
        return await asyncio.wrap_future(self._model.batcher.submit(request))

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_payload_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError as error:
                raise HTTPError(400, f"Content-Length '{declared}' is not a number.") from error
            if length > limit:
                raise self._too_large(f"The body is {length} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "The client disconnected before sending the whole body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(f"The body passed {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, what: str) -> HTTPError:
        # Closing the connection spares reading the rest of a body nobody will use.
        return HTTPError(
            413,
            f"{what}, more than the {self.settings.max_payload_mb:g} MB "
            f"({self.settings.max_payload_bytes} bytes) that SAGEMAKER_MAX_PAYLOAD_IN_MB allows; "
            "split it into smaller requests.",
            headers=[(b"connection", b"close")],
        )


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise HTTPError(
            405,
            f"Method {method} is not allowed here; use {allowed}.",
            headers=[(b"allow", allowed.encode())],
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes, headers: Iterable[Header] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _whole_if_whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
