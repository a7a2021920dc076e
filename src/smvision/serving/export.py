"""Compressed models: a trained Keras model as TFLite or ONNX, float32, float16 or int8;
an svm or rf as ONNX (what `train` writes at its end, for a model trained before that).

    python -m smvision.local export --job-dir J --format tflite|onnx [--quantize float16|int8]

The export takes the model's input as `serve` prepares it (uint8 pixels, N x size x size
x channels; the cast and the scaling to [0, 1] or ImageNet's means stay inside) and
returns probabilities, so `serve` runs it on LiteRT or ONNX Runtime without TensorFlow.
int8 is calibrated on up to CALIBRATION_IMAGES training images (the job's train channel,
decoded as training decoded them). The export is then run on the job's test split (else
its validation split) beside the original, and what changed, accuracy and probabilities,
is stored with it in model/export.json. A model directory holds one export at a time: a
new one replaces the last.

`python -m smvision.serving.export MODEL_DIR OUT` writes the trained Keras model in MODEL_DIR as
a float32 TFLite flatbuffer to OUT: what `serve` runs in a child process at start.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smvision import algorithms
from smvision.algorithms.base import CLASSICAL_MODEL_FILE, NotConvertibleError
from smvision.algorithms.exported import ExportedModel
from smvision.algorithms.features import FeatureSettings
from smvision.core.artifacts import read_metadata
from smvision.core.contract import Contract
from smvision.core.machine import available_cores
from smvision.data import dataset as data
from smvision.data import images
from smvision.data.dataset import Dataset
from smvision.model import exports, runtimes
from smvision.schema import specs

log = logging.getLogger("smvision.serving.export")

QUANTIZATIONS = ("float32", "float16", "int8")
CALIBRATION_IMAGES = 200
ONNX_OPSET = 17
_PREDICT_BATCH = 64


class ExportError(ValueError):
    """A model or job that cannot be exported as asked, with the reason and the fix."""


@dataclass(frozen=True)
class Job:
    """What an export reads of a job: the Keras model, its input, its data channels."""

    model_dir: Path
    metadata: dict[str, Any]
    model_input: images.ModelInput
    contract: Contract


def export(contract: Contract, fmt: str, quantize: str = "float32") -> dict[str, Any]:
    """Write model/model.{tflite,onnx} and model/export.json for the job; return the latter."""
    if fmt not in runtimes.FORMATS or quantize not in QUANTIZATIONS:
        raise ExportError(
            f"Format '{fmt}' with quantization '{quantize}': use a format of "
            f"{', '.join(runtimes.FORMATS)} and a quantization of {', '.join(QUANTIZATIONS)}."
        )
    job = _read_job(contract)
    if specs.get(job.metadata["algorithm"]).family != "keras":
        return _export_classical(job, fmt, quantize)
    from smvision.algorithms import keras_base  # TensorFlow: only once the job is known good

    model = algorithms.get(job.metadata["algorithm"]).load(job.model_dir)
    keras_model = model.model  # type: ignore[attr-defined]
    evaluation_split, evaluation = _evaluation_data(job)
    calibration = _calibration_images(job) if quantize == "int8" else None
    with tempfile.TemporaryDirectory(prefix="smvision-export-") as scratch:
        exported = Path(scratch) / exports.MODEL_FILES[fmt]
        if fmt == "tflite":
            exported.write_bytes(
                tflite_flatbuffer(keras_model, job.model_input, quantize, calibration)
            )
        else:
            _to_onnx(keras_model, job, quantize, calibration, exported)
        runtime = runtimes.load(exported, available_cores())
        original = _predict(model.predict_proba, evaluation)
        compressed = _predict(runtime.predict, evaluation)
        content = exported.read_bytes()
    record = exports.record(
        fmt,
        quantize,
        len(content),
        _size(job.model_dir / keras_base.MODEL_FILE),
        {"dtype": "uint8", "shape": [None, *_pixel_shape(job.model_input)]},
        exports.compare(original, compressed, evaluation.labels, evaluation_split),
        None if calibration is None else {"channel": "train", "images": len(calibration)},
    )
    exports.install(job.model_dir, content, record)
    return record


def _export_classical(job: Job, fmt: str, quantize: str) -> dict[str, Any]:
    """An svm's or rf's pipeline as ONNX (what `train` writes at its end; this compiles a
    model trained before that)."""
    name = job.metadata["algorithm"]
    if (fmt, quantize) != ("onnx", "float32"):
        raise ExportError(
            f"{job.model_dir} holds a {name} model, which exports as ONNX float32 only "
            f"(format '{fmt}', quantization '{quantize}' asked): use --format onnx."
        )
    model = algorithms.get(name).load(job.model_dir)
    try:
        converted = model.to_onnx()
    except NotConvertibleError as error:
        raise ExportError(
            f"The {name} model in {job.model_dir} cannot be exported: {error}."
        ) from error
    if converted is None:
        raise RuntimeError(f"{name} has no ONNX form")
    content, model_input = converted
    compiled = ExportedModel(
        runtimes.OnnxRuntime(content, available_cores()),
        model.image_size,
        model.channels,
        model.class_count,
        FeatureSettings.from_dict(model_input["features"]),
    )
    evaluation_split, evaluation = _evaluation_data(job)
    record = exports.record(
        fmt,
        quantize,
        len(content),
        _size(job.model_dir / CLASSICAL_MODEL_FILE),
        model_input,
        exports.compare(
            _predict(model.predict_proba, evaluation),
            _predict(compiled.predict_proba, evaluation),
            evaluation.labels,
            evaluation_split,
        ),
    )
    exports.install(job.model_dir, content, record)
    return record


def compile_saved_model(model_dir: Path, destination: Path) -> None:
    """The trained Keras model in model_dir as a float32 TFLite flatbuffer at destination."""
    metadata = read_metadata(model_dir)
    model = algorithms.get(metadata["algorithm"]).load(model_dir)
    model_input = images.ModelInput(int(metadata["image_size"]), int(metadata["channels"]))
    flatbuffer = tflite_flatbuffer(model.model, model_input)  # type: ignore[attr-defined]
    temporary = destination.with_name(f".{destination.name}.tmp")
    temporary.write_bytes(flatbuffer)
    os.replace(temporary, destination)


def main(argv: list[str] | None = None) -> int:
    model_dir, destination = (Path(a) for a in (sys.argv[1:] if argv is None else argv))
    compile_saved_model(model_dir, destination)
    return 0


def _read_job(contract: Contract) -> Job:
    model_dir = contract.model_dir
    try:
        metadata = read_metadata(model_dir)
    except FileNotFoundError as error:
        raise ExportError(f"{error} Train the job first (smvision.local train).") from error
    specs.get(metadata.get("algorithm"))  # an unknown algorithm: its error, by name
    model_input = images.ModelInput(
        int(metadata["image_size"]),
        int(metadata["channels"]),
        metadata.get("scaled_jpeg_decode") is True,
    )
    return Job(model_dir, metadata, model_input, contract)


def _load_channel(job: Job, channel: str, every: int = 1) -> Dataset:
    samples = data.list_channel(job.contract.channel_dir(channel), channel)[::every]
    class_names = job.metadata["class_names"]
    data.check_known_classes(samples, class_names, channel)
    return data.load(
        samples,
        class_names,
        job.model_input.size,
        job.model_input.channels,
        channel,
        None,
        scaled_jpeg=job.model_input.scaled_jpeg,
    )


def _evaluation_data(job: Job) -> tuple[str, Dataset]:
    for channel in ("test", "validation"):
        if job.contract.channel_dir(channel).is_dir():
            return channel, _load_channel(job, channel)
    raise ExportError(
        f"{job.contract.data_dir} has no test or validation channel to compare the export "
        "with the original on; train the job with --channel test=DIR (or validation=DIR)."
    )


def _calibration_images(job: Job) -> np.ndarray:
    """Up to CALIBRATION_IMAGES training images, spread over every class folder."""
    channel = job.contract.channel_dir("train")
    if not channel.is_dir():
        raise ExportError(
            f"int8 is calibrated on training images, and {channel} is missing; export from "
            "the job directory the model was trained in."
        )
    count = len(data.list_channel(channel, "train"))
    every = max(1, count // CALIBRATION_IMAGES)
    return _load_channel(job, "train", every).all_images()[:CALIBRATION_IMAGES]


def _predict(predict: Any, dataset: Dataset) -> np.ndarray:
    parts = [predict(chunk) for chunk in dataset.chunks(_PREDICT_BATCH)]
    return np.concatenate(parts).astype(np.float32)


def _pixel_shape(model_input: images.ModelInput) -> list[int]:
    return [model_input.size, model_input.size, model_input.channels]


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


# Converters (TensorFlow, imported here only) ---------------------------------------------


def _serving_function(keras_model: Any, model_input: images.ModelInput) -> Any:
    """uint8 pixels -> float32 probabilities, as a tf.function with a fixed signature."""
    import tensorflow as tf

    size, channels = model_input.size, model_input.channels

    @tf.function(
        input_signature=[tf.TensorSpec([None, size, size, channels], tf.uint8, name="pixels")]
    )
    def probabilities(pixels: Any) -> Any:
        return tf.cast(keras_model(tf.cast(pixels, tf.float32), training=False), tf.float32)

    return probabilities


def _representative(calibration: np.ndarray) -> Iterator[list[np.ndarray]]:
    for image in calibration:
        yield [image[np.newaxis]]


def tflite_flatbuffer(
    keras_model: Any,
    model_input: images.ModelInput,
    quantize: str = "float32",
    calibration: np.ndarray | None = None,
) -> bytes:
    """The Keras model on uint8 pixels as a TFLite flatbuffer (also what serve compiles)."""
    import keras
    import tensorflow as tf

    # A SavedModel written by Keras' ExportArchive holds the weights as the converter
    # wants them (a plain tf.function leaves them as variables TFLite cannot read).
    with tempfile.TemporaryDirectory(prefix="smvision-tflite-") as scratch:
        function = _serving_function(keras_model, model_input)
        archive = keras.export.ExportArchive()
        archive.track(keras_model)
        archive.add_endpoint("serving_default", function)
        archive.write_out(scratch, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        return _convert(converter, quantize, calibration)


def _convert(converter: Any, quantize: str, calibration: np.ndarray | None) -> bytes:
    import tensorflow as tf

    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        assert calibration is not None
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative(calibration)
    content: bytes = converter.convert()
    return content


def _to_onnx(
    keras_model: Any,
    job: Job,
    quantize: str,
    calibration: np.ndarray | None,
    destination: Path,
) -> None:
    import onnx
    import tf2onnx

    function = _serving_function(keras_model, job.model_input)
    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=function.input_signature, opset=ONNX_OPSET
    )
    if quantize == "float16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        proto = convert_float_to_float16(proto, keep_io_types=True)
    if quantize != "int8":
        onnx.save(proto, str(destination))
        return
    assert calibration is not None
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    float_model = destination.with_suffix(".float32.onnx")
    onnx.save(proto, str(float_model))
    input_name = proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._images = iter(calibration)  # type: ignore[arg-type]

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self._images, None)
            return None if image is None else {input_name: image[np.newaxis]}

    quantize_static(
        str(float_model),
        str(destination),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    float_model.unlink()


if __name__ == "__main__":
    raise SystemExit(main())
