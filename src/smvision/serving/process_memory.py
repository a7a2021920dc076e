"""Memory, as a multi-model server counts it: this process's, the container's, a model's.

Linux reports them in /proc and the cgroup files (what SageMaker runs); elsewhere (local
runs on macOS) the process's peak stands in for its current size and the container has
no limit of its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
_STATM = Path("/proc/self/statm")
_MEMINFO = Path("/proc/meminfo")
# cgroup v2, then v1; a v1 limit this large means "no limit".
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)
_NO_LIMIT = 1 << 60


def resident_mb() -> float:
    """This process's resident memory (RSS) in MiB."""
    try:
        pages = int(_STATM.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (MIB if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux
    return pages * os.sysconf("SC_PAGE_SIZE") / MIB


def container_memory_mb() -> float | None:
    """The memory this container may use: its cgroup limit, else the machine's; None when
    neither can be read."""
    found: list[float] = []
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < _NO_LIMIT:
            found.append(int(text) / MIB)
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                found.append(int(line.split()[1]) / 1024)
    except (OSError, ValueError, IndexError):
        pass
    return min(found) if found else None


def size_on_disk_mb(files: Iterable[Path]) -> float:
    """The bytes of `files` (those that exist), in MiB."""
    return sum(path.stat().st_size for path in files if path.is_file()) / MIB


# Engines whose models leave reference cycles behind when unloaded (a Keras model and its
# traced functions refer to each other): 78,540 objects after twenty digits cnns on
# TensorFlow, none after twenty svms or twenty cnns on TFLite, which refcounting frees.
ENGINES_WITH_CYCLES = frozenset({"tensorflow"})


def release_freed_memory(collect: bool = True) -> None:
    """Collect unreachable objects (with `collect`: a full collection holds the GIL from
    start to end, 0.1 s with scikit-learn loaded, 0.3 s with TensorFlow, so only where
    there are cycles to find) and hand the allocator's free pages back to the system, so
    that RSS shows what an unloaded model gave up; glibc keeps them otherwise."""
    if collect:
        gc.collect()
    library = ctypes.util.find_library("c")
    if library is None:
        return
    trim = getattr(ctypes.CDLL(library), "malloc_trim", None)
    if trim is not None:
        trim(0)


class SharedRelease:
    """`release_freed_memory` for many callers at once: each caller's future is done after
    a release that began after it asked, and the callers that ask while one runs share the
    next, which collects garbage if any of them asked for that. Sixty DELETEs that each ran
    their own full collection, holding the GIL, kept the event loop, and with it /ping,
    waiting 8.5 s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: list[Future[None]] = []
        self._collect = False
        self._running = False

    @property
    def waiting(self) -> int:
        """Callers waiting for a release that has not begun."""
        with self._lock:
            return len(self._asked)

    def request(self, collect: bool) -> Future[None]:
        """A release after this call; with a garbage collection if `collect`."""
        future: Future[None] = Future()
        with self._lock:
            self._asked.append(future)
            self._collect |= collect
            if self._running:
                return future
            self._running = True
        threading.Thread(target=self._run, name="memory-release", daemon=True).start()
        return future

    def _run(self) -> None:
        while True:
            with self._lock:
                served, self._asked = self._asked, []
                collect, self._collect = self._collect, False
                if not served:
                    self._running = False
                    return
            try:
                release_freed_memory(collect)
            except Exception as error:
                for future in served:
                    future.set_exception(error)
            else:
                for future in served:
                    future.set_result(None)


@dataclass(frozen=True)
class ServingMemory:
    """What a multi-model server reserves for a model before loading it: the engine's own
    memory when its first model loads (counted once: it stays loaded), then per model a
    fixed part and a multiple of the model's size on disk."""

    runtime_mb: float
    per_model_mb: float
    per_disk_mb: float

    def model_mb(self, size_on_disk_mb: float) -> float:
        return self.per_model_mb + self.per_disk_mb * size_on_disk_mb


# A compile of a Keras model to TFLite, in a child process that imports TensorFlow: held
# while it runs (serving.models.compile_in_child), one at a time.
COMPILE_CHILD_MB = 800.0
# By the engine that runs the model (serving.models.engine), measured as the RSS growth
# of `serve` loading and warming up models trained on the digits, with about a fifth
# added (tests/server/test_multi_model.py reports the figures).
SERVING_MEMORY = {
    # svm, rf: 160-170 MiB for the first model (scikit-learn, SciPy, the first prediction's
    # buffers), then 1.4-1.8 MiB per model of 1.4-1.6 MB on disk.
    "scikit-learn": ServingMemory(runtime_mb=200, per_model_mb=2, per_disk_mb=1.5),
    # cnn compiled to TFLite: 23-27 MiB for the first model (LiteRT and XNNPACK), then
    # 7.6 MiB per model of 1.2 MB on disk (the float32 flatbuffer, and XNNPACK's buffers for
    # each of the fixed batch sizes).
    "tflite": ServingMemory(runtime_mb=30, per_model_mb=4, per_disk_mb=5),
    # svm and rf compiled to ONNX by train: 51 MiB for the first model (ONNX Runtime), then
    # 18.8 MiB per svm of 6.3 MB on disk and 24.5 MiB per rf (300 trees) of 5.2 MB: ONNX
    # Runtime unpacks a forest's nodes into its own tables.
    "onnx": ServingMemory(runtime_mb=60, per_model_mb=4, per_disk_mb=5.5),
    # cnn on TensorFlow: 645 MiB for the first model (TensorFlow and its first trace), then
    # 3-5 MiB per model of 1.2 MB on disk.
    "tensorflow": ServingMemory(runtime_mb=800, per_model_mb=4, per_disk_mb=3),
}


def serving_memory(engine: str) -> ServingMemory:
    """An engine's figures; one not measured gets TensorFlow's, the largest."""
    return SERVING_MEMORY.get(engine, SERVING_MEMORY["tensorflow"])
