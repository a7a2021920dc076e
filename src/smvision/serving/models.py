"""Which model `serve` runs from /opt/ml/model, and on what.

SMVISION_SERVE_FORMAT (contract.py) picks it: `auto` serves the export beside the trained
model when there is one (`train` writes an svm's or rf's ONNX, `smvision.local export` a
Keras model's TFLite or ONNX), else the trained model; `trained` ignores any export;
`tflite` and `onnx` ask for that export and fail at start without it. An export runs on
LiteRT or ONNX Runtime and needs neither TensorFlow nor scikit-learn: the image built with
RUNTIME=lite has neither.

A trained Keras model runs as SMVISION_KERAS_RUNTIME says, else as its algorithm's entry
in the table (specs.py): `tflite` (`onnx`) compiles it to a float32 TFLite flatbuffer (ONNX
model) in a child process (`python -m smvision.serving.export`) and serves that like an
export, so the worker itself never imports TensorFlow; in-process, the converter held the
GIL for seconds,
and /ping, which must answer within 2 s while the model loads, waited 24 s behind it.
`xla` and `tensorflow` run the Keras model in the worker
(`KerasAlgorithm.compile_for_serving`).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from smvision.algorithms.base import CLASSICAL_MODEL_FILE, KERAS_MODEL_FILE, Algorithm
from smvision.algorithms.exported import ExportedModel
from smvision.algorithms.features.backbones import keras_models_dir
from smvision.core.contract import EXPORT_FILE, METADATA_FILE
from smvision.model import runtimes
from smvision.schema import specs

# Loading TensorFlow and converting a large model takes a while on a busy small instance,
# and SageMaker gives a multi-model endpoint's load 360 s in all (files, compile, warm-up).
COMPILE_TIMEOUT_S = 300
# Compiled flatbuffers, by the SHA-256 of the Keras file: a model loaded again after an
# eviction is not compiled again. /tmp: the one place a serverless container may write.
COMPILE_CACHE = Path(tempfile.gettempdir()) / "smvision-tflite"
# One compile at a time: each child imports TensorFlow (hundreds of MiB).
_compiling = threading.Lock()
_children: set[subprocess.Popen[str]] = set()
_children_lock = threading.Lock()
# How often a compile (or a load waiting to compile) looks whether its load was given up.
GIVEN_UP_POLL_S = 0.5
# Set by a multi-model load (`loading.LoadedModel.load`) in the thread that runs it: once
# nobody waits for the load (its deadline passed, DELETE cancelled it), its compile is killed.
load_given_up: ContextVar[threading.Event | None] = ContextVar("load_given_up", default=None)


class ServableModel(Protocol):
    """What serving needs of a model: its input geometry, its classes, its predictions."""

    image_size: int
    channels: int
    class_count: int

    def predict_proba(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray: ...


class ExportError(ValueError):
    """An export that was asked for and is missing, or that cannot be read."""


@dataclass(frozen=True)
class Choice:
    """The model serve will run: the trained one (`export` None) or an export's record."""

    export: dict[str, Any] | None

    def describe(self) -> str:
        if self.export is None:
            return "the trained model"
        return f"its {self.export['format']} export, {self.export['quantize']}"


