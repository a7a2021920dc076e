"""Training entrypoint: `train.py --algorithm ALG --key value ...` as the toolkit runs it.

`main` parses, calls `run`, and is the one place errors are caught: a user error (bad
hyperparameter, bad data) or an internal one ends the job with a sentence in
/opt/ml/output/failure and a non-zero exit; the model directory gets files only once
everything succeeded.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smvision import (
    algorithms,
    data,
    distributed,
    evaluation,
    explain,
    hyperparameters,
    logs,
    metrics,
)
from smvision import contract as contract_module
from smvision.algorithms.base import Algorithm, AlgorithmInputError, History
from smvision.artifacts import library_versions, staged_directory, write_json
from smvision.contract import BASELINE_FILE, METADATA_FILE, Contract, ContractError
from smvision.data import DataError, Dataset
from smvision.hyperparameters import HyperparameterError, Hyperparameters
from smvision.monitor import baseline

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
    # What this host's train images were decoded from (their sizes as stored).
    train_samples: list[data.Sample]
    image_size: int
    # How image_size was chosen, for metadata.json.
    image_size_reason: str
    # Images per class in all of train (every host's shard), before any is skipped.
    train_class_counts: dict[str, int]


@dataclass
class ChannelSamples:
    """The job's labelled files before decoding; `split`: validation was held out of train."""

    class_names: list[str]
    train: list[data.Sample]
    validation: list[data.Sample]
    test: list[data.Sample]
    split: bool


def load_data(contract: Contract, hp: Hyperparameters, cluster: distributed.Cluster) -> JobData:
    """List, split, shard and decode the channels this job was given."""
    samples = list_samples(contract, hp)
    channels = _channels(hp, samples.train)
    size, size_reason = _image_size(hp, samples.train)
    limit = hp.real("max_corrupt_fraction")
    started = time.perf_counter()
    # Each worker decodes only its shard of train; validation is small and every worker
    # holds all of it (the training loop evaluates its own slice, the chief reports it all).
    own_train = data.shard(samples.train, cluster.worker_index, cluster.worker_count)
    if not own_train:
        raise DataError(
            f"Channel 'train' has {len(samples.train)} images for {cluster.worker_count} hosts, "
            f"so host {cluster.current_host} has none to train on; give the job at least one "
            "train image per host, or fewer instances."
        )

    def decode(part: list[data.Sample], channel: str, check: bool = True) -> Dataset:
        return data.load(
            part,
            samples.class_names,
            size,
            channels,
            channel,
            limit if check else None,
            scaled_jpeg=hp.flag("scaled_jpeg_decode"),
        )

    # A held-out part is still the train channel: its unreadable files are judged as one.
    train = decode(own_train, "train", check=not samples.split)
    validation = decode(samples.validation, "validation", check=not samples.split)
    if samples.split:
        data.check_corrupt(
            train.skipped + validation.skipped,
            len(own_train) + len(samples.validation),
            "train",
            limit,
        )
    test = decode(samples.test, "test") if samples.test and cluster.is_chief else None
    log.info(
        "Loaded %d train, %d validation, %d test images as %dx%dx%d in %.1f s; classes: %s",
        len(train),
        len(validation),
        len(test or []),
        size,
        size,
        channels,
        time.perf_counter() - started,
        ", ".join(samples.class_names),
    )
    return JobData(
        samples.class_names,
        channels,
        train,
        validation if samples.validation else None,
        test,
        len(samples.train),
        own_train,
        size,
        size_reason,
        {name: sum(s.label == name for s in samples.train) for name in samples.class_names},
    )


def list_samples(contract: Contract, hp: Hyperparameters) -> ChannelSamples:
    """Every channel's labelled files; validation from its channel, else held out of train."""
    available = contract.available_channels()
    if "train" not in available:
        raise DataError(
            f"Channel 'train' is missing: expected it at {contract.channel_dir('train')}. "
            "Give the job a 'train' input (class sub-folders, .lst files or .npz files)."
        )
    train = data.list_channel(contract.channel_dir("train"), "train")
    class_names = data.class_names_of(train)

    def known(channel: str) -> list[data.Sample]:
        if channel not in available:
            return []
        samples = data.list_channel(contract.channel_dir(channel), channel)
        data.check_known_classes(samples, class_names, channel)
        return samples

    validation, test = known("validation"), known("test")
    fraction = hp.real("validation_fraction")
    split = "validation" not in available and fraction > 0
    if split:
        train, validation = data.stratified_split(train, fraction, hp.integer("seed"))
        log.info(
            "No validation channel: held out %d of %d train images (validation_fraction=%s, "
            "stratified).",
            len(validation),
            len(validation) + len(train),
            fraction,
        )
    return ChannelSamples(class_names, train, validation, test, split)


