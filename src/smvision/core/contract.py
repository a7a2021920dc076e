"""SageMaker's /opt/ml layout and environment variables, in one place.

Every path under /opt/ml, every channel name and every SAGEMAKER_* variable that the
image reads is spelled here and nowhere else. Build a `Contract` with `load()`, passing
the environment explicitly, so tests and local runs point it at their own tree.

`load()` reads only the base directory and never fails, so a job can always write its
failure file; every other variable is read, and refused with a ContractError, when it is
asked for: the serving limits only by `serve`, the host list only by training.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BASE_DIR = "/opt/ml"
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"

CHANNELS = ("train", "validation", "test", "pretrained", "model")
# How SageMaker hands a channel over (a channel's TrainingInputMode in inputdataconfig.json):
# File copies it into input/data/<channel>/ before the job starts, FastFile mounts it
# there and fetches each file as it is read, Pipe streams it through a FIFO.
FILE_MODE, FAST_FILE_MODE, PIPE_MODE = "File", "FastFile", "Pipe"
INPUT_MODES = (FILE_MODE, FAST_FILE_MODE, PIPE_MODE)
# An augmented manifest (S3DataType) streams in Pipe mode, each attribute a record of
# RecordIO framing (RecordWrapperType).
AUGMENTED_MANIFEST = "AugmentedManifestFile"
RECORDIO_WRAPPER = "RecordIO"
RECORDIO_CONTENT_TYPE = "application/x-recordio"
# The ContentType the built-in algorithms give an incremental-training `model` channel.
MODEL_CONTENT_TYPE = "application/x-sagemaker-model"
# What `train` writes beside the model files in /opt/ml/model, and `serve` reads first.
METADATA_FILE = "metadata.json"
# What `python -m smvision.local export` writes beside a compressed model in /opt/ml/model.
EXPORT_FILE = "export.json"
# Where a job reads and writes checkpoints; SageMaker syncs this folder with the job's
# CheckpointConfig S3 URI (its LocalPath).
CHECKPOINT_DIR = "checkpoints"
DEFAULT_CHECKPOINT_DIR = f"{DEFAULT_BASE_DIR}/{CHECKPOINT_DIR}"
# What `train` also writes there: the training images' statistics that `monitor` compares
# captured requests with.
BASELINE_FILE = "baseline.json"
# What `train` also writes there, for serve's answers: the split-conformal calibration
# (prediction sets, abstention; smvision.model.conformal) and the out-of-distribution
# model (smvision.model.ood), both set on the validation split.
CONFORMAL_FILE = "conformal.json"
OOD_FILE = "ood.npz"
# What `train` (and `python -m smvision.local inspect`) write in output/data: the data
# report (smvision.inspection).
DATA_REPORT_FILE = "data_report.json"
# A processing job (`monitor`, `gate`): SageMaker downloads each input to the LocalPath
# the job names, processing/input/<name>/ here, and uploads what the job leaves in
# processing/output/ (the paths Model Monitor's own jobs use).
PROCESSING_INPUT = "processing/input"
PROCESSING_OUTPUT = "processing/output"
DEFAULT_PROCESSING_INPUT_DIR = f"{DEFAULT_BASE_DIR}/{PROCESSING_INPUT}"
DEFAULT_PROCESSING_OUTPUT_DIR = f"{DEFAULT_BASE_DIR}/{PROCESSING_OUTPUT}"
# The inputs of `monitor`: the endpoint's captured data and the model's baseline; of
# `gate`: the training job's output.tar.gz.
CAPTURED_INPUT = "endpoint"
BASELINE_INPUT = "baseline"
TRAINING_OUTPUT_INPUT = "training"

# The sagemaker-training toolkit imports this module and calls it (the way the
# SageMaker framework containers plug in); the Dockerfile sets the same value.
TRAINING_MODULE_ENV = "SAGEMAKER_TRAINING_MODULE"
TRAINING_MODULE = "smvision.training.toolkit_entry:main"

PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
MAX_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
# SageMaker sets it to "true" on a multi-model endpoint whose image carries the
# com.amazonaws.sagemaker.capabilities.multi-models label.
MULTI_MODEL_ENV = "SAGEMAKER_MULTI_MODEL"
HOSTS_ENV = "SM_HOSTS"
# The image's own serving variables: which model in /opt/ml/model `serve` runs (auto: the
# export when `smvision.local export` wrote one, else the trained model), and how a trained
# Keras model runs (auto: as the algorithm table says; compiled to TFLite at start, XLA, or
# TensorFlow's graph as training's evaluation runs it).
SERVE_FORMAT_ENV = "SMVISION_SERVE_FORMAT"
SERVE_FORMATS = ("auto", "trained", "tflite", "onnx")
KERAS_RUNTIME_ENV = "SMVISION_KERAS_RUNTIME"
KERAS_RUNTIMES = ("auto", "tflite", "onnx", "xla", "tensorflow")
CURRENT_HOST_ENV = "SM_CURRENT_HOST"
# smvision's own serving variables, which SageMaker never sets: `deploy --async` sets the
# first; the second caps the memory a multi-model server gives its models (default: the
# container's memory less what the server itself holds when it starts); the third is how
# long a model may take to load (its files, compile and warm-up) before its load is given up.
ASYNC_INFERENCE_ENV = "SMVISION_ASYNC_INFERENCE"
MODELS_MEMORY_ENV = "SMVISION_MODELS_MEMORY_MB"
MODEL_LOAD_TIMEOUT_ENV = "SMVISION_MODEL_LOAD_TIMEOUT"
# Defaults of the custom attributes tta= and coverage= for requests that do not say: a
# batch transform forwards no custom attributes, so `launch transform --tta/--coverage`
# sets these on the model.
TTA_ENV = "SMVISION_TTA"
COVERAGE_ENV = "SMVISION_COVERAGE"

DEFAULT_PORT = 8080
MAX_PORT = 65535
# A real-time endpoint's limits: SageMaker answers within 60 s, 6 MB in and out.
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_PAYLOAD_MB = 6.0
# An asynchronous endpoint's: a request body of up to 1 GB from S3, processed for up to
# an hour (InvocationTimeoutSeconds' maximum).
ASYNC_TIMEOUT_S = 3600.0
ASYNC_MAX_PAYLOAD_MB = 1024.0
# SageMaker gives a multi-model endpoint's load 360 s in all; an answer within 330 s reaches
# it. A compile (serving.models.COMPILE_TIMEOUT_S, 300 s) fits inside.
DEFAULT_MODEL_LOAD_TIMEOUT_S = 330.0
# A serverless endpoint's payload limit, which `deploy --serverless` passes as
# SAGEMAKER_MAX_PAYLOAD_IN_MB.
SERVERLESS_MAX_PAYLOAD_MB = 4


class ContractError(ValueError):
    """A SageMaker variable or file that the image cannot use as it is."""


@dataclass(frozen=True)
class ResourceConfig:
    """The cluster as resourceconfig.json describes it."""

    current_host: str
    hosts: tuple[str, ...]

    @property
    def is_first_host(self) -> bool:
        return self.current_host == self.hosts[0]

    @property
    def host_index(self) -> int:
        return self.hosts.index(self.current_host)


@dataclass(frozen=True)
class ChannelInput:
    """How SageMaker hands one channel over, as inputdataconfig.json says."""

    mode: str = FILE_MODE
    record_wrapper: str | None = None
    content_type: str | None = None

    @property
    def label_format(self) -> str | None:
        """The built-in's `label-format` parameter of the ContentType (multi-hot, class-id)."""
        for parameter in (self.content_type or "").split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "label-format":
                return value.strip().lower()
        return None