def choose(model_dir: Path, serve_format: str) -> Choice:
    """The model `serve_format` asks for in model_dir; fails at once when it is not there."""
    if serve_format == "trained":
        return Choice(None)
    path = model_dir / EXPORT_FILE
    if not path.is_file():
        if serve_format == "auto":
            return Choice(None)
        raise ExportError(
            f"SMVISION_SERVE_FORMAT is '{serve_format}' but {model_dir} holds no export "
            f"({EXPORT_FILE} is missing); run `python -m smvision.local export --format "
            f"{serve_format}` on the job, or unset the variable to serve the trained model."
        )
    try:
        record = json.loads(path.read_text())
        fmt, file_name = record["format"], record["file"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ExportError(
            f"{path} is not an export record ({error}); export the model again."
        ) from error
    if serve_format not in ("auto", fmt):
        raise ExportError(
            f"SMVISION_SERVE_FORMAT is '{serve_format}' but {model_dir} holds a {fmt} export; "
            f"export it as {serve_format}, or set the variable to auto or {fmt}."
        )
    if not (model_dir / file_name).is_file():
        raise ExportError(f"{path} names {file_name}, which is missing; export the model again.")
    return Choice(record)


def load(
    model_dir: Path,
    metadata: dict[str, Any],
    choice: Choice,
    keras_runtime: str,
    threads: int,
) -> ServableModel:
    """The chosen model, loaded and compiled, before the first request."""
    if choice.export is not None:
        runtime = runtimes.load(model_dir / choice.export["file"], threads)
        return ExportedModel.of(runtime, metadata, choice.export)
    spec = specs.get(metadata["algorithm"])
    keras_runtime = resolved_keras_runtime(spec, keras_runtime)
    compiled = None
    if compiles_in_child(metadata, choice, keras_runtime):
        if not _installed("tensorflow"):
            raise _lite_image_error(metadata, model_dir, "No module named 'tensorflow'")
        content = compile_in_child(model_dir, keras_runtime)
        compiled = runtimes.from_bytes(content, keras_runtime, threads)
        if spec.family == "keras":
            return ExportedModel.of(compiled, metadata, None)
    from smvision import algorithms

    algorithm: Algorithm
    try:
        if compiled is not None:  # svm or rf whose deep features the compiled network computes
            from smvision.algorithms.classical import ClassicalAlgorithm

            implementation = algorithms.get(metadata["algorithm"])
            if not issubclass(implementation, ClassicalAlgorithm):
                raise TypeError(f"{implementation} computes no deep features to compile.")
            algorithm = implementation.load_with(model_dir, compiled.predict)
        else:
            algorithm = algorithms.get(metadata["algorithm"]).load(model_dir)
    except ModuleNotFoundError as error:
        raise _lite_image_error(metadata, model_dir, str(error)) from error
    algorithm.compile_for_serving(keras_runtime, threads)
    return algorithm


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _lite_image_error(metadata: dict[str, Any], model_dir: Path, reason: str) -> ExportError:
    return ExportError(
        f"This image cannot load the trained {metadata['algorithm']} model in {model_dir} "
        f"({reason}): an image built with RUNTIME=lite serves exported models only. Run "
        "`python -m smvision.local export` on the job, or serve it with the full image."
    )


def resolved_keras_runtime(spec: specs.AlgorithmSpec, keras_runtime: str) -> str:
    """SMVISION_KERAS_RUNTIME, or for `auto` the algorithm's entry in the table."""
    if keras_runtime == "auto":
        return spec.keras_runtime or "tensorflow"
    return keras_runtime


def engine(metadata: dict[str, Any], choice: Choice, keras_runtime: str) -> str:
    """What will run the model: tflite or onnx (an export, or a Keras model or an svm's or
    rf's deep-feature network compiled at start), tensorflow (a Keras model or that network
    in the worker) or scikit-learn."""
    if choice.export is not None:
        return str(choice.export["format"])
    spec = specs.get(metadata["algorithm"])
    if spec.family != "keras" and not _backbone(metadata):
        return "scikit-learn"
    runtime = resolved_keras_runtime(spec, keras_runtime)
    return runtime if runtime in runtimes.FORMATS else "tensorflow"


def compiles_in_child(metadata: dict[str, Any], choice: Choice, keras_runtime: str) -> bool:
    """Whether loading the model compiles its network (a Keras model, or an svm's or rf's
    deep-feature backbone) to TFLite or ONNX in a child process first."""
    spec = specs.get(metadata["algorithm"])
    return (
        choice.export is None
        and (spec.family == "keras" or _backbone(metadata) is not None)
        and resolved_keras_runtime(spec, keras_runtime) in runtimes.FORMATS
    )


def loaded_files(model_dir: Path, metadata: dict[str, Any], choice: Choice) -> list[Path]:
    """The files that loading the chosen model reads (not the plots, reports or the model
    not chosen that share its folder)."""
    if choice.export is not None:
        return [model_dir / str(choice.export["file"])]
    if specs.get(metadata["algorithm"]).family == "keras":
        return [model_dir / KERAS_MODEL_FILE]
    files = [model_dir / CLASSICAL_MODEL_FILE]
    backbone = _backbone(metadata)
    if backbone:
        folder = model_dir if backbone.get("in_model_dir") else keras_models_dir()
        files.append(folder / str(backbone["file"]))
    return files


def _backbone(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The features=deep backbone's record (backbones.BackboneRecord), if any."""
    record = metadata.get("preprocessing", {}).get("backbone")
    return record if isinstance(record, dict) else None


def compiled_before(model_dir: Path, fmt: str) -> bool:
    """Whether the compile cache holds the network compiled to `fmt` already."""
    return _cached_compile(model_dir, fmt).is_file()


def _cached_compile(model_dir: Path, fmt: str) -> Path:
    return COMPILE_CACHE / f"{_network_digest(model_dir)}.{fmt}"


def compile_in_child(model_dir: Path, fmt: str = "tflite") -> bytes:
    """The trained Keras model (or an svm's or rf's deep-feature network) as a float32
    TFLite flatbuffer or ONNX model (`fmt`), converted by a child process (one at a time,
    across the server's processes too), or as compiled before from the same network."""
    cached = _cached_compile(model_dir, fmt)
    given_up = load_given_up.get()
    while not _compiling.acquire(timeout=GIVEN_UP_POLL_S):  # behind another model's compile
        _stop_if_given_up(given_up, model_dir)
    try:
        with _compile_lock(given_up, model_dir):
            if cached.is_file():
                return cached.read_bytes()
            return _compile(model_dir, fmt, cached)
    finally:
        _compiling.release()


def _stop_if_given_up(given_up: threading.Event | None, model_dir: Path) -> None:
    if given_up is not None and given_up.is_set():
        raise ExportError(f"The load of {model_dir} was given up before its compile began.")


def _compile(model_dir: Path, fmt: str, cached: Path) -> bytes:
    with tempfile.TemporaryDirectory(prefix="smvision-compile-") as scratch:
        destination = Path(scratch) / f"model.{fmt}"
        returncode, stderr = _run_child(
            [sys.executable, "-m", "smvision.serving.export", str(model_dir), str(destination)]
        )
        if returncode != 0 or not destination.is_file():
            raise ExportError(
                f"Compiling the Keras model in {model_dir} to {fmt} failed (exit "
                f"{returncode}): {stderr.strip()[-2000:]} Set "
                "SMVISION_KERAS_RUNTIME=tensorflow to serve it on TensorFlow instead."
            )
        flatbuffer = destination.read_bytes()
    with suppress(OSError):  # a cache that cannot be written costs a compile, no more
        COMPILE_CACHE.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(flatbuffer)
        partial.replace(cached)
    return flatbuffer


@contextmanager
def _compile_lock(given_up: threading.Event | None, model_dir: Path) -> Iterator[None]:
    """One compile at a time across processes too (svm on deep features runs a worker per
    core, each loading the same model): the others wait, then read the cache. The lock is
    the cache directory's own, so the cache holds compiled models only. The wait ends with
    the other process's compile (itself bounded by COMPILE_TIMEOUT_S) or once this load is
    given up."""
    try:
        COMPILE_CACHE.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(COMPILE_CACHE, os.O_RDONLY)
    except OSError:  # no cache to share: each process compiles its own
        yield
        return
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                _stop_if_given_up(given_up, model_dir)
                time.sleep(GIVEN_UP_POLL_S)  # another process compiles: poll its lock
        yield
    finally:
        os.close(descriptor)


def _run_child(command: list[str]) -> tuple[int, str]:
    """Run the compile, killed after COMPILE_TIMEOUT_S, once its load is given up
    (`load_given_up`), or by `kill_compiles`."""
    given_up = load_given_up.get()
    deadline = time.monotonic() + COMPILE_TIMEOUT_S
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as child:
        with _children_lock:
            _children.add(child)
        try:
            while True:
                try:
                    _, stderr = child.communicate(timeout=GIVEN_UP_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    if given_up is not None and given_up.is_set():
                        why = "its load was given up"
                    elif time.monotonic() > deadline:
                        why = f"it took more than {COMPILE_TIMEOUT_S} s"
                    else:
                        continue
                    child.kill()
                    child.communicate()
                    raise ExportError(
                        f"Compiling {command[-2]} to {Path(command[-1]).suffix[1:]} was "
                        f"stopped: {why}. Set "
                        "SMVISION_KERAS_RUNTIME=tensorflow to serve it on TensorFlow instead."
                    ) from None
        finally:
            with _children_lock:
                _children.discard(child)
        return child.returncode, stderr


def kill_compiles() -> None:
    """End the compiles under way (the server stops: nobody will serve what they make)."""
    with _children_lock:
        for child in _children:
            with suppress(OSError):
                child.kill()


def _network_digest(model_dir: Path) -> str:
    """What identifies the compiled network: the Keras file's SHA-256; for a deep-feature
    backbone, its weights' SHA-256 (metadata.json) with the input geometry."""
    keras_file = model_dir / KERAS_MODEL_FILE
    if keras_file.is_file():
        return _sha256(keras_file)
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    key = [_backbone(metadata), metadata["image_size"], metadata["channels"]]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
