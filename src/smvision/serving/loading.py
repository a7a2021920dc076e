"""A model directory -> a model ready to serve: loaded, compiled, its inference thread
started, warmed up. The one way `serve` loads its model, and each of a multi-model
endpoint's.
"""

from __future__ import annotations

import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from smvision.core.artifacts import ModelFileError, read_metadata
from smvision.core.contract import METADATA_FILE
from smvision.schema import specs
from smvision.serving import models, process_memory
from smvision.serving.batcher import MicroBatcher
from smvision.serving.inference import MAX_BATCH_IMAGES, Predictor, Request
from smvision.serving.model_table import ModelPlan
from smvision.serving.settings import ServerSettings, algorithm_of, inference_threads


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve: the predictor and its inference thread."""

    predictor: Predictor
    batcher: MicroBatcher[Request, bytes]

    @classmethod
    def load(
        cls, model_dir: Path, settings: ServerSettings, given_up: threading.Event | None = None
    ) -> LoadedModel:
        """Load, start and warm up: the first prediction traces and allocates, so the first
        request is answered as fast as any later one. Once `given_up` is set (nobody waits
        for this load any more) a compile under way is killed."""
        token = models.load_given_up.set(given_up)
        try:
            predictor = Predictor.load(
                model_dir,
                settings.serve_format,
                settings.keras_runtime,
                settings.threads_per_worker,
                default_tta=settings.tta,
                default_coverage=settings.coverage,
            )
        finally:
            models.load_given_up.reset(token)
        # Requests hold an image each at least: a batch of MAX_BATCH_IMAGES requests is
        # enough to fill a prediction, and respond() predicts no more images at once.
        batcher: MicroBatcher[Request, bytes] = MicroBatcher(
            predictor.respond,
            MAX_BATCH_IMAGES,
            threads=inference_threads(settings.threads_per_worker),
        )
        batcher.start()
        try:
            batcher.submit(predictor.warm_up_request()).result()
        except BaseException:
            batcher.stop(0)
            predictor.close()
            raise
        return cls(predictor, batcher)

    def stop(self, timeout: float | None) -> None:
        """Finish what is queued, then end the inference and decoding threads (the server is
        shutting down: after `timeout` seconds they are ended whatever they do)."""
        self.batcher.stop(timeout)
        self.predictor.close()

    def unload(self, name: str) -> None:
        """Finish every batch queued, waiting as long as that takes, then end the threads;
        a request that comes after gets 404."""
        self.batcher.stop(None, f"Model {name} was unloaded; POST /models loads it again.", 404)
        self.predictor.close()


def plan(model_dir: Path, settings: ServerSettings) -> ModelPlan:
    """What loading the model in `model_dir` (a folder under `settings.model_dir`, where
    SageMaker puts a multi-model endpoint's models) will take, read from its files alone.

    Raises FileNotFoundError when the directory holds no model, ValueError (naming the file
    and the fix) when it holds one `serve` cannot run or lies outside the model root."""
    root = settings.model_dir
    _check_inside(model_dir, root, model_dir)
    if not (model_dir / METADATA_FILE).is_file():
        raise FileNotFoundError(
            f"{model_dir / METADATA_FILE} is missing: the folder holds no model that "
            "smvision's train wrote."
        )
    _check_inside(model_dir / METADATA_FILE, root, model_dir)
    algorithm_of(model_dir)
    choice = models.choose(model_dir, settings.serve_format)
    metadata = read_metadata(model_dir)
    files = models.loaded_files(model_dir, metadata, choice)
    for path in files:
        if path.parent == model_dir:  # not the image's own backbone weights
            _check_model_file(path, root, model_dir)
    engine = models.engine(metadata, choice, settings.keras_runtime)
    compiling = models.compiles_in_child(metadata, choice, settings.keras_runtime)
    # A Keras model compiled before (loaded again after an eviction) is read from the cache.
    fmt = models.resolved_keras_runtime(specs.get(metadata["algorithm"]), settings.keras_runtime)
    if compiling and models.compiled_before(model_dir, fmt):
        compiling = False
    return ModelPlan(
        engine,
        process_memory.size_on_disk_mb(files),
        process_memory.COMPILE_CHILD_MB if compiling else 0.0,
    )


def _check_inside(path: Path, root: Path, model_dir: Path) -> None:
    """ModelFileError when `path`, its links followed, lies outside `root`."""
    if not path.resolve().is_relative_to(root.resolve()):
        shown = path.name if path != model_dir else str(path)
        raise ModelFileError(
            f"{shown} leads to {path.resolve()}, outside {root}, where SageMaker puts the "
            "models; POST /models loads only from the folders under it."
        )


def _check_model_file(path: Path, root: Path, model_dir: Path) -> None:
    """A file the load reads: there, a regular file (opening a FIFO or a device could wait
    for ever), not empty, and within the model root."""
    try:
        status = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path.name} is missing from {model_dir}: copy the whole model.tar.gz that "
            "train wrote."
        ) from None
    if not stat.S_ISREG(status.st_mode):
        raise ModelFileError(
            f"{path.name} is not a regular file; the model's files must be the files train wrote."
        )
    if status.st_size == 0:
        raise ModelFileError(
            f"{path.name} is empty (0 bytes): the model was cut short on its way; copy "
            "the whole model.tar.gz again."
        )
    _check_inside(path, root, model_dir)