def _image_size(hp: Hyperparameters, train_samples: list[data.Sample]) -> tuple[int, str]:
    """The image_size hyperparameter, or for "auto" the size the training images call for."""
    if hp.values["image_size"] != "auto":
        return hp.integer("image_size"), "hyperparameter image_size"
    side = data.median_side(train_samples)
    size = hp.spec.auto_image_size(side or hp.spec.auto_image_size_range[1])
    low, high = hp.spec.auto_image_size_range
    reason = (
        f"image_size auto: the training images' median longer side is {side} px; rounded up "
        f"to a multiple of 8 within {low}-{high} px: {size}"
    )
    log.info("%s.", reason)
    return size, reason


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
    jobrun = job_run(contract, cluster, job.train_total)
    algorithm = algorithms.get(hp.algorithm)(job.image_size, job.channels, len(job.class_names))
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
    results, probabilities = evaluate(algorithm, job, jobrun)
    write_reports(contract, algorithm, job, results, probabilities, history)
    save_model(contract, hp, algorithm, job, final_metrics(results, history),
               probabilities.get("validation"))


def job_run(contract: Contract, cluster: distributed.Cluster, train_total: int) -> JobRun:
    contract.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    pretrained = contract.channel_dir("pretrained")
    return JobRun(
        contract.checkpoint_dir,
        cluster,
        train_total,
        pretrained if pretrained.is_dir() else None,
    )


def evaluate(
    algorithm: Algorithm, job: JobData, jobrun: JobRun
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Evaluation of validation and test, each measure also emitted as a metric line; and
    the probabilities it was made from, by split."""
    results = {}
    probabilities = {}
    for split, dataset in (("validation", job.validation), ("test", job.test)):
        if dataset is None:
            continue
        probabilities[split] = predict_dataset(algorithm, dataset)
        result = evaluation.evaluate(
            probabilities[split], dataset.labels, job.class_names, dataset.sources
        )
        results[split] = result
        for measure in metrics.MEASURES:
            jobrun.metric(f"{split}:{measure}", result[measure])
    return results, probabilities


def write_reports(
    contract: Contract,
    algorithm: Algorithm,
    job: JobData,
    results: dict[str, dict[str, Any]],
    probabilities: dict[str, np.ndarray],
    history: History,
) -> None:
    """output/data/: evaluation.json (the results, the class counts of train, what the
    algorithm found) and the pictures."""
    out = contract.output_data_dir
    out.mkdir(parents=True, exist_ok=True)
    datasets = {"validation": job.validation, "test": job.test}
    evaluated = [
        explain.Evaluated(split, dataset, probabilities[split])
        for split, dataset in datasets.items()
        if dataset is not None and split in probabilities
    ]
    findings = explain.write(
        out, algorithm, job.class_names, job.train, evaluated, results, history
    )
    counts = {"train_class_counts": job.train_class_counts}
    write_json(out / "evaluation.json", results | counts | algorithm.report() | findings)


def final_metrics(results: dict[str, dict[str, Any]], history: History) -> dict[str, float]:
    """Evaluation measures, then each history metric's last value."""
    final: dict[str, float] = {
        f"{split}:{measure}": result[measure]
        for split, result in results.items()
        for measure in metrics.MEASURES
    }
    for name, values in history.items():
        final.setdefault(name, values[-1])
    return final


def save_model(
    contract: Contract,
    hp: Hyperparameters,
    algorithm: Algorithm,
    job: JobData,
    final: dict[str, float],
    validation_probabilities: np.ndarray | None,
) -> None:
    """The model files, metadata.json and baseline.json (what the drift monitor compares
    requests with), moved into model/ only once all are written."""
    with staged_directory(contract.model_dir) as staging:
        algorithm.save(staging)
        write_json(
            staging / METADATA_FILE,
            {
                "algorithm": hp.algorithm,
                "class_names": job.class_names,
                "image_size": job.image_size,
                "image_size_reason": job.image_size_reason,
                "channels": job.channels,
                "scaled_jpeg_decode": hp.flag("scaled_jpeg_decode"),
                "preprocessing": algorithm.preprocessing(),
                "hyperparameters": hp.as_strings(),
                "train_images": job.train_total,
                "versions": library_versions(),
                "metrics": final,
            },
        )
        write_json(
            staging / BASELINE_FILE,
            baseline.build(
                algorithm=hp.algorithm,
                class_names=job.class_names,
                image_size=job.image_size,
                channels=job.channels,
                train=job.train,
                train_samples=job.train_samples,
                validation_probabilities=validation_probabilities,
                seed=hp.integer("seed"),
            ),
        )
    log.info("Model written to %s", contract.model_dir)


def write_failure(contract: Contract, message: str) -> None:
    contract.output_dir.mkdir(parents=True, exist_ok=True)
    contract.failure_file.write_text(message.strip() + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure_logging()
    # load() reads only the base directory and cannot fail, so every failure below,
    # a bad SageMaker variable included, ends in the failure file.
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
