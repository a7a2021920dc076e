"""Engines that run a compiled model without TensorFlow: LiteRT (TFLite) and ONNX Runtime.

Both take the model's input as it leaves `images.ModelInput` (uint8, N x size x size x
channels) and return float32 probabilities. `serve` runs exported models on them, and a
Keras model compiled to TFLite when it starts (`smvision.serving.models`); the
export command checks an export against the original with the same classes. Neither
engine is imported until a model needs it, so the module costs nothing elsewhere.

A TFLite interpreter allocates its tensors for one batch size and re-plans them on
every change, so `LiteRuntime` keeps one interpreter per size of `BATCH_SIZES`, allocated
and run once at load, and splits each batch into pieces of those sizes (9 images: 8 and
1): any batch runs on warm, fixed shapes, and none is padded, which would compute the
padding (9 padded to 32: 23 images for nothing). ONNX Runtime takes any batch as it comes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# Fixed batch sizes: a lone request, a busy moment, the batcher's largest batch.
BATCH_SIZES = (1, 8, 32)
FORMATS = ("tflite", "onnx")


class Runtime(Protocol):
    """A loaded compiled model: uint8 N x size x size x channels -> float32 N x classes."""

    def predict(self, pixels: np.ndarray) -> np.ndarray: ...


def in_fixed_batches(
    pixels: np.ndarray, sizes: Sequence[int], run: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """`run` on pieces of exactly one of `sizes` images (which include 1): each the largest
    size that the images left fill."""
    parts, start = [], 0
    while start < len(pixels):
        size = max(s for s in sizes if s <= len(pixels) - start)
        parts.append(run(pixels[start : start + size]))
        start += size
    return np.concatenate(parts).astype(np.float32, copy=False)


class LiteRuntime:
    """A TFLite flatbuffer on LiteRT's interpreter (XNNPACK on CPU), one per batch size."""

    def __init__(
        self, content: bytes, threads: int, batch_sizes: Sequence[int] = BATCH_SIZES
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.batch_sizes = tuple(sorted(batch_sizes))
        self._content = content  # the interpreters read the flatbuffer in place
        # Per batch size: the interpreter, its input tensor's index and its output's.
        self._interpreters: dict[int, tuple[Any, int, int]] = {}
        for size in self.batch_sizes:
            interpreter = Interpreter(model_content=content, num_threads=threads)
            (entry,) = interpreter.get_input_details()
            shape = list(entry["shape"])
            interpreter.resize_tensor_input(entry["index"], [size, *shape[1:]])
            interpreter.allocate_tensors()
            (output,) = interpreter.get_output_details()
            self._interpreters[size] = (interpreter, entry["index"], output["index"])
            self.input_shape = tuple(int(d) for d in shape[1:])
            self.input_dtype = np.dtype(entry["dtype"])
        for size in self.batch_sizes:  # the first run of each shape allocates and packs weights
            self._run(np.zeros((size, *self.input_shape), np.uint8))

    @classmethod
    def from_file(cls, path: Path, threads: int) -> LiteRuntime:
        return cls(path.read_bytes(), threads)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        return in_fixed_batches(pixels, self.batch_sizes, self._run)

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        interpreter, input_index, output_index = self._interpreters[len(pixels)]
        interpreter.set_tensor(input_index, pixels.astype(self.input_dtype, copy=False))
        interpreter.invoke()
        result: np.ndarray = interpreter.get_tensor(output_index)  # a copy, not a view
        return result


class OnnxRuntime:
    """An ONNX model on ONNX Runtime's CPU provider."""

    def __init__(self, model: Path | bytes, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            model if isinstance(model, bytes) else str(model),
            options,
            providers=["CPUExecutionProvider"],
        )
        (entry,) = self._session.get_inputs()
        self._input_name = entry.name
        self.input_shape = tuple(int(d) for d in entry.shape[1:])
        self._session.run(None, {self._input_name: np.zeros((1, *self.input_shape), np.uint8)})

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        (probabilities,) = self._session.run(None, {self._input_name: pixels})
        return np.asarray(probabilities, dtype=np.float32)


def from_bytes(content: bytes, fmt: str, threads: int) -> Runtime:
    """The runtime for a compiled model held in memory: a TFLite flatbuffer or ONNX model."""
    if fmt == "tflite":
        return LiteRuntime(content, threads)
    if fmt == "onnx":
        return OnnxRuntime(content, threads)
    raise ValueError(f"Format '{fmt}': use one of {', '.join(FORMATS)}.")


def load(path: Path, threads: int) -> Runtime:
    """The runtime for a model file, by its suffix (.tflite or .onnx)."""
    if path.suffix == ".tflite":
        return LiteRuntime.from_file(path, threads)
    if path.suffix == ".onnx":
        return OnnxRuntime(path, threads)
    raise ValueError(f"{path} is neither a .tflite nor an .onnx file.")
