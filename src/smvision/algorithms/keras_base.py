"""What cnn and resnet50 share: the input pipeline, the training loop, saving.

One custom training loop serves one CPU, several GPUs (MirroredStrategy) and several
hosts (MultiWorkerMirroredStrategy). Keras 3's `model.fit` fails under
MultiWorkerMirroredStrategy (keras-team/keras#20585), so the loop is written out with
`strategy.run`, and what `fit` gives for free is done here: one log line and metric
lines per epoch, early stopping on validation loss (restoring the best weights), and a
checkpoint per epoch that a restarted job (managed spot training) resumes from
(checkpoints.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from smvision.algorithms import augmentation, gradcam, losses
from smvision.algorithms.base import (
    KERAS_MODEL_FILE,
    Algorithm,
    AlgorithmInputError,
    History,
    RunContext,
)
from smvision.algorithms.checkpoints import Checkpoints, LoopState, workers_agree
from smvision.data import images
from smvision.data.dataset import Dataset
from smvision.model import evaluation, runtimes
from smvision.model.parent import ParentModel
from smvision.schema.hyperparameters import Hyperparameters

log = logging.getLogger(__name__)

MODEL_FILE = KERAS_MODEL_FILE
PREDICT_BATCH = 64
MULTI_LABEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class Phase:
    """A stretch of training with one optimizer: resnet50 trains its head, then fine-tunes."""

    name: str
    epochs: int
    learning_rate: float


@dataclass(frozen=True)
class FeatureCache:
    """What a phase trains on in place of images, when what lies below the layers it trains
    is frozen: the frozen layers' output, computed once per image instead of once per image
    and epoch. `train` holds `views` x N of them (augmented views of each image when
    augmentation is on, a random one of them per image and epoch), `validation` M; `model`
    maps them to probabilities and shares its layers (and so its weights) with the whole
    model, which checkpoints, early stopping and the saved model keep using."""

    model: Any
    train: np.ndarray
    validation: np.ndarray | None

    @property
    def views(self) -> int:
        return int(self.train.shape[0])

    def validation_probabilities(self) -> np.ndarray:
        assert self.validation is not None
        parts = [
            self.model(self.validation[start : start + PREDICT_BATCH].astype(np.float32))
            for start in range(0, len(self.validation), PREDICT_BATCH)
        ]
        return np.concatenate([np.asarray(part, np.float32) for part in parts])


class KerasAlgorithm(Algorithm):
    """A Keras model behind the Algorithm interface; subclasses build the model."""

    def __init__(self, image_size: int, channels: int, class_count: int, model: Any = None) -> None:
        super().__init__(image_size, channels, class_count)
        self.model = model
        self._predict_fn: Any = None
        self._serving: runtimes.Runtime | None = None

    # What subclasses decide -------------------------------------------------------------

    @abstractmethod
    def build_model(self, hp: Hyperparameters, run: RunContext) -> Any:
        """The Keras model: float32 pixels in [0, 255] in, class probabilities out (softmax;
        a sigmoid per class for a multi-label job: `output_activation`). Its last layer is
        the output layer that reinitialize_top_layer replaces."""

    def phases(self, hp: Hyperparameters) -> list[Phase]:
        return [Phase("train", hp.integer("epochs"), hp.real("learning_rate"))]

    def enter_phase(self, phase: Phase, hp: Hyperparameters) -> None:
        """Change what is trainable before a phase starts."""

    def phase_cache(
        self,
        phase: Phase,
        hp: Hyperparameters,
        train: Dataset,
        validation: Dataset | None,
        run: RunContext,
    ) -> FeatureCache | None:
        """The cached inputs `phase` trains on (called once its trainable layers are set),
        or None: it trains on the images."""
        return None

    def release_caches(self) -> None:
        """Let go of what phase_cache kept, once training is over."""

    def fingerprint_extra(self, hp: Hyperparameters) -> dict[str, object]:
        return {}

    @staticmethod
    def output_activation(hp: Hyperparameters) -> str:
        return "sigmoid" if hp.flag("multi_label") else "softmax"

    # Training ---------------------------------------------------------------------------

    def fit(
        self, train: Dataset, validation: Dataset | None, hp: Hyperparameters, run: RunContext
    ) -> History:
        # The precision policy is global to the process: a fit that fails must not leave
        # float16 behind for whatever builds a model next (a retry, a test, a notebook).
        policy = keras.mixed_precision.global_policy()
        try:
            return self._fit(train, validation, hp, run)
        finally:
            keras.mixed_precision.set_global_policy(policy)

    def _fit(
        self, train: Dataset, validation: Dataset | None, hp: Hyperparameters, run: RunContext
    ) -> History:
        strategy = run.create_strategy()
        mixed = _use_mixed_precision(hp)
        keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
        keras.utils.set_random_seed(hp.integer("seed"))
        loop = self._training_loop(strategy, hp, run, mixed)
        with strategy.scope():
            self.model = self.build_model(hp, run)
            if run.parent is not None:
                self._start_from(run.parent, run)
        state = self._resume_state(loop)
        train_fn = loop.train_input(train)
        validation_input = loop.validation_input(validation) if validation is not None else None
        if validation is not None and loop.patience:
            first = max(1, math.ceil(loop.warmup_steps / loop.steps))
            run.info(
                f"Early stopping watches validation loss from epoch {first} on "
                f"({loop.steps} steps an epoch, early_stopping_warmup_steps="
                f"{loop.warmup_steps})."
            )
        ran: list[tuple[Phase, int]] = []  # each phase that ran, and the epoch it began after
        try:
            for index, phase in enumerate(self.phases(hp)):
                if index < state.phase or phase.epochs == 0:
                    continue
                if index > state.phase:  # early stopping ends a phase, not those after it
                    state.stopped_early, state.bad_epochs = False, 0
                if state.stopped_early:
                    continue
                optimizer = self._start_phase(loop, index, phase, state)
                ran.append((phase, state.epochs_done - state.epoch_in_phase))
                cache = self.phase_cache(phase, hp, train, validation, run)
                if cache is None:
                    loop.run_phase(phase, optimizer, train_fn, validation_input, state)
                    continue
                cached_validation = (
                    loop.cached_validation_input(cache, validation)
                    if validation is not None and cache.validation is not None
                    else None
                )
                loop.run_phase(
                    phase,
                    optimizer,
                    loop.cached_train_input(cache, train.labels),
                    cached_validation,
                    state,
                    cache,
                )
        finally:
            self.release_caches()
        if validation is not None and loop.checkpoints.has_best():
            loop.checkpoints.restore_best(self.model)
            run.info(
                f"Restored the weights of the best epoch (validation loss {state.best_loss:.4f})."
            )
            _say_when_the_last_phase_did_not_help(ran, state, run)
        if mixed:
            self.model = self._float32_copy(hp, run)
        self._predict_fn = None  # traced for the model of the epochs, which may be replaced
        return state.history

    def _training_loop(
        self, strategy: Any, hp: Hyperparameters, run: RunContext, mixed: bool
    ) -> TrainingLoop:
        """Batch sizes and steps for this cluster, and where checkpoints go."""
        replicas = strategy.num_replicas_in_sync
        per_replica_batch = hp.integer("batch_size")
        largest = max(1, run.train_total // replicas)
        if per_replica_batch > largest:
            log.warning(
                f"batch_size {per_replica_batch} is more than the {run.train_total} train "
                f"images give each of {replicas} replica(s); training with batch_size "
                f"{largest} instead (SageMaker's built-in algorithm fails here)."
            )
            per_replica_batch = largest
        global_batch = per_replica_batch * replicas
        steps = max(1, math.ceil(run.train_total / global_batch))
        run.info(
            f"{replicas} replica(s), per-replica batch {per_replica_batch}, global batch "
            f"{global_batch}, {steps} steps per epoch, mixed precision {'on' if mixed else 'off'}."
        )
        # Only the first host writes checkpoints; SageMaker gives every host of a restarted
        # job the same checkpoint prefix, so every worker resumes from the same epoch.
        checkpoints = Checkpoints(
            run.checkpoint_dir,
            self._fingerprint(hp, run.train_total, run.parent),
            writer=run.worker_index == 0,
        )
        return TrainingLoop(self, strategy, hp, run, checkpoints, per_replica_batch, steps, mixed)

    def _resume_state(self, loop: TrainingLoop) -> LoopState:
        """The checkpoint's loop state, when every worker found the same one; else afresh."""
        state = loop.checkpoints.restore_state()
        if loop.run.worker_count > 1 and not workers_agree(loop.strategy, state.epochs_done):
            loop.run.info(
                f"Workers found checkpoints of different epochs (here {state.epochs_done}); "
                "all of them start afresh so that their weights stay identical."
            )
            return LoopState(loop.checkpoints.fingerprint)
        return state

    def _start_phase(self, loop: TrainingLoop, index: int, phase: Phase, state: LoopState) -> Any:
        """The phase's optimizer, with the checkpoint's weights when the phase resumes."""
        self.enter_phase(phase, loop.hp)
        with loop.strategy.scope():
            optimizer = _optimizer(
                loop.hp.text("optimizer"),
                phase.learning_rate * loop.strategy.num_replicas_in_sync,
                loop.mixed,
            )
            optimizer.build(self.model.trainable_variables)
        if index == state.phase and state.epoch_in_phase > 0:
            loop.checkpoints.restore_weights(self.model, optimizer)
            loop.run.info(
                f"Resuming from checkpoint: phase '{phase.name}' after epoch "
                f"{state.epoch_in_phase} of {phase.epochs} ({state.epochs_done} epochs done)."
            )
        elif index != state.phase:
            state.phase, state.epoch_in_phase = index, 0
        return optimizer

    def _start_from(self, parent: ParentModel, run: RunContext) -> None:
        """The parent's weights, layer by layer; all but the output layer when this job
        gives the model a new one (reinitialize_top_layer)."""
        earlier = keras.saving.load_model(parent.directory / MODEL_FILE, compile=False)
        layers, theirs = self.model.layers, earlier.layers
        shapes = [[w.shape for w in layer.get_weights()] for layer in layers]
        their_shapes = [[w.shape for w in layer.get_weights()] for layer in theirs]
        copied = len(layers) if parent.keeps_head else len(layers) - 1
        if len(layers) != len(theirs) or shapes[:copied] != their_shapes[:copied]:
            raise AlgorithmInputError(
                f"The model channel's {parent.algorithm} model has {len(theirs)} layers of "
                f"other shapes than this job's ({len(layers)} layers): it was built with "
                "other settings; continue it with the hyperparameters it was trained with "
                "(its metadata.json lists them)."
            )
        for layer, earlier_layer in zip(layers[:copied], theirs[:copied]):
            layer.set_weights(earlier_layer.get_weights())
        run.info(
            f"Starting from the model channel's weights ({copied} of {len(layers)} layers"
            f"{'' if parent.keeps_head else '; a new output layer for this job'})."
        )

    def _float32_copy(self, hp: Hyperparameters, run: RunContext) -> Any:
        """The same weights in a float32 model, so CPU endpoints do not compute in float16."""
        keras.mixed_precision.set_global_policy("float32")
        weights = self.model.get_weights()
        model = self.build_model(hp, run)
        model.set_weights(weights)
        return model

    def _fingerprint(
        self, hp: Hyperparameters, train_total: int, parent: ParentModel | None
    ) -> str:
        relevant = {
            "algorithm": hp.algorithm,
            "image_size": self.image_size,
            "channels": self.channels,
            "classes": self.class_count,
            "train_images": train_total,
            "values": {k: str(v) for k, v in sorted(hp.values.items())},
        } | self.fingerprint_extra(hp)
        if parent is not None:  # a checkpoint of a job that continued another model
            relevant["parent"] = parent.digest
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    # Inference --------------------------------------------------------------------------

    def predict_proba(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("predict_proba() before fit() or load().")
        prepared = np.stack([images.prepare(i, self.image_size, self.channels) for i in batch])
        if self._serving is not None:
            return self._serving.predict(prepared)
        if self._predict_fn is None:
            self._predict_fn = _compiled_predict(self.model, self.image_size, self.channels)
        parts = [
            self._predict_fn(prepared[start : start + PREDICT_BATCH]).numpy()
            for start in range(0, len(prepared), PREDICT_BATCH)
        ]
        return np.concatenate(parts).astype(np.float32)

    def compile_for_serving(self, runtime: str, threads: int) -> None:
        """'xla': TensorFlow's graph JIT-compiled by XLA for each of runtimes.BATCH_SIZES
        at start (no faster than TensorFlow's oneDNN kernels on the bench machine:
        bench/NOTES.md). 'tensorflow': the graph training's evaluation runs, every batch
        size as it comes. ('tflite' never gets here: serve compiles the saved model in a
        child process and runs no TensorFlow itself, smvision.serving.models.)"""
        if self.model is None:
            raise RuntimeError("compile_for_serving() before fit() or load().")
        if runtime == "xla":
            self._serving = _XlaRuntime(self.model, self.image_size, self.channels)
        elif runtime != "tensorflow":
            raise ValueError(f"Keras runtime '{runtime}' here: use xla or tensorflow.")

    def saliency_parts(self) -> tuple[Callable[[Any], Any], Callable[[Any], Any]] | None:
        """Float32 pixels -> the last convolutional feature maps, and those maps -> the
        classifier's logits, for Grad-CAM; None when the model has no such split."""
        return None

    def saliency(self, images: np.ndarray, classes: np.ndarray) -> np.ndarray | None:
        """Grad-CAM of `classes` over prepared images: one map in [0, 1] per image."""
        parts = self.saliency_parts()
        if self.model is None or parts is None:
            return None
        return gradcam.heat_maps(*parts, images, classes)

    def save(self, model_dir: Path) -> None:
        self.model.save(model_dir / MODEL_FILE)

    @classmethod
    def load(cls, model_dir: Path) -> KerasAlgorithm:
        _configure_gpu_memory_growth()
        model = keras.saving.load_model(model_dir / MODEL_FILE, compile=False)
        _, size, _, channels = model.input_shape
        return cls(int(size), int(channels), int(model.output_shape[-1]), model)


class TrainingLoop:
    """Epochs of distributed steps with per-epoch metrics, checkpoints and early stopping."""

    def __init__(
        self,
        algorithm: KerasAlgorithm,
        strategy: Any,
        hp: Hyperparameters,
        run: RunContext,
        checkpoints: Checkpoints,
        per_replica_batch: int,
        steps: int,
        mixed: bool,
    ) -> None:
        self.algorithm = algorithm
        self.strategy = strategy
        self.hp = hp
        self.run = run
        self.checkpoints = checkpoints
        self.per_replica_batch = per_replica_batch
        self.global_batch = per_replica_batch * strategy.num_replicas_in_sync
        self.steps = steps
        self.mixed = mixed
        self.patience = hp.integer("early_stopping_patience")
        self.warmup_steps = hp.integer("early_stopping_warmup_steps")
        self.multi_label = hp.flag("multi_label")
        self.validation: Dataset | None = None
        self.extra_measure: str | None = None
        if self.multi_label:
            self.extra_measure = "f1_micro"
        elif algorithm.class_count == 2 and hp.text("eval_metric") != "accuracy":
            self.extra_measure = hp.text("eval_metric")

    def _label_spec(self) -> tuple[Any, Any, list[int]]:
        """The labels' NumPy type, TensorFlow type and shape (after the batch dimension)."""
        if self.multi_label:
            return np.float32, tf.float32, [self.algorithm.class_count]
        return np.int32, tf.int32, []

    def train_input(self, train: Dataset) -> Any:
        """A distributed, infinite, shuffled and augmented dataset of this worker's shard.

        Images come from `train.take`, in tf.data's parallel calls: slices of the array in
        memory or of the decoded cache, or decoded there and then when the data set streams.
        """
        size, channels = self.algorithm.image_size, self.algorithm.channels
        augmenter = augmentation.augmenter(self.hp, size)
        seed = self.hp.integer("seed") + self.run.worker_index
        count = len(train)
        numpy_labels, tf_labels, label_shape = self._label_spec()

        def gather(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return train.take(index), train.labels[index].astype(numpy_labels)

        def dataset_fn(context: Any) -> Any:
            batch = context.get_per_replica_batch_size(self.global_batch)
            indices = tf.data.Dataset.range(count).shuffle(count, seed=seed).repeat()
            batches = indices.batch(batch, drop_remainder=True)

            def load(index: Any) -> tuple[Any, Any]:
                pixels, labels = tf.numpy_function(gather, [index], [tf.uint8, tf_labels])
                pixels = tf.cast(tf.ensure_shape(pixels, [batch, size, size, channels]), tf.float32)
                if augmenter is not None:
                    pixels = augmenter(pixels, training=True)
                return pixels, tf.ensure_shape(labels, [batch, *label_shape])

            return batches.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

        return dataset_fn

    def cached_train_input(self, cache: FeatureCache, labels: np.ndarray) -> Any:
        """train_input over a phase's cached tensors: each epoch every image once, shuffled,
        as one of its views drawn at random (seeded)."""
        views, count = cache.train.shape[:2]
        shape = list(cache.train.shape[2:])
        seed = self.hp.integer("seed") + self.run.worker_index
        numpy_labels, tf_labels, label_shape = self._label_spec()

        def gather(index: np.ndarray, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return cache.train[view, index].astype(np.float32), labels[index].astype(numpy_labels)

        def dataset_fn(context: Any) -> Any:
            batch = context.get_per_replica_batch_size(self.global_batch)
            indices = tf.data.Dataset.range(count).shuffle(count, seed=seed).repeat()
            chosen = tf.data.Dataset.random(seed=seed).map(lambda r: tf.math.floormod(r, views))
            pairs = tf.data.Dataset.zip((indices, chosen)).batch(batch, drop_remainder=True)

            def load(index: Any, view: Any) -> tuple[Any, Any]:
                values, labels = tf.numpy_function(gather, [index, view], [tf.float32, tf_labels])
                return (
                    tf.ensure_shape(values, [batch, *shape]),
                    tf.ensure_shape(labels, [batch, *label_shape]),
                )

            return pairs.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

        return dataset_fn

    def cached_validation_input(self, cache: FeatureCache, validation: Dataset) -> tuple[Any, int]:
        """validation_input over the phase's cached validation tensors."""
        assert cache.validation is not None
        values = cache.validation
        self.validation = validation
        return self._validation_slices(
            validation.labels,
            lambda rows: values[rows].astype(np.float32),
            list(values.shape[1:]),
            np.float32,
            tf.float32,
        )

    def validation_input(self, validation: Dataset) -> tuple[Any, int]:
        """This worker's slice of validation, padded (weight 0) so all workers step alike."""
        self.validation = validation
        size, channels = self.algorithm.image_size, self.algorithm.channels
        return self._validation_slices(
            validation.labels, validation.take, [size, size, channels], np.uint8, tf.uint8
        )

    def _validation_slices(
        self,
        all_labels: np.ndarray,
        take: Callable[[np.ndarray], np.ndarray],
        shape: list[int],
        numpy_type: Any,
        tf_type: Any,
    ) -> tuple[Any, int]:
        """Batches of (inputs as float32, labels, weights) of this worker's validation rows;
        `take` gives the inputs of some rows."""
        workers, index = self.run.worker_count, self.run.worker_index
        local_replicas = self.strategy.num_replicas_in_sync // workers
        per_worker_batch = self.per_replica_batch * local_replicas
        slice_size = math.ceil(len(all_labels) / workers)
        steps = max(1, math.ceil(slice_size / per_worker_batch))
        own = np.arange(index, len(all_labels), workers)
        rows = np.full(steps * per_worker_batch, -1, dtype=np.int64)
        rows[: len(own)] = own
        numpy_labels, tf_labels, label_shape = self._label_spec()

        def gather(batch_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            real = batch_rows >= 0
            pixels = np.zeros((len(batch_rows), *shape), dtype=numpy_type)
            labels = np.zeros((len(batch_rows), *label_shape), dtype=numpy_labels)
            if real.any():
                pixels[real] = take(batch_rows[real])
                labels[real] = all_labels[batch_rows[real]]
            return pixels, labels, real.astype(np.float32)

        def dataset_fn(context: Any) -> Any:
            batch = context.get_per_replica_batch_size(self.global_batch)

            def load(batch_rows: Any) -> tuple[Any, Any, Any]:
                pixels, labels, weights = tf.numpy_function(
                    gather, [batch_rows], [tf_type, tf_labels, tf.float32]
                )
                pixels = tf.ensure_shape(pixels, [batch, *shape])
                return (
                    tf.cast(pixels, tf.float32),
                    tf.ensure_shape(labels, [batch, *label_shape]),
                    tf.ensure_shape(weights, [batch]),
                )

            data = tf.data.Dataset.from_tensor_slices(rows).batch(batch)
            return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)

        return dataset_fn, steps

    def epoch_measure(self, cache: FeatureCache | None = None) -> dict[str, float]:
        """The measure tuning follows, when loss and accuracy are not it: validation:f1_micro
        for a multi-label model, validation:EVAL_METRIC for two classes."""
        measure = self.extra_measure
        if measure is None or self.validation is None:
            return {}
        if cache is not None and cache.validation is not None:
            proba = cache.validation_probabilities()
        else:
            chunks = self.validation.chunks(PREDICT_BATCH * 4)
            proba = np.concatenate([self.algorithm.predict_proba(chunk) for chunk in chunks])
        value = evaluation.measure(measure, proba, self.validation.labels)
        return {} if value is None else {f"validation:{measure}": value}

    def run_phase(
        self,
        phase: Phase,
        optimizer: Any,
        train_fn: Any,
        validation: tuple[Any, int] | None,
        state: LoopState,
        cache: FeatureCache | None = None,
    ) -> None:
        """Epochs of `phase` until it ends or stops early, each reported and checkpointed;
        on the images, or with `cache` on its tensors through its model."""
        model = self.algorithm.model if cache is None else cache.model
        train_epoch, validate = self._epoch_functions(optimizer, model)
        iterator = iter(self.strategy.distribute_datasets_from_function(train_fn))
        validation_data, validation_steps = None, 0
        if validation is not None:
            validation_fn, validation_steps = validation
            validation_data = self.strategy.distribute_datasets_from_function(validation_fn)
        examples = self.steps * self.global_batch
        total_epochs = sum(p.epochs for p in self.algorithm.phases(self.hp))
        while state.epoch_in_phase < phase.epochs and not state.stopped_early:
            started = time.perf_counter()
            loss_sum, correct = train_epoch(iterator, tf.constant(self.steps))
            train_seconds = time.perf_counter() - started
            values = {
                "train:loss": float(loss_sum) / examples,
                "train:accuracy": float(correct) / examples,
                "train:images_per_second": examples / train_seconds,
            }
            if validation_data is not None:
                v_loss, v_hits, v_count = validate(
                    iter(validation_data), tf.constant(validation_steps)
                )
                values["validation:loss"] = float(v_loss) / float(v_count)
                values["validation:accuracy"] = float(v_hits) / float(v_count)
                values |= self.epoch_measure(cache)
            state.epoch_in_phase += 1
            for name, value in values.items():
                state.history.setdefault(name, []).append(value)
            improved = self.judge_epoch(state, values)
            self.checkpoints.save(self.algorithm.model, optimizer, state, best=improved)
            self._report(
                phase, state, values, train_seconds, time.perf_counter() - started, total_epochs
            )

    def _epoch_functions(self, optimizer: Any, model: Any) -> tuple[Any, Any]:
        """Compiled functions that train one epoch of `model` and validate it once over
        every replica."""
        strategy, mixed = self.strategy, self.mixed
        count, multi_label = self.algorithm.class_count, self.multi_label
        training_loss = losses.per_example(count, self.hp.real("label_smoothing"), multi_label)
        # Validation loss stays the plain cross-entropy, comparable across label_smoothing
        # values (early stopping and a tuning job compare it).
        loss_fn = losses.per_example(count, 0.0, multi_label)
        # Right: the most likely class; for multi-label, every label at the 0.5 threshold.
        hits = _exact_matches if multi_label else _hits
        global_batch = self.global_batch

        def train_step(pixels: Any, labels: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                probabilities = model(pixels, training=True)
                per_example = training_loss(labels, probabilities)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                scaled = optimizer.scale_loss(loss) if mixed else loss
            gradients = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply(gradients, model.trainable_variables)
            return tf.reduce_sum(per_example), tf.reduce_sum(hits(labels, probabilities))

        @tf.function
        def train_epoch(iterator: Any, steps: Any) -> tuple[Any, Any]:
            loss_total, correct_total = tf.constant(0.0), tf.constant(0.0)
            for _ in tf.range(steps):
                loss_sum, correct = strategy.run(train_step, args=next(iterator))
                loss_total += strategy.reduce("SUM", loss_sum, axis=None)
                correct_total += strategy.reduce("SUM", correct, axis=None)
            return loss_total, correct_total

        def validation_step(pixels: Any, labels: Any, weights: Any) -> tuple[Any, Any, Any]:
            probabilities = model(pixels, training=False)
            per_example = loss_fn(labels, probabilities)
            return (
                tf.reduce_sum(per_example * weights),
                tf.reduce_sum(hits(labels, probabilities) * weights),
                tf.reduce_sum(weights),
            )

        @tf.function
        def validate(iterator: Any, steps: Any) -> tuple[Any, Any, Any]:
            totals = [tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)]
            for _ in tf.range(steps):
                parts = strategy.run(validation_step, args=next(iterator))
                totals = [t + strategy.reduce("SUM", p, axis=None) for t, p in zip(totals, parts)]
            return totals[0], totals[1], totals[2]

        return train_epoch, validate

    def _report(
        self,
        phase: Phase,
        state: LoopState,
        values: dict[str, float],
        train_seconds: float,
        epoch_seconds: float,
        total: int,
    ) -> None:
        summary = " ".join(f"{k}={v:.4f}" for k, v in values.items() if "images" not in k)
        speed = values["train:images_per_second"]
        self.run.info(
            f"epoch {state.epochs_done}/{total} ({phase.name} {state.epoch_in_phase}/"
            f"{phase.epochs}) {summary} train {train_seconds:.1f}s ({speed:.0f} images/s), "
            f"epoch {epoch_seconds:.1f}s"
        )
        for name, value in values.items():
            self.run.metric(name, value)

    def judge_epoch(self, state: LoopState, values: dict[str, float]) -> bool:
        """Early stopping, after each epoch's `values`: past the warm-up, a validation loss
        better than the best so far is the best (True: Checkpoints.save keeps its weights);
        `patience` epochs in a row without one set `state.stopped_early`."""
        loss = values.get("validation:loss")
        if loss is None:
            return False
        # A small data set takes few steps an epoch: on 180 images, validation accuracy sat
        # at chance for the first 30 steps while train accuracy reached 0.96, because the
        # batch-norm running statistics still held their starting values; judged then, the
        # run stopped at epoch 6 and restored epoch 1. The loop's own steps count, not epochs.
        if state.epochs_done * self.steps < self.warmup_steps:
            return False
        if state.best_loss is None or loss < state.best_loss:
            state.best_loss, state.bad_epochs = loss, 0
            state.best_epoch = state.epochs_done
            return True
        state.bad_epochs += 1
        if self.patience and state.bad_epochs >= self.patience:
            state.stopped_early = True
            self.run.info(
                f"Early stopping: validation loss has not improved for {state.bad_epochs} "
                f"epochs (best {state.best_loss:.4f})."
            )
        return False


def _say_when_the_last_phase_did_not_help(
    ran: list[tuple[Phase, int]], state: LoopState, run: RunContext
) -> None:
    """One line when a later phase (resnet50's fine-tuning) never beat the validation loss
    of the phase before it: the restored weights are the earlier phase's."""
    if len(ran) < 2 or state.best_epoch is None:
        return
    (earlier, _), (last, started_after) = ran[-2], ran[-1]
    if state.best_epoch <= started_after:
        run.info(
            f"Phase '{last.name}' did not improve the validation loss (best "
            f"{state.best_loss:.4f}, epoch {state.best_epoch}, in phase '{earlier.name}'): "
            f"the model keeps the weights of phase '{earlier.name}'."
        )


def _hits(labels: Any, probabilities: Any) -> Any:
    predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return tf.cast(tf.equal(predicted, tf.cast(labels, tf.int32)), tf.float32)


def _exact_matches(labels: Any, probabilities: Any) -> Any:
    """1 for an image whose every label is predicted right at the 0.5 threshold, else 0."""
    predicted = probabilities >= MULTI_LABEL_THRESHOLD
    right = tf.equal(predicted, labels >= 0.5)
    return tf.cast(tf.reduce_all(right, axis=-1), tf.float32)


def _optimizer(name: str, learning_rate: float, mixed: bool) -> Any:
    optimizers = {
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate),
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
    }
    optimizer = optimizers[name]()
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed else optimizer


def _use_mixed_precision(hp: Hyperparameters) -> bool:
    if "mixed_precision" not in hp.values:
        return False
    choice = hp.auto_flag("mixed_precision")
    if choice is None:
        return bool(tf.config.list_physical_devices("GPU"))
    return choice


def _compiled_predict(model: Any, size: int, channels: int, jit: bool = False) -> Any:
    @tf.function(
        input_signature=[tf.TensorSpec([None, size, size, channels], tf.uint8)],
        jit_compile=jit,
    )
    def predict(pixels: Any) -> Any:
        return tf.cast(model(tf.cast(pixels, tf.float32), training=False), tf.float32)

    return predict


class _XlaRuntime:
    """The model under XLA, compiled at start for each of the fixed batch sizes."""

    def __init__(self, model: Any, size: int, channels: int) -> None:
        self._function = _compiled_predict(model, size, channels, jit=True)
        for batch in runtimes.BATCH_SIZES:
            self._run(np.zeros((batch, size, size, channels), np.uint8))

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        return runtimes.in_fixed_batches(pixels, runtimes.BATCH_SIZES, self._run)

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        result: np.ndarray = self._function(pixels).numpy()
        return result


def _configure_gpu_memory_growth() -> None:
    for gpu in tf.config.list_physical_devices("GPU"):
        # RuntimeError: TensorFlow is already initialised and the setting no longer applies.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
