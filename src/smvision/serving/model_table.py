"""The models of a multi-model endpoint: loaded when SageMaker asks, listed, unloaded.

SageMaker sends POST /models {"model_name", "url"} for a model it has unpacked under
/opt/ml/models, GET /models and GET /models/NAME to see what is loaded, and DELETE
/models/NAME to make room (it evicts the least recently used models when a load answers
507). The table of models changes only on the event loop; loading (reading the files,
compiling, the warm-up prediction) and unloading (stopping the model's inference thread)
run in daemon threads of their own, an unload never behind a load, so requests to the
other models go on meanwhile. A request holds its model from its look-up to its answer
(`using`); DELETE makes new look-ups 404 at once and frees the model once none holds it.

Every wait has a deadline. A load (its plan, its wait for a load slot, reading the files,
compiling, the warm-up) gets 408 once SMVISION_MODEL_LOAD_TIMEOUT passes, and DELETE
cancels a load under way: either way its slot is free at once for the next load, and the
thread, which Python cannot stop, is left to end on its own (its compile is killed); the
model it may yet make is stopped, and its memory stays reserved until then. An unload waits
for the requests in flight and then for the model's threads, within the request timeout
and BATCHER_STOP_S more; past that it answers 504, and the model is forgotten once its
inference thread ends.

Before a model loads, the memory it will take is reserved against a budget
(SMVISION_MODELS_MEMORY_MB, else most of what the container has beyond the server
itself): the estimate of `memory.serving_memory` for the engine that will run it, from
the size of the files it loads, and while it loads the compile's child process. A model
that would not fit now is refused with 507 before anything is loaded, and SageMaker
unloads others and asks again; one that would not fit with no other loaded gets 413.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar

from smvision.serving import process_memory

log = logging.getLogger("smvision.serve")

# Loads of different models overlap, up to this many; plans and unloads run beside them
# (never queued behind loads: SageMaker's DELETE to make room must not wait for one).
LOADER_THREADS = 4
# The page size of GET /models when the request names none, as Multi Model Server pages.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A share of the container's memory beyond the server's own left for request bodies in
# flight and for what else runs in the container.
HEADROOM = 0.1
# Engines that must not load two models at once in one process (Keras builds its
# models in process-wide state).
LOAD_ONE_AT_A_TIME = frozenset({"tensorflow"})
# How often a load waiting for its engine's lock looks whether it was given up.
LOCK_POLL_S = 0.5


class Stoppable(Protocol):
    def stop(self, timeout: float | None) -> None: ...

    def unload(self, name: str) -> None: ...


Model = TypeVar("Model", bound=Stoppable)
T = TypeVar("T")


class LoadGivenUpError(RuntimeError):
    """A load that nobody waits for any more, ended before it began."""


class ModelTableError(Exception):
    """A /models request that cannot be done, with its HTTP status and the sentence why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ModelPlan:
    """What loading a model will take, found before it loads."""

    engine: str
    # Of the files the engine will read.
    size_on_disk_mb: float
    # Held while the model loads only (a compile in a child process).
    loading_mb: float = 0.0


@dataclass
class LoadProgress:
    """How far a load got: its plan, its wait for a load slot, or the load itself."""

    stage: Literal["plan", "slot", "load"] = "plan"


@dataclass
class Entry(Generic[Model]):
    name: str
    url: str
    reserved_mb: float
    engine: str = ""
    # None while the model loads.
    model: Model | None = None
    loaded_at: float = field(default=0.0)
    # Requests that hold the model, from their look-up to their answer; once `draining`
    # (DELETE came), look-ups get 404 and the unload waits until `idle`.
    in_flight: int = 0
    draining: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    # While the model loads: the task that waits for it, which DELETE cancels.
    loading: asyncio.Future[Model] | None = None
    cancelled: bool = False

    def __post_init__(self) -> None:
        self.idle.set()


@dataclass(frozen=True)
class Unloaded:
    name: str
    freed_mb: float
    resident_mb: float
    seconds: float


