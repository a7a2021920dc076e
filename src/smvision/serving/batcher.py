"""Micro-batching: a thread takes whatever requests queued up while it was busy.

There is no waiting window: an idle batcher takes a lone request at once, and under load
every request that arrived during one batch goes into the next, so a batch grows with
the load and latency never waits on a timer. Keras models predict a batch of 32 nearly
as fast as one image; scikit-learn saves its per-call overhead.

With `threads=2`, two threads take turns: while one runs its batch, the other takes the
requests that arrive meanwhile and starts on them, so that (with `Predictor.respond`,
which predicts under a lock) the next batch is decoded while the current one is
predicted. Alone, one thread decoded a batch, predicted it, answered it and only then
took the next: with one cnn worker on 2 cores, the cores idled in turn (bench/NOTES.md).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchFunction = Callable[[Sequence[Item]], Iterable[Result | Exception]]
Entry = tuple[Item, Future[Result]]


SHUTTING_DOWN = "The server is shutting down; send the request again."


class BatcherStoppedError(RuntimeError):
    """A request submitted after the batcher stopped: the HTTP status to answer, and why."""

    def __init__(self, message: str = SHUTTING_DOWN, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


class MicroBatcher(Generic[Item, Result]):
    """Queue items from any thread; `threads` threads run `process` on up to `max_batch` at
    a time each.

    `process` yields one result or one exception per item, in order, so a bad item fails
    alone, and each caller gets its answer as soon as it is yielded. With several threads,
    `process` runs on several batches at once: it must guard what may not be shared.
    Items whose future was cancelled (the caller timed out) are skipped. Every future that
    `submit` returns is resolved, also when the batcher stops meanwhile.

    `waiting` is the queue submitted items wait in (a new SimpleQueue unless given): a
    test passes its own to run stop() at the exact moment an item is handed over.
    """

    def __init__(
        self,
        process: BatchFunction[Item, Result],
        max_batch: int,
        name: str = "inference",
        threads: int = 1,
        waiting: queue.SimpleQueue[Entry[Item, Result] | None] | None = None,
    ) -> None:
        if max_batch < 1 or threads < 1:
            raise ValueError(
                f"max_batch is {max_batch} and threads {threads}; each must be at least 1."
            )
        self._process = process
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Entry[Item, Result] | None] = (
            queue.SimpleQueue() if waiting is None else waiting
        )
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}_{index}", daemon=True)
            for index in range(threads)
        ]
        self._running = threads
        self._running_lock = threading.Lock()
        self._stopping = False
        self._finished = False
        self._stopped_why = (SHUTTING_DOWN, 503)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, item: Item) -> Future[Result]:
        if self._stopping:
            raise self._stopped()
        future: Future[Result] = Future()
        self._queue.put((item, future))
        # stop() may have queued its sentinel between the check above and the put, and the
        # threads may have ended before this entry arrived: then nobody else will answer it.
        if self._finished:
            self._fail_leftovers()
        return future

    def stop(self, timeout: float | None, why: str = SHUTTING_DOWN, status: int = 503) -> None:
        """Finish what is queued, then end the threads (waiting at most `timeout` seconds in
        all, or until they have ended); later submits fail with `why` and `status`."""
        self._stopped_why = (why, status)
        self._stopping = True
        self._queue.put(None)  # each thread that meets it puts it back for the next
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        finished = False
        while not finished:
            batch: list[Entry[Item, Result]] = []
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
            if finished:
                self._queue.put(None)
            if batch:
                self._run_batch(batch)
        with self._running_lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self._finished = True
            self._fail_leftovers()

    def _run_batch(self, batch: list[Entry[Item, Result]]) -> None:
        answered = 0
        try:
            for (_, future), result in zip(batch, self._process([item for item, _ in batch])):
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
                answered += 1
            if answered != len(batch):
                raise RuntimeError(f"{len(batch)} items in, {answered} results out")
        except Exception as error:  # answer every caller; the thread must live on
            log.exception("Batch of %d failed", len(batch))
            for _, future in batch[answered:]:
                future.set_exception(error)

    def _fail_leftovers(self) -> None:
        """Answer entries that arrived after the threads ended (any thread may call this)."""
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if entry is not None and entry[1].set_running_or_notify_cancel():
                entry[1].set_exception(self._stopped())

    def _stopped(self) -> BatcherStoppedError:
        return BatcherStoppedError(*self._stopped_why)
