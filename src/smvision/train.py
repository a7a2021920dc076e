"""Training entrypoint: `train.py --algorithm ALG --key value ...` as the toolkit runs it.

`main` parses, calls `run`, and is the one place errors are caught: a user error (bad
hyperparameter, bad data) or an internal one ends the job with a sentence in
/opt/ml/output/failure and a non-zero exit; the model directory gets files only once
everything succeeded.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smvision import algorithms, data, distributed, evaluation, hyperparameters, logs, metrics
from smvision import contract as contract_module
from smvision.algorithms.base import Algorithm, AlgorithmInputError
from smvision.artifacts import library_versions, staged_directory, write_json
from smvision.contract import METADATA_FILE, Contract, ContractError
from smvision.data import DataError, Dataset
from smvision.hyperparameters import HyperparameterError, Hyperparameters

log = logging.getLogger("smvision.train")

USER_ERRORS = (
    HyperparameterError,
    DataError,
    ContractError,
    AlgorithmInputError,
    distributed.ClusterError,
)
EVALUATION_BATCH = 256


class ArgumentError(ValueError):
    """Command-line arguments that are not --name value pairs."""


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """`--name value` pairs as the toolkit passes hyperparameters (`-C value` for one letter)."""
    raw: dict[str, str] = {}
    items = list(argv)
    position = 0
    while position < len(items):
        item = items[position]
        name = item[2:] if item.startswith("--") else item[1:] if re.fullmatch(r"-\w", item) else ""
        if not name:
            raise ArgumentError(f"Unexpected argument {item!r}; arguments are --name value pairs.")
        if "=" in name:
            key, value = name.split("=", 1)
            position += 1
        elif position + 1 < len(items):
            key, value = name, items[position + 1]
            position += 2
        else:
            raise ArgumentError(f"Argument {item!r} has no value; pass --name value.")
        raw[key] = value
    return raw


@dataclass
class JobRun:
    """The RunContext algorithms see: metric lines (first host only), checkpoints, cluster."""

    checkpoint_dir: Path
    cluster: distributed.Cluster
    train_total: int
    pretrained_dir: Path | None

    def create_strategy(self) -> Any:
        return distributed.create_strategy(self.cluster)

    @property
    def worker_index(self) -> int:
        return self.cluster.worker_index

    @property
    def worker_count(self) -> int:
        return self.cluster.worker_count

    def metric(self, name: str, value: float) -> None:
        if self.cluster.is_chief:
            metrics.emit(name, value)

    def info(self, message: str) -> None:
        log.info(message)


@dataclass
class JobData:
    class_names: list[str]
    channels: int
    train: Dataset
    validation: Dataset | None
    test: Dataset | None
    train_total: int


def load_data(contract: Contract, hp: Hyperparameters, cluster: distributed.Cluster) -> JobData:
    """List, split, shard and decode the channels this job was given."""
    available = contract.available_channels()
    if "train" not in available:
        raise DataError(
            f"Channel 'train' is missing: expected it at {contract.channel_dir('train')}. "
            "Give the job a 'train' input (class sub-folders, .lst files or .npz files)."
        )
    train_samples = data.list_channel(contract.channel_dir("train"), "train")
    class_names = data.class_names_of(train_samples)
    seed = hp.integer("seed")
    if "validation" in available:
        validation_samples = data.list_channel(contract.channel_dir("validation"), "validation")
        data.check_known_classes(validation_samples, class_names, "validation")
    elif hp.real("validation_fraction") > 0:
        train_samples, validation_samples = data.stratified_split(
            train_samples, hp.real("validation_fraction"), seed
        )
        log.info(
            "No validation channel: held out %d of %d train images (validation_fraction=%s, "
            "stratified).",
            len(validation_samples),
            len(validation_samples) + len(train_samples),
            hp.real("validation_fraction"),
        )
    else:
        validation_samples = []
    test_samples: list[data.Sample] = []
    if "test" in available:
        test_samples = data.list_channel(contract.channel_dir("test"), "test")
        data.check_known_classes(test_samples, class_names, "test")

    channels = _channels(hp, train_samples)
    size = hp.integer("image_size")
    limit = hp.real("max_corrupt_fraction")
    started = time.perf_counter()
    # Each worker decodes only its shard of train; validation is small and every worker
    # holds all of it (the training loop evaluates its own slice, the chief reports it all).
    own_train = data.shard(train_samples, cluster.worker_index, cluster.worker_count)

    def load(samples: list[data.Sample], channel: str, check: bool = True) -> Dataset | None:
        if not samples:
            return None
        return data.load(
            samples,
            class_names,
            size,
            channels,
            channel,
            limit if check else None,
            scaled_jpeg=hp.flag("scaled_jpeg_decode"),
        )

    split = "validation" not in available
    train = load(own_train, "train", check=not split)
    assert train is not None
    validation = load(validation_samples, "validation", check=not split)
    if split:  # the held-out part is still the train channel: judge its files as one
        skipped = train.skipped + (validation.skipped if validation else [])
        data.check_corrupt(skipped, len(own_train) + len(validation_samples), "train", limit)
    test = load(test_samples, "test") if cluster.is_chief else None
    log.info(
        "Loaded %d train, %d validation, %d test images as %dx%dx%d in %.1f s; classes: %s",
        len(train),
        len(validation or []),
        len(test or []),
        size,
        size,
        channels,
        time.perf_counter() - started,
        ", ".join(class_names),
    )
    return JobData(class_names, channels, train, validation, test, len(train_samples))


def _channels(hp: Hyperparameters, train_samples: list[data.Sample]) -> int:
    if hp.spec.channels != "auto":
        return hp.spec.channels
    grayscale = hp.auto_flag("grayscale")
    if grayscale is None:
        grayscale = data.all_grey(train_samples)
    return 1 if grayscale else 3


def predict_dataset(algorithm: Algorithm, dataset: Dataset) -> np.ndarray:
    parts = [
        algorithm.predict_proba(dataset.images[start : start + EVALUATION_BATCH])
        for start in range(0, len(dataset), EVALUATION_BATCH)
    ]
    return np.concatenate(parts)


def run(contract: Contract, hp: Hyperparameters) -> None:
    """Train one job described by `contract` and `hp`; write model/ and output/data/."""
    if hp.ignored:
        log.warning("Ignoring hyperparameters smvision does not use: %s", ", ".join(hp.ignored))
    cluster = distributed.plan(contract, hp)
    if cluster.idle_reason:
        log.info("%s", cluster.idle_reason)
        return
    job = load_data(contract, hp, cluster)
    algorithm_class = algorithms.get(hp.algorithm)
    algorithm = algorithm_class(hp.integer("image_size"), job.channels, len(job.class_names))
    contract.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    pretrained = contract.channel_dir("pretrained")
    jobrun = JobRun(
        contract.checkpoint_dir,
        cluster,
        job.train_total,
        pretrained if pretrained.is_dir() else None,
    )
    started = time.perf_counter()
    history = algorithm.fit(job.train, job.validation, hp, jobrun)
    log.info("Training took %.1f s.", time.perf_counter() - started)
    if not cluster.is_chief:
        log.info(
            "Worker %d of %d done; the first host writes the model.",
            cluster.worker_index + 1,
            cluster.worker_count,
        )
        return

    results = {}
    for split, dataset in (("validation", job.validation), ("test", job.test)):
        if dataset is None:
            continue
        result = evaluation.evaluate(
            predict_dataset(algorithm, dataset), dataset.labels, job.class_names, dataset.sources
        )
        results[split] = result
        for measure in metrics.MEASURES:
            jobrun.metric(f"{split}:{measure}", result[measure])

    contract.output_data_dir.mkdir(parents=True, exist_ok=True)
    if results:
        write_json(contract.output_data_dir / "evaluation.json", results)
        evaluation.plot_confusion_matrices(
            results, contract.output_data_dir / "confusion_matrix.png"
        )
    if history:
        evaluation.plot_training_curves(history, contract.output_data_dir / "training_curves.png")

    final_metrics = {
        f"{split}:{measure}": result[measure]
        for split, result in results.items()
        for measure in metrics.MEASURES
    }
    for name, values in history.items():
        final_metrics.setdefault(name, values[-1])
    with staged_directory(contract.model_dir) as staging:
        algorithm.save(staging)
        write_json(
            staging / METADATA_FILE,
            {
                "algorithm": hp.algorithm,
                "class_names": job.class_names,
                "image_size": hp.integer("image_size"),
                "channels": job.channels,
                "scaled_jpeg_decode": hp.flag("scaled_jpeg_decode"),
                "preprocessing": algorithm.preprocessing(),
                "hyperparameters": hp.as_strings(),
                "train_images": job.train_total,
                "versions": library_versions(),
                "metrics": final_metrics,
            },
        )
    log.info("Model written to %s", contract.model_dir)


def write_failure(contract: Contract, message: str) -> None:
    contract.output_dir.mkdir(parents=True, exist_ok=True)
    contract.failure_file.write_text(message.strip() + "\n")


def configure_logging() -> None:
    logs.configure_logging()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    contract = contract_module.load()
    try:
        hp = hyperparameters.parse(parse_args(sys.argv[1:] if argv is None else argv))
        run(contract, hp)
    except (*USER_ERRORS, ArgumentError) as error:
        log.error("%s", error)
        write_failure(contract, str(error))
        return 2
    except Exception as error:  # the one place internal errors are caught and reported
        log.error("Internal error:\n%s", traceback.format_exc())
        write_failure(contract, f"Internal error ({type(error).__name__}): {error}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