class ModelTable(Generic[Model]):
    """Loaded models by SageMaker's model_name (an opaque key)."""

    def __init__(
        self,
        plan: Callable[[Path], ModelPlan],
        load: Callable[[Path, threading.Event], Model],
        budget_mb: float,
        stop_timeout_s: float,
        load_timeout_s: float,
        unload_timeout_s: float,
    ) -> None:
        self._plan = plan
        self._load = load
        self.budget_mb = budget_mb
        self._stop_timeout_s = stop_timeout_s
        self._load_timeout_s = load_timeout_s
        self._unload_timeout_s = unload_timeout_s
        self._entries: dict[str, Entry[Model]] = {}
        # Engines whose own memory is counted (once: an engine stays imported).
        self._engines: dict[str, float] = {}
        self._engine_locks = {engine: threading.Lock() for engine in LOAD_ONE_AT_A_TIME}
        # Taken on the event loop, so that a load given up frees its slot at once.
        self._load_slots = asyncio.Semaphore(LOADER_THREADS)
        # Memory reserved by loads given up whose threads have not ended yet.
        self._abandoned_mb = 0.0
        self.memory_release = process_memory.SharedRelease()

    @property
    def reserved_mb(self) -> float:
        return (
            sum(self._engines.values())
            + sum(e.reserved_mb for e in self._entries.values())
            + self._abandoned_mb
        )

    async def load(self, name: str, url: str) -> Model:
        """Load the model in `url` as `name` and warm it up, within the load timeout; 409,
        404, 408 or 507 otherwise."""
        progress = LoadProgress()
        try:
            async with asyncio.timeout(self._load_timeout_s):
                return await self._load_within_deadline(name, url, progress)
        except TimeoutError as error:
            raise ModelTableError(
                408,
                f"Model {name} did not load within {self._load_timeout_s:g} s "
                f"(SMVISION_MODEL_LOAD_TIMEOUT): {self._waited_for(name, progress)}. Check "
                f"that the files in {url} can be read; a Keras model's first load compiles "
                "it, which takes longer on a busy instance: raise SMVISION_MODEL_LOAD_TIMEOUT.",
            ) from error

    def _waited_for(self, name: str, progress: LoadProgress) -> str:
        if progress.stage == "slot":
            others = sorted(n for n, e in self._entries.items() if e.model is None and n != name)
            return (
                f"it waited all that time for one of the {LOADER_THREADS} load slots, "
                f"which the loads of {', '.join(others) or 'other models'} held"
            )
        if progress.stage == "load":
            return "reading its files, compiling and warming it up took all that time"
        return "reading its metadata.json took all that time"

    async def _load_within_deadline(self, name: str, url: str, progress: LoadProgress) -> Model:
        started = time.perf_counter()
        if name in self._entries:
            present = self._entries[name]
            if present.draining:
                raise ModelTableError(
                    409,
                    f"Model {name} is being unloaded; load it again "
                    f"once DELETE /models/{name} has answered.",
                )
            state = "loaded" if present.model is not None else "loading"
            raise ModelTableError(
                409,
                f"Model {name} is already {state}; DELETE /models/{name} first to load it again.",
            )
        try:
            plan = await asyncio.wrap_future(in_thread("model-planner", self._plan, Path(url)))
        except FileNotFoundError as error:
            raise ModelTableError(404, f"No model at {url}: {error}") from error
        except ValueError as error:
            raise ModelTableError(404, f"No model smvision can serve at {url}: {error}") from error
        if name in self._entries:  # another request loaded it while the plan was made
            raise ModelTableError(409, f"Model {name} is already loading.")
        reservation = self._reserve(name, plan)
        entry: Entry[Model] = Entry(name, url, reservation + plan.loading_mb, plan.engine)
        self._entries[name] = entry
        resident = process_memory.resident_mb()
        progress.stage = "slot"
        loading = asyncio.ensure_future(self._load_in_slot(entry, plan, Path(url), progress))
        entry.loading = loading
        try:
            model = await loading
        except BaseException:
            loading.cancel()
            self._forget(name, entry)
            if loading.done() and not loading.cancelled() and loading.exception() is None:
                in_thread("model-stopper", loading.result().stop, self._stop_timeout_s)
            if entry.cancelled and not _cancelling():
                raise ModelTableError(
                    409, f"The load of model {name} was cancelled by DELETE /models/{name}."
                ) from None
            raise
        if entry.cancelled:  # DELETE came as the load ended
            self._forget(name, entry)
            in_thread("model-stopper", model.stop, self._stop_timeout_s)
            raise ModelTableError(
                409, f"The load of model {name} was cancelled by DELETE /models/{name}."
            )
        entry.model, entry.loading = model, None
        entry.loaded_at, entry.reserved_mb = time.time(), reservation
        log.info(
            "Model %s (%s, %.1f MB on disk) loaded and warmed up in %.2f s; resident "
            "memory %+.1f MiB (%.1f MiB reserved).",
            name,
            plan.engine,
            plan.size_on_disk_mb,
            time.perf_counter() - started,
            process_memory.resident_mb() - resident,
            reservation,
        )
        return model

    async def _load_in_slot(
        self, entry: Entry[Model], plan: ModelPlan, url: Path, progress: LoadProgress
    ) -> Model:
        """The model, loaded in a thread of its own once one of the load slots is free; the
        slot is free again as soon as nobody waits for the load (it is cancelled)."""
        async with self._load_slots:
            progress.stage = "load"
            given_up = threading.Event()
            loading = in_thread("model-loader", self._load_one, plan, url, given_up)
            try:
                return await asyncio.wrap_future(loading)
            except asyncio.CancelledError:
                given_up.set()
                self._abandon(entry, loading)
                raise

    def _abandon(self, entry: Entry[Model], loading: Future[Model]) -> None:
        """A load nobody waits for: its memory stays reserved until its thread ends, and
        the model it may yet make is stopped."""
        if loading.done():
            self._stop_if_loaded(loading)
            return
        reserved = entry.reserved_mb
        self._abandoned_mb += reserved
        loop = asyncio.get_running_loop()
        log.warning(
            "Model %s: its load was given up while its thread still runs (Python cannot "
            "stop it); %.0f MiB stay reserved until it ends, and what it loads is stopped.",
            entry.name,
            reserved,
        )

        def ended(finished: Future[Model]) -> None:
            self._stop_if_loaded(finished)
            with suppress(RuntimeError):  # the loop is closed: the server has stopped
                loop.call_soon_threadsafe(self._unreserve_abandoned, entry.name, reserved)

        loading.add_done_callback(ended)

    def _unreserve_abandoned(self, name: str, reserved: float) -> None:
        self._abandoned_mb = max(0.0, self._abandoned_mb - reserved)
        log.info("Model %s: the thread of its given-up load ended; %.0f MiB free.", name, reserved)

    def _stop_if_loaded(self, loading: Future[Model]) -> None:
        if not loading.cancelled() and loading.exception() is None:
            loading.result().stop(self._stop_timeout_s)

    def _reserve(self, name: str, plan: ModelPlan) -> float:
        """The memory the model will hold once loaded, reserved (with what it holds while
        it loads); 413 if it could never fit, 507 if it does not fit now."""
        figures = process_memory.serving_memory(plan.engine)
        need = figures.model_mb(plan.size_on_disk_mb)
        engine = 0.0 if plan.engine in self._engines else figures.runtime_mb
        engines = sum(self._engines.values())  # stay loaded when every model is unloaded
        while_loading = (
            f", {plan.loading_mb:.0f} MiB of it while it loads: the compile's child process"
            if plan.loading_mb
            else ""
        )
        if engines + engine + need + plan.loading_mb > self.budget_mb:
            raise ModelTableError(
                413,
                f"Model {name} needs about {need + engine + plan.loading_mb:.0f} MiB "
                f"({plan.engine}, "
                f"{plan.size_on_disk_mb:.1f} MB on disk{while_loading}), more than the "
                f"{self.budget_mb - engines:.0f} MiB this server can give a model even with "
                f"no other loaded (SMVISION_MODELS_MEMORY_MB is {self.budget_mb:.0f} MiB); "
                "raise SMVISION_MODELS_MEMORY_MB or use an instance with more memory.",
            )
        if self.reserved_mb + need + engine + plan.loading_mb > self.budget_mb:
            raise ModelTableError(
                507,
                f"Model {name} needs about {need + engine + plan.loading_mb:.0f} MiB "
                f"({plan.engine}{while_loading}); "
                f"{self.reserved_mb:.0f} of the {self.budget_mb:.0f} MiB for models "
                f"(SMVISION_MODELS_MEMORY_MB) are taken; unload a model first.",
            )
        if engine:
            self._engines[plan.engine] = engine
        return need

    def _load_one(self, plan: ModelPlan, url: Path, given_up: threading.Event) -> Model:
        lock = self._engine_locks.get(plan.engine)
        if lock is None:
            return self._load(url, given_up)
        while not lock.acquire(timeout=LOCK_POLL_S):  # behind another load of its engine
            if given_up.is_set():
                raise LoadGivenUpError(f"The load of {url} was given up before it began.")
        try:
            return self._load(url, given_up)
        finally:
            lock.release()

    def get(self, name: str) -> tuple[str, Model]:
        """A loaded model's url and model; 404 when there is none by that name."""
        entry = self._serving(name)
        assert entry.model is not None
        return entry.url, entry.model

    @asynccontextmanager
    async def using(self, name: str) -> AsyncIterator[Model]:
        """The loaded model `name` (404 otherwise), which an unload leaves running until
        every request that holds it this way has been answered."""
        entry = self._serving(name)
        assert entry.model is not None
        entry.in_flight += 1
        entry.idle.clear()
        try:
            yield entry.model
        finally:
            entry.in_flight -= 1
            if entry.in_flight == 0:
                entry.idle.set()

    def _serving(self, name: str) -> Entry[Model]:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelTableError(404, f"Model {name} is not loaded; POST /models loads it.")
        if entry.draining:
            raise ModelTableError(
                404,
                f"Model {name} is being unloaded; POST /models loads it "
                f"again once DELETE /models/{name} has answered.",
            )
        if entry.model is None:
            raise ModelTableError(
                404, f"Model {name} is still loading; ask again once POST /models has answered."
            )
        return entry

    def page(
        self, token: str | None, limit: str | None
    ) -> tuple[list[tuple[str, str]], str | None]:
        """Loaded models (name, url) in name order after `token`, and the next page's token."""
        size = DEFAULT_PAGE_SIZE
        if limit is not None:
            if not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE_SIZE:
                raise ModelTableError(
                    400,
                    f"The limit '{limit}' must be a whole number from 1 to {MAX_PAGE_SIZE}.",
                )
            size = int(limit)
        after = decode_page_token(token) if token else None
        names = sorted(
            n
            for n, e in self._entries.items()
            if e.model is not None and not e.draining and (after is None or n > after)
        )
        shown = names[:size]
        more = len(names) > size
        return (
            [(n, self._entries[n].url) for n in shown],
            encode_page_token(shown[-1]) if more else None,
        )

    async def cancel_load(self, name: str) -> bool:
        """Cancel the load of `name` if it is under way (its POST gets 409); whether it was."""
        entry = self._entries.get(name)
        if entry is None or entry.model is not None or entry.loading is None:
            return False
        entry.cancelled = True
        entry.loading.cancel()
        await asyncio.wait({entry.loading})
        log.info("Model %s: its load was cancelled by DELETE.", name)
        return True

    async def unload(self, name: str) -> Unloaded:
        """Stop serving `name` and free its memory: new requests to it get 404 at once; the
        requests in flight are answered first, then its threads end, then it is freed; all
        within the unload timeout, else 504 (and it is forgotten once its threads end)."""
        entry = self._serving(name)  # a 404 unless it is loaded
        entry.draining = True
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._unload_timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                await entry.idle.wait()
        except TimeoutError:  # answers their clients do not read: they need no model
            log.warning(
                "Model %s: %d request(s) still held it %g s after DELETE; unloading it anyway.",
                name,
                entry.in_flight,
                self._unload_timeout_s,
            )
        held = [entry.model]
        entry.model = None
        before = process_memory.resident_mb()

        def stop() -> None:
            model = held.pop()
            if model is not None:
                model.unload(name)
            del model  # the last reference

        stopping = in_thread("model-unloader", stop)
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.wrap_future(stopping)
        except TimeoutError as error:
            stopping.add_done_callback(
                lambda _: loop.call_soon_threadsafe(self._forget, name, entry)
            )
            raise ModelTableError(
                504,
                f"Model {name} takes no more requests, but its inference thread was still "
                f"busy {self._unload_timeout_s:g} s after DELETE (a prediction that does not "
                "end); it is unloaded, and its memory freed, once that prediction ends.",
            ) from error
        except BaseException:
            self._forget(name, entry)
            raise
        self._forget(name, entry)
        collect = entry.engine in process_memory.ENGINES_WITH_CYCLES
        await asyncio.wrap_future(self.memory_release.request(collect))
        after = process_memory.resident_mb()
        unloaded = Unloaded(name, before - after, after, time.perf_counter() - started)
        log.info(
            "Model %s unloaded in %.2f s; resident memory %+.1f MiB, now %.0f MiB.",
            name,
            unloaded.seconds,
            -unloaded.freed_mb,
            after,
        )
        return unloaded

    def _forget(self, name: str, entry: Entry[Model]) -> None:
        if self._entries.get(name) is entry:
            del self._entries[name]

    async def stop(self, timeout: float) -> None:
        """Stop every model's inference thread (the server is shutting down): all at once,
        within `timeout` seconds in all, off the event loop."""
        stopping = [
            asyncio.wrap_future(in_thread("model-stopper", entry.model.stop, timeout))
            for entry in self._entries.values()
            if entry.model is not None
        ]
        if stopping:
            await asyncio.wait(stopping, timeout=timeout)


def _cancelling() -> bool:
    """Whether this task is being cancelled (its deadline passed, or the server stops)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def in_thread(name: str, function: Callable[..., T], *args: object) -> Future[T]:
    """`function(*args)` in a daemon thread of its own: a load that never ends (a model
    stuck in its files) must not keep the process from exiting when the server stops."""
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function(*args))
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def default_budget_mb(container_mb: float | None, server_mb: float) -> float:
    """The container's memory less the server's own and some headroom; no limit when the
    container's memory cannot be read."""
    if container_mb is None:
        return math.inf
    return max(0.0, container_mb * (1 - HEADROOM) - server_mb)


def encode_page_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def decode_page_token(token: str) -> str:
    try:
        name = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
        if not name:
            raise ValueError("an empty name")
        return name
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise ModelTableError(
            400,
            f"The next_page_token '{token}' is not one this server gave; list from the first page.",
        ) from error
