"""Micro-batching: one thread predicts whatever requests queued up while it was busy.

There is no waiting window: an idle batcher takes a lone request at once, and under load
every request that arrived during one prediction goes into the next, so a batch grows
with the load and latency never waits on a timer. Keras models predict a batch of 32
nearly as fast as one image; scikit-learn saves its per-call overhead.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchFunction = Callable[[Sequence[Item]], Sequence[Result | Exception]]


class BatcherStoppedError(RuntimeError):
    """A request submitted after the batcher stopped."""


class MicroBatcher(Generic[Item, Result]):
    """Queue items from any thread; one thread runs `process` on up to `max_batch` at a time.

    `process` returns one result or one exception per item, in order, so a bad item
    fails alone. Items whose future was cancelled (the caller timed out) are skipped.
    """

    def __init__(
        self, process: BatchFunction[Item, Result], max_batch: int, name: str = "inference"
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch is {max_batch}; it must be at least 1.")
        self._process = process
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: Item) -> Future[Result]:
        if self._stopping:
            raise BatcherStoppedError("The server is shutting down; send the request again.")
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future

    def stop(self, timeout: float) -> None:
        """Finish what is queued, then end the thread (waiting at most `timeout` seconds)."""
        self._stopping = True
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        finished = False
        while not finished:
            batch: list[tuple[Item, Future[Result]]] = []
            entry = self._queue.get()
            while entry is not None:
                if entry[1].set_running_or_notify_cancel():
                    batch.append(entry)
                if len(batch) >= self._max_batch:
                    break
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
            finished = entry is None
            if batch:
                self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        try:
            results = self._process([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(batch)} items in, {len(results)} results out")
        except Exception as error:  # answer every caller; the thread must live on
            log.exception("Batch of %d failed", len(batch))
            results = [error] * len(batch)
        for (_, future), result in zip(batch, results):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
