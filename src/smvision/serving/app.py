"""The HTTP side of serving (ASGI): GET /ping, POST /invocations, GET /execution-parameters,
and on a multi-model endpoint the model API of smvision.serving.multi_model.

Written against the bare ASGI interface (smvision.serving.http): a few routes need no
framework, and every microsecond a request spends outside the model shows up in latency.
The event loop only moves bytes; decoding, prediction and encoding run in the model's
inference thread (`smvision.serving.batcher`), together with the requests that arrived
meanwhile, so /ping answers at once even while a model loads or works.

One model: it loads in a background thread when the worker starts. /ping says 503 until
it is loaded and has answered one warm-up request through the same path requests take;
/invocations that arrive before then wait for it (within the request timeout).
Many models: /ping answers 200 at once, and each model is loaded when SageMaker asks.
Either way a request is answered by `_invoke`, one path for every model: a JSON Lines
body is predicted a group of lines at a time as it arrives (smvision.serving.streaming),
any other body once it has arrived whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress

from smvision.core.media import JSON_LINES
from smvision.data.bodies import InputError, UnsupportedContentTypeError, check_content_type
from smvision.data.images import ImageError
from smvision.serving import models, process_memory
from smvision.serving.batcher import BatcherStoppedError
from smvision.serving.codecs import (
    UnsupportedAcceptError,
    choose_accept,
    parse_coverage,
    parse_max_set_size,
    parse_threshold,
    parse_top_k,
    parse_tta,
)
from smvision.serving.http import (
    JSON_TYPE,
    HTTPError,
    Receive,
    Scope,
    Send,
    TimedBody,
    allow,
    body_chunks,
    header,
    read_body,
    respond,
    respond_in_chunks,
)
from smvision.serving.inference import MAX_BATCH_IMAGES, Request, limit_threads
from smvision.serving.loading import LoadedModel, plan
from smvision.serving.model_table import ModelTable, default_budget_mb
from smvision.serving.multi_model import ModelRoutes
from smvision.serving.settings import ServerSettings
from smvision.serving.streaming import Answer, Group, answer_in_groups

log = logging.getLogger("smvision.serve")

# gunicorn's WORKER_BOOT_ERROR: the master stops the server instead of starting the
# worker again and again on a model that cannot load.
LOAD_FAILURE_EXIT_CODE = 3
BATCHER_STOP_S = 5.0
CLIENT_ERRORS = (ImageError, InputError)  # what the client sent: 400


class ServingApp:
    """The ASGI application one worker runs."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._model: LoadedModel | None = None
        self._ready = asyncio.Event()  # set once self._model is loaded and warmed up
        self._models: ModelRoutes | None = None  # a multi-model server's
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

    # Lifespan: load in the background at start, stop the inference threads at the end ----

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                limit_threads(self.settings.threads_per_worker)
                if self.settings.multi_model:
                    self._models = ModelRoutes(
                        self._model_table(), self._invoke, self.settings.timeout_s
                    )
                    self._ready.set()
                else:
                    loop = asyncio.get_running_loop()
                    threading.Thread(
                        target=self._load, args=(loop,), name="model-loader", daemon=True
                    ).start()
                    loop.call_later(self.settings.load_timeout_s, self._load_overdue)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._model is not None:
                    self._model.stop(BATCHER_STOP_S)
                if self._models is not None:
                    models.kill_compiles()
                    await self._models.table.stop(BATCHER_STOP_S)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _model_table(self) -> ModelTable[LoadedModel]:
        settings = self.settings
        budget = settings.models_memory_mb
        if budget is None:
            budget = default_budget_mb(
                process_memory.container_memory_mb(), process_memory.resident_mb()
            )
        log.info(
            "Multi-model server: models load from %s on SageMaker's request; %s MiB "
            "of memory for them.",
            settings.model_dir,
            f"{budget:.0f}",
        )
        return ModelTable(
            lambda url: plan(url, settings),
            lambda url, given_up: LoadedModel.load(url, settings, given_up),
            budget,
            BATCHER_STOP_S,
            load_timeout_s=settings.load_timeout_s,
            # The requests in flight end within the request timeout; then the threads stop.
            unload_timeout_s=settings.timeout_s + BATCHER_STOP_S,
        )

    def _load_overdue(self) -> None:
        """The load's deadline: a worker whose model never loads stops the server, as a
        model that cannot load does, rather than answer 503 for ever."""
        if self._ready.is_set():
            return
        log.error(
            "The %s model in %s did not load within %g s (SMVISION_MODEL_LOAD_TIMEOUT); check "
            "that its files can be read, or raise SMVISION_MODEL_LOAD_TIMEOUT. Stopping the "
            "server.",
            self.settings.algorithm,
            self.settings.model_dir,
            self.settings.load_timeout_s,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(LOAD_FAILURE_EXIT_CODE)

    def _load(self, loop: asyncio.AbstractEventLoop) -> None:
        started = time.perf_counter()
        try:
            model = LoadedModel.load(self.settings.model_dir, self.settings)
        except BaseException:  # a worker without a model must not pretend to serve
            log.exception(
                "Could not load the %s model in %s; stopping the server.",
                self.settings.algorithm,
                self.settings.model_dir,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(LOAD_FAILURE_EXIT_CODE)
        self._model = model
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
                allow(method, "POST")
                if self._models is not None:
                    raise HTTPError(
                        404,
                        "This is a multi-model server "
                        "(SAGEMAKER_MULTI_MODEL=true): POST /models/NAME/invoke.",
                    )
                await self._invoke(scope, receive, send, self._single_model)
            elif path == "/ping":
                allow(method, "GET")
                if not self._ready.is_set():
                    raise HTTPError(503, "The model is still loading; ask again shortly.")
                await respond(send, 200, b'{"status": "ready"}', JSON_TYPE)
            elif path == "/execution-parameters":
                allow(method, "GET")
                await respond(send, 200, self._execution_parameters, JSON_TYPE)
            elif self._models is not None and self._models.serves(path):
                await self._models(scope, receive, send)
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
            await respond(send, error.status, body, JSON_TYPE, error.headers)

    async def _single_model(self) -> LoadedModel:
        await self._ready.wait()
        if self._model is None:
            raise RuntimeError("The ready event was set before the model was loaded.")
        return self._model

    async def _invoke(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        model: Callable[[], Awaitable[LoadedModel]],
    ) -> None:
        """Answer one request with the model that `model()` gives, once it is ready."""
        try:
            content_type = check_content_type(header(scope, b"content-type"))
            accept = choose_accept(header(scope, b"accept"))
            attributes = header(scope, b"x-amzn-sagemaker-custom-attributes")
            top_k, threshold = parse_top_k(attributes), parse_threshold(attributes)
            coverage, max_set_size = parse_coverage(attributes), parse_max_set_size(attributes)
            views = parse_tta(attributes)
        except UnsupportedContentTypeError as error:
            raise HTTPError(415, str(error)) from error
        except UnsupportedAcceptError as error:
            raise HTTPError(406, str(error)) from error
        except InputError as error:
            raise HTTPError(400, str(error)) from error
        # One deadline for the whole request, from its first byte of body to its answer.
        body_receive = TimedBody(receive)
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                body = None
                if content_type != JSON_LINES:
                    body = await self._read_body(scope, body_receive)
                ready = await model()

                async def predict(group: Group, group_accept: str) -> bytes:
                    request = Request(
                        group.body,
                        JSON_LINES,
                        group_accept,
                        top_k,
                        threshold=threshold,
                        first_line=group.first_line,
                        coverage=coverage,
                        max_set_size=max_set_size,
                        tta=views,
                    )
                    return await asyncio.wrap_future(ready.batcher.submit(request))

                if body is None:
                    answer = await answer_in_groups(
                        self._body_chunks(scope, body_receive),
                        predict,
                        accept,
                        MAX_BATCH_IMAGES,
                        self.settings.threads_per_worker + 1,
                    )
                else:
                    request = Request(
                        body,
                        content_type,
                        accept,
                        top_k,
                        threshold=threshold,
                        coverage=coverage,
                        max_set_size=max_set_size,
                        tta=views,
                    )
                    answer = Answer.of(await asyncio.wrap_future(ready.batcher.submit(request)))
        except HTTPError:
            raise
        except TimeoutError as error:
            if body_receive.waiting:
                raise body_receive.stalled(scope, self.settings.timeout_s) from error
            raise HTTPError(
                504,
                f"The request took longer than {self.settings.timeout_s:g} s "
                "(SAGEMAKER_MODEL_SERVER_TIMEOUT); send fewer or smaller images per request, "
                "or raise the limit.",
            ) from error
        except CLIENT_ERRORS as error:
            raise HTTPError(400, str(error)) from error
        except BatcherStoppedError as error:
            raise HTTPError(error.status, str(error)) from error
        except Exception as error:
            log.exception("Internal error on a %s request", content_type)
            raise HTTPError(
                500, f"Internal error ({type(error).__name__}: {error}); see the server log."
            ) from error
        whole = answer.whole()
        if whole is not None:
            await respond(send, 200, whole, accept.encode())
        else:
            await respond_in_chunks(send, answer.size, answer.chunks(), accept.encode())

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body, within SAGEMAKER_MAX_PAYLOAD_IN_MB."""
        return await read_body(scope, receive, self.settings.max_payload_bytes, self._too_large)

    def _body_chunks(self, scope: Scope, receive: Receive) -> AsyncIterator[bytes]:
        """The body as it arrives, within SAGEMAKER_MAX_PAYLOAD_IN_MB."""
        return body_chunks(scope, receive, self.settings.max_payload_bytes, self._too_large)

    def _too_large(self, what: str) -> HTTPError:
        # Closing the connection spares reading the rest of a body nobody will use.
        return HTTPError(
            413,
            f"{what}, more than the {self.settings.max_payload_mb:g} MB "
            f"({self.settings.max_payload_bytes} bytes) that SAGEMAKER_MAX_PAYLOAD_IN_MB allows; "
            "split it into smaller requests.",
            headers=[(b"connection", b"close")],
        )


def _whole_if_whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
