"""A model directory -> a model ready to serve: loaded, compiled, its inference thread
started, warmed up. The one way `serve` loads its model, and each of a multi-model
endpoint's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smvision.core.artifacts import read_metadata
from smvision.core.contract import METADATA_FILE
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
    def load(cls, model_dir: Path, settings: ServerSettings) -> LoadedModel:
        """Load, start and warm up: the first prediction traces and allocates, so the first
        request is answered as fast as any later one."""
        predictor = Predictor.load(
            model_dir,
            settings.serve_format,
            settings.keras_runtime,
            settings.threads_per_worker,
            default_tta=settings.tta,
            default_coverage=settings.coverage,
        )
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
    """What loading the model in `model_dir` will take, read from its files alone.

    Raises FileNotFoundError when the directory holds no model, ValueError (naming the file
    and the fix) when it holds one `serve` cannot run."""
    if not (model_dir / METADATA_FILE).is_file():
        raise FileNotFoundError(
            f"{model_dir / METADATA_FILE} is missing: the folder holds no model that "
            "smvision's train wrote."
        )
    algorithm_of(model_dir)
    choice = models.choose(model_dir, settings.serve_format)
    metadata = read_metadata(model_dir)
    engine = models.engine(metadata, choice, settings.keras_runtime)
    compiling = models.compiles_in_child(metadata, choice, settings.keras_runtime)
    return ModelPlan(
        engine,
        process_memory.size_on_disk_mb(models.loaded_files(model_dir, metadata, choice)),
        process_memory.COMPILE_CHILD_MB if compiling else 0.0,
    )
