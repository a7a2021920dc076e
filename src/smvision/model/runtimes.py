"""Engines that run a compiled model without TensorFlow: LiteRT (TFLite) and ONNX Runtime.

Both return float32 probabilities. A Keras model's export takes the model's input as it
leaves `images.ModelInput` (uint8, N x size x size x channels); an svm's or rf's ONNX
takes the feature rows that `algorithms.features` extracts from it. `serve` runs exported
models on them (an svm or rf is compiled to ONNX at the end of training), and a Keras
model compiled to TFLite when it starts (`smvision.serving.models`); the export command
and training check an export against the original with the same classes. Neither
engine is imported until a model needs it, so the module costs nothing elsewhere.

A TFLite interpreter allocates its tensors for one batch size and re-plans them on
every change, so `LiteRuntime` keeps one interpreter per size of `BATCH_SIZES`, allocated
and run once at load, and splits each batch into pieces of those sizes (9 images: 8 and
1): any batch runs on warm, fixed shapes, and none is padded, which would compute the
padding (9 padded to 32: 23 images for nothing). ONNX Runtime takes any batch as it comes.
"""

from __future__ import annotations

import os
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


TELEMETRY_OFF_ENV = "ORT_DISABLE_TELEMETRY"


class OnnxRuntime:
    """An ONNX model on ONNX Runtime's CPU provider.

    Its input is what its graph declares: uint8 pixels (a Keras export) or float32 feature
    rows (an svm or rf converted by skl2onnx); its output the one named `probabilities`
    (scikit-learn's converters also output the label), else its only one."""

    def __init__(self, path_or_content: Path | bytes, threads: int) -> None:
        # ONNX Runtime 1.30+ otherwise keeps a device id and a telemetry queue in
        # ~/.cache/Microsoft: serve writes nothing outside /tmp (read-only root file systems).
        os.environ.setdefault(TELEMETRY_OFF_ENV, "1")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        model = str(path_or_content) if isinstance(path_or_content, Path) else path_or_content
        self._session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        (entry,) = self._session.get_inputs()
        self._input_name = entry.name
        self.input_shape = tuple(int(d) for d in entry.shape[1:])
        self.input_dtype = np.dtype(_ONNX_TYPES[entry.type])
        names = [output.name for output in self._session.get_outputs()]
        self._output_names = ["probabilities"] if "probabilities" in names else names[:1]
        self.predict(np.zeros((1, *self.input_shape), self.input_dtype))

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        inputs = {self._input_name: pixels.astype(self.input_dtype, copy=False)}
        (probabilities,) = self._session.run(self._output_names, inputs)
        return np.asarray(probabilities, dtype=np.float32)


# ONNX Runtime's names of the input types our models take.
_ONNX_TYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(double)": np.float64}


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