@dataclass(frozen=True)
class Contract:
    """Where SageMaker puts things, and the variables it sets, read when asked for."""

    base_dir: Path
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    # Serving limits, read by `serve` alone: a training job whose environment holds them
    # (one dict shared by a launcher's train and deploy steps) must not fail on them.

    @property
    def port(self) -> int:
        return _int(self.environ, PORT_ENV, minimum=1, maximum=MAX_PORT) or DEFAULT_PORT

    @property
    def workers(self) -> int | None:
        """Server worker processes; None: the algorithm's default."""
        return _int(self.environ, WORKERS_ENV, minimum=1)

    @property
    def timeout_s(self) -> float:
        default = ASYNC_TIMEOUT_S if self.async_inference else DEFAULT_TIMEOUT_S
        return _float(self.environ, TIMEOUT_ENV, default)

    @property
    def max_payload_mb(self) -> float:
        default = ASYNC_MAX_PAYLOAD_MB if self.async_inference else DEFAULT_MAX_PAYLOAD_MB
        return _float(self.environ, MAX_PAYLOAD_ENV, default)

    @property
    def multi_model(self) -> bool:
        """Whether to serve the models SageMaker loads through /models, not /opt/ml/model."""
        return _bool(self.environ, MULTI_MODEL_ENV)

    @property
    def async_inference(self) -> bool:
        """An asynchronous endpoint's limits (ASYNC_*) instead of real-time ones by default."""
        return _bool(self.environ, ASYNC_INFERENCE_ENV)

    @property
    def models_memory_mb(self) -> float | None:
        """The memory a multi-model server may give its models; None: its own reckoning."""
        if not self.environ.get(MODELS_MEMORY_ENV, "").strip():
            return None
        return _float(self.environ, MODELS_MEMORY_ENV, 0.0)

    @property
    def tta(self) -> str:
        """The default tta= of requests, as set ('none' when unset; serve checks the name)."""
        return self.environ.get(TTA_ENV, "").strip().lower() or "none"

    @property
    def coverage(self) -> float | None:
        """The default coverage= of requests (None: no prediction sets unless asked)."""
        if not self.environ.get(COVERAGE_ENV, "").strip():
            return None
        value = _float(self.environ, COVERAGE_ENV, 0.0)
        if not 0.0 < value < 1.0:
            raise ContractError(
                f"{COVERAGE_ENV} is '{self.environ[COVERAGE_ENV]}'; use a probability between "
                "0 and 1 (exclusive), such as 0.9, or unset it."
            )
        return value

    @property
    def model_load_timeout_s(self) -> float:
        """How long loading a model may take before it is given up."""
        return _float(self.environ, MODEL_LOAD_TIMEOUT_ENV, DEFAULT_MODEL_LOAD_TIMEOUT_S)

    @property
    def serve_format(self) -> str:
        return _choice(self.environ, SERVE_FORMAT_ENV, SERVE_FORMATS)

    @property
    def keras_runtime(self) -> str:
        return _choice(self.environ, KERAS_RUNTIME_ENV, KERAS_RUNTIMES)

    # The layout under the base directory.

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.input_dir / "data"

    def channel_dir(self, channel: str) -> Path:
        return self.data_dir / channel

    def pipe_path(self, channel: str, epoch: int = 0) -> Path:
        """The FIFO a Pipe-mode channel streams through, a new one for each pass (epoch)."""
        return self.data_dir / f"{channel}_{epoch}"

    @property
    def scratch_dir(self) -> Path:
        """The job's own working files on the training volume, never uploaded: Pipe-mode
        spools, decoded-image caches, an unpacked model channel."""
        return self.input_dir / "scratch"

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    @property
    def models_dir(self) -> Path:
        """Where SageMaker unpacks each model of a multi-model endpoint (models/NAME/model)."""
        return self.base_dir / "models"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoint_dir(self) -> Path:
        return self.base_dir / CHECKPOINT_DIR

    @property
    def code_dir(self) -> Path:
        return self.base_dir / "code"

    @property
    def processing_input_dir(self) -> Path:
        return self.base_dir / PROCESSING_INPUT

    def processing_input(self, name: str) -> Path:
        return self.processing_input_dir / name

    @property
    def processing_output_dir(self) -> Path:
        return self.base_dir / PROCESSING_OUTPUT

    @property
    def processing_message_file(self) -> Path:
        """Its first KB becomes the processing job's ExitMessage: the failure, for a person."""
        return self.output_dir / "message"

    def available_channels(self) -> list[str]:
        """Channels that exist as directories under input/data, and the Pipe-mode channels
        inputdataconfig.json names; in CHANNELS order first."""
        present = (
            {p.name for p in self.data_dir.iterdir() if p.is_dir()}
            if (self.data_dir.is_dir())
            else set()
        )
        present |= {name for name, c in self.channel_inputs().items() if c.mode == PIPE_MODE}
        ordered = [c for c in CHANNELS if c in present]
        return ordered + sorted(present - set(CHANNELS))

    def channel_inputs(self) -> dict[str, ChannelInput]:
        """Each channel's input mode, record wrapper and ContentType, from
        inputdataconfig.json; empty without the file (a channel directory is File mode)."""
        if not self.input_data_config_file.is_file():
            return {}
        found = {}
        for name, raw in read_json_file(self.input_data_config_file).items():
            if not isinstance(raw, dict):
                raise ContractError(
                    f"{self.input_data_config_file}: channel '{name}' must be a JSON object."
                )
            mode = str(raw.get("TrainingInputMode", FILE_MODE))
            if mode not in INPUT_MODES:
                raise ContractError(
                    f"{self.input_data_config_file}: channel '{name}' has TrainingInputMode "
                    f"'{mode}'; SageMaker's modes are {', '.join(INPUT_MODES)}."
                )
            wrapper = raw.get("RecordWrapperType")
            found[str(name)] = ChannelInput(
                mode,
                None if wrapper in (None, "None") else str(wrapper),
                str(raw["ContentType"]) if raw.get("ContentType") else None,
            )
        return found

    def resource_config(self) -> ResourceConfig:
        """The hosts of this job: SM_HOSTS/SM_CURRENT_HOST first, else resourceconfig.json."""
        hosts_from_env = _hosts(self.environ)
        current_from_env = self.environ.get(CURRENT_HOST_ENV, "").strip()
        if hosts_from_env and current_from_env:
            hosts, current = hosts_from_env, current_from_env
        elif self.resource_config_file.is_file():
            raw = read_json_file(self.resource_config_file)
            hosts = tuple(str(h) for h in raw.get("hosts", []))
            current = str(raw.get("current_host", ""))
        else:
            return ResourceConfig(current_host="algo-1", hosts=("algo-1",))
        if not hosts or current not in hosts:
            raise ContractError(
                f"{self.resource_config_file}: current_host {current!r} is not among hosts "
                f"{list(hosts)}; SageMaker writes both, so fix the file or the SM_HOSTS and "
                "SM_CURRENT_HOST variables."
            )
        return ResourceConfig(current_host=current, hosts=hosts)


