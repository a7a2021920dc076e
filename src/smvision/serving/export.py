"""Compressed models: a trained Keras model as TFLite or ONNX, float32, float16 or int8;
an svm or rf as ONNX (what `train` writes at its end, for a model trained before that).

    python -m smvision.local export --job-dir J --format tflite|onnx [--quantize float16|int8]

The export takes the model's input as `serve` prepares it (uint8 pixels, N x size x size
x channels; the cast and the scaling to [0, 1] or ImageNet's means stay inside) and
returns probabilities, so `serve` runs it on LiteRT or ONNX Runtime without TensorFlow.
int8 is calibrated on up to CALIBRATION_IMAGES training images (the job's train channel,
decoded as training decoded them). The export is then run on the job's test split (else
its validation split) beside the original, and what changed, accuracy and probabilities,
is stored with it in model/export.json. An export that loses more than one point of
accuracy there is not installed (the gate): an int8 one is made again as float16, and
export.json says why. A model directory holds one export at a time: a new one replaces
the last.

`python -m smvision.serving.export MODEL_DIR OUT` writes the trained Keras model in MODEL_DIR as
a float32 TFLite flatbuffer (OUT ending in .tflite) or ONNX model (.onnx) to OUT: what
`serve` runs in a child process at start.
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
# The export gate: the most test accuracy an export may lose against the original model.
MAX_ACCURACY_LOSS_POINTS = 1.0
# What an export is made as, in order, until one passes the gate.
FALLBACKS = {"float32": ("float32",), "float16": ("float16",), "int8": ("int8", "float16")}
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
    """Write model/model.{tflite,onnx} and model/export.json for the job; return the latter.

    The accuracy gate: an export whose accuracy on the evaluation split falls more than
    MAX_ACCURACY_LOSS_POINTS below the original's is not installed. An int8 one is made
    again as float16 (`record["gate"]` says why); any other, or a float16 that fails too,
    is refused with an ExportError and the model directory is left as it was."""
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
    original = _predict(model.predict_proba, evaluation)
    calibration = _calibration_images(job) if quantize == "int8" else None
    refused: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="smvision-export-") as scratch:
        for attempt in FALLBACKS[quantize]:
            exported = Path(scratch) / attempt / exports.MODEL_FILES[fmt]
            exported.parent.mkdir()
            if fmt == "tflite":
                exported.write_bytes(
                    tflite_flatbuffer(keras_model, job.model_input, attempt, calibration)
                )
            else:
                onnx_model(keras_model, job.model_input, attempt, calibration, exported)
            runtime = runtimes.load(exported, available_cores())
            compressed = _predict(runtime.predict, evaluation)
            compared = exports.compare(original, compressed, evaluation.labels, evaluation_split)
            sentence = gate_refusal(fmt, attempt, compared)
            if sentence is None:
                break
            log.warning("%s", sentence)
            refused.append({"quantize": attempt, "evaluation": compared, "reason": sentence})
        else:
            raise ExportError(
                " ".join(r["reason"] for r in refused) + " Nothing was exported; the model "
                "directory is as it was. Serve the trained model, or export it as float32."
            )
        content = exported.read_bytes()
    record = exports.record(
        fmt,
        attempt,
        len(content),
        _size(job.model_dir / keras_base.MODEL_FILE),
        {"dtype": "uint8", "shape": [None, *_pixel_shape(job.model_input)]},
        compared,
        None
        if calibration is None or attempt != "int8"
        else {"channel": "train", "images": len(calibration)},
    )
    record["gate"] = _gate(quantize, refused)
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
    compared = exports.compare(
        _predict(model.predict_proba, evaluation),
        _predict(compiled.predict_proba, evaluation),
        evaluation.labels,
        evaluation_split,
    )
    sentence = gate_refusal(fmt, quantize, compared)
    if sentence is not None:
        raise ExportError(f"{sentence} Nothing was exported; the model directory is as it was.")
    record = exports.record(
        fmt,
        quantize,
        len(content),
        _size(job.model_dir / CLASSICAL_MODEL_FILE),
        model_input,
        compared,
    )
    record["gate"] = _gate(quantize, [])
    exports.install(job.model_dir, content, record)
    return record


def _gate(asked: str, refused: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "max_accuracy_loss_points": MAX_ACCURACY_LOSS_POINTS,
        "asked": asked,
        "refused": refused,
    }


def gate_refusal(fmt: str, quantize: str, compared: dict[str, Any]) -> str | None:
    """Why an export may not be installed (it lost more than MAX_ACCURACY_LOSS_POINTS of
    accuracy on the evaluation split), or None."""
    change = float(compared["accuracy_change_points"])
    if change >= -MAX_ACCURACY_LOSS_POINTS:
        return None
    fallback = FALLBACKS["int8"][1] if quantize == "int8" else None
    return (
        f"The {quantize} {fmt} export scored {compared['export_accuracy']:.4f} on the "
        f"{compared['images']} {compared['split']} images against the original's "
        f"{compared['original_accuracy']:.4f} ({change:+.2f} points), more than the "
        f"{MAX_ACCURACY_LOSS_POINTS:g} point the export gate allows"
        + (f"; trying {fallback} instead." if fallback else ".")
    )


def compile_saved_model(model_dir: Path, destination: Path) -> None:
    """The trained Keras model in model_dir as a float32 TFLite flatbuffer or ONNX model
    (by destination's suffix) at destination."""
    metadata = read_metadata(model_dir)
    model_input = images.ModelInput(int(metadata["image_size"]), int(metadata["channels"]))
    temporary = destination.with_name(f".{destination.name}.tmp{destination.suffix}")
    if specs.get(metadata["algorithm"]).family == "keras":
        keras_model = algorithms.get(metadata["algorithm"]).load(model_dir).model  # type: ignore[attr-defined]
        tracked, function = keras_model, _serving_function(keras_model, model_input)
    else:  # svm or rf on deep features: their backbone network
        tracked, function = _backbone_function(model_dir, metadata, model_input)
    if destination.suffix == ".onnx":
        _function_to_onnx(function, "float32", None, temporary)
    else:
        temporary.write_bytes(_function_to_tflite(tracked, function, "float32", None))
    os.replace(temporary, destination)


def _backbone_function(
    model_dir: Path, metadata: dict[str, Any], model_input: images.ModelInput
) -> tuple[Any, Any]:
    """The features=deep backbone of a classical model: its network, and its function from
    uint8 pixels to the 2048 pooled values."""
    from smvision.algorithms.features.backbones import BackboneRecord
    from smvision.algorithms.features.deep import Backbone

    record = BackboneRecord.from_dict(metadata["preprocessing"]["backbone"])
    backbone = Backbone.load(model_dir, model_input.size, record)
    return backbone._network, backbone.pooled_function(model_input.channels)


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
    function = _serving_function(keras_model, model_input)
    return _function_to_tflite(keras_model, function, quantize, calibration)


def _function_to_tflite(
    tracked: Any, function: Any, quantize: str, calibration: np.ndarray | None
) -> bytes:
    """A tf.function over the Keras model `tracked` as a TFLite flatbuffer."""
    import keras
    import tensorflow as tf

    # A SavedModel written by Keras' ExportArchive holds the weights as the converter
    # wants them (a plain tf.function leaves them as variables TFLite cannot read).
    with tempfile.TemporaryDirectory(prefix="smvision-tflite-") as scratch:
        archive = keras.export.ExportArchive()
        archive.track(tracked)
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


def onnx_model(
    keras_model: Any,
    model_input: images.ModelInput,
    quantize: str,
    calibration: np.ndarray | None,
    destination: Path,
) -> None:
    """The Keras model on uint8 pixels as an ONNX model at destination (also what serve
    compiles for SMVISION_KERAS_RUNTIME=onnx)."""
    function = _serving_function(keras_model, model_input)
    _function_to_onnx(function, quantize, calibration, destination)


def _function_to_onnx(
    function: Any, quantize: str, calibration: np.ndarray | None, destination: Path
) -> None:
    import onnx
    import tf2onnx

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
