"""What `serve` runs with: SageMaker's serving variables (via contract.py), the model's needs
and the machine's cores, shared out between the workers.

A multi-model server (SAGEMAKER_MULTI_MODEL=true) has no model when it starts: SageMaker
loads them later through /models, into /opt/ml/models.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from smvision.algorithms.features import backbones
from smvision.algorithms.features.backbones import BackboneMissingError
from smvision.core.artifacts import read_metadata
from smvision.core.contract import (
    DEFAULT_MODEL_LOAD_TIMEOUT_S,
    METADATA_FILE,
    MULTI_MODEL_ENV,
    TTA_ENV,
    WORKERS_ENV,
    Contract,
    ContractError,
)
from smvision.core.machine import available_cores
from smvision.schema import specs
from smvision.schema.params import TTA_MODES, HyperparameterError
from smvision.serving import models

# SIGTERM must end the server within 30 s; this leaves the master time to exit after
# the workers' in-flight requests are done.
GRACEFUL_SHUTDOWN_S = 25
# A proxy in front must close idle connections before the server does, or a request can
# meet a connection the server is closing; load balancers commonly keep them 60 s.
KEEPALIVE_S = 75
MIN_HEARTBEAT_S = 30
_WHERE_MODELS_COME_FROM = (
    "Point SAGEMAKER_BASE_DIR (or the endpoint's model data) at the model/ directory that "
    "smvision's train wrote."
)


class ModelDirectoryError(ValueError):
    """A model directory that `serve` cannot serve."""


@dataclass(frozen=True)
class ServerSettings:
    model_dir: Path
    algorithm: str
    port: int
    workers: int
    timeout_s: float
    max_payload_mb: float
    # Decoding threads (and OpenCV's) in each worker: the cores shared out between the
    # workers, so that svm's worker per core does not make cores x cores threads.
    threads_per_worker: int
    serve_format: str = "auto"
    keras_runtime: str = "auto"
    # What serve_format picked: the trained model, or the export it will run.
    model: models.Choice = models.Choice(None)
    # A multi-model server: model_dir holds the models SageMaker loads, one folder each.
    multi_model: bool = False
    # The memory a multi-model server gives its models (SMVISION_MODELS_MEMORY_MB); None:
    # what the container has, less the server's own (model_table.default_budget_mb).
    models_memory_mb: float | None = None
    # Defaults of the custom attributes tta= and coverage= (SMVISION_TTA, SMVISION_COVERAGE).
    tta: str = "none"
    coverage: float | None = None
    # How long a model's load (files, compile, warm-up) may take before it is given up.
    load_timeout_s: float = DEFAULT_MODEL_LOAD_TIMEOUT_S

    @property
    def max_payload_bytes(self) -> int:
        return int(self.max_payload_mb * 1024 * 1024)

    @property
    def heartbeat_timeout_s(self) -> int:
        """How long a worker's event loop may stall before gunicorn replaces the worker."""
        return max(MIN_HEARTBEAT_S, math.ceil(self.timeout_s))


def settings_from(contract: Contract, cores: int | None = None) -> ServerSettings:
    """Settings for serving the model in `contract.model_dir` on `cores` cores (default:
    those this process may use); fails early if the model directory is unusable."""
    cores = cores or available_cores()
    if contract.multi_model:
        return multi_model_settings(contract, cores)
    algorithm = algorithm_of(contract.model_dir)
    try:
        choice = models.choose(contract.model_dir, contract.serve_format)
    except models.ExportError as error:
        raise ModelDirectoryError(str(error)) from error
    workers = contract.workers or default_workers(algorithm, cores)
    return ServerSettings(
        model_dir=contract.model_dir,
        algorithm=algorithm,
        port=contract.port,
        workers=workers,
        timeout_s=contract.timeout_s,
        max_payload_mb=contract.max_payload_mb,
        threads_per_worker=threads_per_worker(cores, workers),
        serve_format=contract.serve_format,
        keras_runtime=contract.keras_runtime,
        model=choice,
        tta=answer_tta(contract),
        coverage=contract.coverage,
        load_timeout_s=contract.model_load_timeout_s,
    )