def load(environ: Mapping[str, str] | None = None) -> Contract:
    """The contract of an environment (os.environ when None); reads only the base dir."""
    env = dict(os.environ if environ is None else environ)
    return Contract(base_dir=Path(env.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR), environ=env)


def _hosts(env: Mapping[str, str]) -> tuple[str, ...] | None:
    """SM_HOSTS as SageMaker sets it, a JSON list of host names; None when unset."""
    raw = env.get(HOSTS_ENV, "").strip()
    if not raw:
        return None
    try:
        hosts = json.loads(raw)
    except json.JSONDecodeError:
        hosts = None
    if not (
        isinstance(hosts, list)
        and hosts
        and all(isinstance(host, str) and host.strip() for host in hosts)
    ):
        raise ContractError(
            f"Environment variable {HOSTS_ENV} has value {raw!r}; SageMaker sets it to a "
            'JSON list of host names such as ["algo-1", "algo-2"]: fix it or unset it.'
        )
    return tuple(hosts)


def _int(env: Mapping[str, str], name: str, minimum: int, maximum: int | None = None) -> int | None:
    """A whole-number variable, None when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise ContractError(
            f"Environment variable {name} has value {raw!r}; use a whole number {allowed}."
        )
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    """A true/false variable (any case), False when unset."""
    raw = env.get(name, "").strip()
    if raw.lower() not in ("", "true", "false"):
        raise ContractError(f"Environment variable {name} has value {raw!r}; use true or false.")
    return raw.lower() == "true"


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    # inf passes `> 0` but no limit is infinite: gunicorn's heartbeat, the byte limit and
    # /execution-parameters' JSON each need a number.
    if not (value > 0 and math.isfinite(value)):
        raise ContractError(
            f"Environment variable {name} has value {raw!r}; use a positive, finite number."
        )
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first when unset), case-insensitive."""
    raw = env.get(name, "").strip()
    if not raw:
        return choices[0]
    if raw.lower() not in choices:
        raise ContractError(
            f"Environment variable {name} has value {raw!r}; use one of {', '.join(choices)}."
        )
    return raw.lower()


def read_json_file(path: Path) -> dict[str, Any]:
    """A JSON object from one of SageMaker's config files, with a clear error."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ContractError(f"{path} is not readable JSON ({error}).") from error
    if not isinstance(data, dict):
        raise ContractError(f"{path} must hold a JSON object.")
    return data
