"""The model API of a multi-model endpoint, as SageMaker calls it (SAGEMAKER_MULTI_MODEL=true).

    POST   /models                 {"model_name": NAME, "url": DIR}: load and warm up; 200
                                   when ready, 409 if loaded (or cancelled), 404 if DIR
                                   holds no model or lies outside the model root, 408 if
                                   it did not load in time, 507 if it would not fit the
                                   memory budget now, 413 never
    GET    /models                 [?next_page_token=T&limit=N]: {"models": [{"modelName",
                                   "modelUrl"}], "nextPageToken"} (100 a page by default)
    GET    /models/NAME            {"modelName", "modelUrl"}; 404 if not loaded
    DELETE /models/NAME            unload; the answer says how much memory it freed; a
                                   model still loading: its load is cancelled
    POST   /models/NAME/invoke     as POST /invocations, answered by model NAME

The table of models is smvision.serving.model_table's; an invocation takes the same path
as one of a single-model server (`ServingApp._invoke`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from smvision.core.artifacts import ModelFileError
from smvision.serving.http import (
    HTTPError,
    Receive,
    Scope,
    Send,
    TimedBody,
    allow,
    query,
    read_body,
    respond_json,
)
from smvision.serving.loading import LoadedModel
from smvision.serving.model_table import ModelTable, ModelTableError

PREFIX = "/models"
INVOKE_SUFFIX = "/invoke"
# A POST /models body is a small JSON object.
MAX_LOAD_REQUEST_BYTES = 64 * 1024

Invoke = Callable[[Scope, Receive, Send, Callable[[], Awaitable[LoadedModel]]], Awaitable[None]]


class ModelRoutes:
    """The /models routes over the model table; `invoke` answers a request with a given model."""

    def __init__(
        self, table: ModelTable[LoadedModel], invoke: Invoke, body_timeout_s: float
    ) -> None:
        self.table = table
        self._invoke = invoke
        self._body_timeout_s = body_timeout_s

    @staticmethod
    def serves(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        name = path[len(PREFIX) + 1 :]
        try:
            if not name:
                allow(method, "GET", "POST")
                if method == "GET":
                    await self._list(scope, send)
                else:
                    await self._load(scope, receive, send)
            elif name.endswith(INVOKE_SUFFIX) and len(name) > len(INVOKE_SUFFIX):
                allow(method, "POST")
                async with self.table.using(name[: -len(INVOKE_SUFFIX)]) as model:

                    async def loaded() -> LoadedModel:
                        return model

                    await self._invoke(scope, receive, send, loaded)
            else:
                allow(method, "GET", "DELETE")
                if method == "GET":
                    url = self.table.get(name)[0]
                    await respond_json(send, {"modelName": name, "modelUrl": url})
                elif await self.table.cancel_load(name):
                    await respond_json(send, {"modelName": name, "status": "cancelled"})
                else:
                    unloaded = await self.table.unload(name)
                    await respond_json(
                        send,
                        {
                            "modelName": name,
                            "status": "unloaded",
                            "freedMemoryMiB": round(unloaded.freed_mb, 1),
                            "residentMemoryMiB": round(unloaded.resident_mb, 1),
                        },
                    )
        except ModelTableError as error:
            raise HTTPError(error.status, error.message) from error

    async def _load(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = await _json_body(scope, receive, self._body_timeout_s)
        name, url = request.get("model_name"), request.get("url")
        if not (isinstance(name, str) and name.strip() and isinstance(url, str) and url):
            raise HTTPError(
                400,
                'POST /models takes {"model_name": NAME, "url": DIR}, with '
                f"both strings; got {json.dumps(request)[:200]}.",
            )
        try:
            await self.table.load(name, url)
        except ModelTableError:
            raise
        except ModelFileError as error:  # found only by loading it: another algorithm's file
            raise HTTPError(404, f"No model smvision can serve at {url}: {error}") from error
        except Exception as error:  # the model's files: SageMaker reports it to the caller
            raise HTTPError(
                500, f"Could not load model {name} from {url} ({type(error).__name__}: {error})."
            ) from error
        await respond_json(send, {"modelName": name, "modelUrl": url, "status": "loaded"})

    async def _list(self, scope: Scope, send: Send) -> None:
        shown, token = self.table.page(query(scope, "next_page_token"), query(scope, "limit"))
        document: dict[str, Any] = {
            "models": [{"modelName": name, "modelUrl": url} for name, url in shown]
        }
        if token is not None:
            document["nextPageToken"] = token
        await respond_json(send, document)


def _load_request_too_large(what: str) -> HTTPError:
    return HTTPError(
        413,
        f"A POST /models body is a small JSON object; {what}, more than {MAX_LOAD_REQUEST_BYTES}.",
        headers=[(b"connection", b"close")],
    )


async def _json_body(scope: Scope, receive: Receive, timeout_s: float) -> dict[str, Any]:
    body_receive = TimedBody(receive)
    try:
        async with asyncio.timeout(timeout_s):
            body = await read_body(
                scope, body_receive, MAX_LOAD_REQUEST_BYTES, _load_request_too_large
            )
    except TimeoutError as error:
        raise body_receive.stalled(scope, timeout_s) from error
    try:
        document = json.loads(body)
    except ValueError as error:
        raise HTTPError(400, f"The POST /models body is not JSON ({error}).") from error
    if not isinstance(document, dict):
        raise HTTPError(400, 'POST /models takes a JSON object {"model_name", "url"}.')
    return document