def multi_model_settings(contract: Contract, cores: int) -> ServerSettings:
    """One worker: SAGEMAKER_MODEL_SERVER_WORKERS above 1 is refused (ContractError), as
    the worker count cannot be honoured. SageMaker sends each
    POST /models to one connection, so with several workers the model would be loaded in
    one of them while its requests reach the others. Multi Model Server solves it with a
    front end that routes every model's requests to that model's own worker processes;
    the TensorFlow Serving container runs one gunicorn worker that starts a TensorFlow
    Serving process per model. Here one worker holds every model, each with an inference
    thread of its own, and uses every core: decoding, scikit-learn's and LiteRT's
    predictions release the GIL."""
    if contract.workers is not None and contract.workers > 1:
        raise ContractError(
            f"{WORKERS_ENV} is {contract.workers} and {MULTI_MODEL_ENV} is true: a "
            "multi-model server runs one worker, which holds every model SageMaker loads; "
            f"unset {WORKERS_ENV}."
        )
    return ServerSettings(
        model_dir=contract.models_dir,
        algorithm="multi-model",
        port=contract.port,
        workers=1,
        timeout_s=contract.timeout_s,
        max_payload_mb=contract.max_payload_mb,
        threads_per_worker=cores,
        serve_format=contract.serve_format,
        keras_runtime=contract.keras_runtime,
        multi_model=True,
        models_memory_mb=contract.models_memory_mb,
        tta=answer_tta(contract),
        coverage=contract.coverage,
        load_timeout_s=contract.model_load_timeout_s,
    )


def answer_tta(contract: Contract) -> str:
    """SMVISION_TTA, checked against the test-time augmentations serve knows."""
    if contract.tta not in TTA_MODES:
        raise ContractError(
            f"{TTA_ENV} is '{contract.tta}'; use one of {', '.join(TTA_MODES)}, or unset it."
        )
    return contract.tta


def algorithm_of(model_dir: Path) -> str:
    """The algorithm metadata.json names, once it says what serving needs to know."""
    metadata_file = model_dir / METADATA_FILE
    try:
        metadata = read_metadata(model_dir)
    except FileNotFoundError as error:
        raise ModelDirectoryError(f"{error} {_WHERE_MODELS_COME_FROM}") from error
    except json.JSONDecodeError as error:
        raise ModelDirectoryError(
            f"{metadata_file} is not readable JSON ({error}). {_WHERE_MODELS_COME_FROM}"
        ) from error
    except (OSError, ValueError) as error:
        raise ModelDirectoryError(
            f"{metadata_file} cannot be served: {str(error).rstrip('.')}. {_WHERE_MODELS_COME_FROM}"
        ) from error
    try:
        algorithm = specs.get(metadata.get("algorithm")).name
    except HyperparameterError as error:
        raise ModelDirectoryError(f"{metadata_file}: {error}") from error
    class_names = metadata.get("class_names")
    if not (
        isinstance(class_names, list)
        and class_names
        and all(isinstance(name, str) for name in class_names)
    ):
        raise ModelDirectoryError(
            f"{metadata_file} has class_names {json.dumps(class_names)[:80]}; it must be the "
            f"list of class names, as train writes it. {_WHERE_MODELS_COME_FROM}"
        )
    try:  # a features=deep model needs the very weights it was trained with
        backbones.check_model_dir(model_dir, metadata)
    except BackboneMissingError as error:
        raise ModelDirectoryError(str(error)) from error
    return algorithm


def default_workers(algorithm: str, cores: int) -> int:
    """The table's worker count for the algorithm (see specs.py for why), else one per core."""
    return specs.get(algorithm).serve_workers or cores


def threads_per_worker(cores: int, workers: int) -> int:
    """Each worker's share of the cores, at least one thread: its budget, which its model
    runtime's threads, its decoding pool and OpenCV's pool each get, and all the workers'
    budgets add up to the cores."""
    return max(1, cores // workers)


def inference_threads(budget: int) -> int:
    """Threads that take batches in turn in a worker of `budget` cores: two once it has two
    cores, so that one decodes the next batch while the other predicts; one on a single
    core, where the two would only take the core from each other."""
    return 2 if budget >= 2 else 1
