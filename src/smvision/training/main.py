"""Training entrypoint: `train.py --algorithm ALG --key value ...` as the toolkit runs it.

`main` parses, calls `run`, and is the one place errors are caught: a user error (bad
hyperparameter, bad data) or an internal one ends the job with a sentence in
/opt/ml/output/failure and a non-zero exit; the model directory gets files only once
everything succeeded.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from smvision import algorithms
from smvision.algorithms.base import (
    CLASSICAL_MODEL_FILE,
    Algorithm,
    AlgorithmInputError,
    History,
)
from smvision.algorithms.classical import smallest_class, usable_folds
from smvision.core import contract as contract_module
from smvision.core import logs, metrics
from smvision.core.artifacts import library_versions, staged_directory, write_json
from smvision.core.contract import BASELINE_FILE, METADATA_FILE, Contract, ContractError
from smvision.data import memory_budget as memory
from smvision.data.dataset import DataError, Dataset
from smvision.model import evaluation, exports, tta
from smvision.model.parent import ParentModel, ParentModelError, check_parent, find_parent
from smvision.monitor import baseline
from smvision.schema import hyperparameters
from smvision.schema.hyperparameters import HyperparameterError, Hyperparameters
from smvision.training import data_report, distributed, explain
from smvision.training.abstention import Abstention, tta_evaluation
from smvision.training.inputs import JobData, load_data
from smvision.training.serving_export import Export, compile_for_serving

log = logging.getLogger("smvision.training.main")

USER_ERRORS = (
    HyperparameterError,
    DataError,
    ContractError,
    AlgorithmInputError,
    ParentModelError,
    distributed.ClusterError,
)
EVALUATION_BATCH = 256


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_CAUSES = {
    signal.SIGTERM: "SageMaker's StopTrainingJob, docker stop, or the local wrapper's --max-run",
    signal.SIGINT: "Ctrl-C",
}


class JobStopped(BaseException):
    """SIGTERM or SIGINT while the job ran. A BaseException, as KeyboardInterrupt is, so that
    no library's `except Exception` swallows it on its way to `main`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    def sentence(self) -> str:
        name = signal.Signals(self.signum).name
        cause = STOP_CAUSES.get(signal.Signals(self.signum), "a signal")
        return f"The job was stopped by {name} ({cause}) before it finished; it wrote no model."


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Inside, SIGTERM and SIGINT raise JobStopped, once: Ctrl-C reaches this process twice,
    from the terminal and through the toolkit, and the second must not cut the report of the
    first short."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise JobStopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    """The RunContext algorithms see: metric lines (first host only), checkpoints, cluster,
    the earlier model a job continues (`parent`) and the memory budget for decoded data."""

    checkpoint_dir: Path
    cluster: distributed.Cluster
    train_total: int
    pretrained_dir: Path | None
    parent: ParentModel | None = None
    memory_budget: int | None = None
    # Where the job's failure sentence goes if the cluster never comes together.
    failure_file: Path | None = None

    def create_strategy(self) -> Any:
        if self.cluster.worker_count == 1 or self.failure_file is None:
            return distributed.create_strategy(self.cluster)
        with distributed.joined_within(self.cluster, self.failure_file):
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


def predict_dataset(algorithm: Algorithm, dataset: Dataset, views: str = "none") -> np.ndarray:
    """Probabilities of every image, averaged over its test-time augmentation `views`."""
    batch = EVALUATION_BATCH // tta.view_count(views)
    return np.concatenate(
        [tta.predict(algorithm.predict_proba, c, views) for c in dataset.chunks(batch)]
    )


def run(contract: Contract, hp: Hyperparameters) -> None:
    """Train one job described by `contract` and `hp`; write model/ and output/data/."""
    if hp.ignored:
        log.warning("Ignoring hyperparameters smvision does not use: %s", ", ".join(hp.ignored))
    cluster = distributed.plan(contract, hp)
    if cluster.idle_reason:
        log.info("%s", cluster.idle_reason)
        return
    budget = memory.budget_bytes(hp.values["data_memory_mb"])
    job = load_data(contract, hp, cluster, budget)
    check_eval_metric(hp, job)
    check_images_per_class(hp, job)
    parent = continued_model(contract, hp, job)
    report = (
        data_report.inspect_job(contract.output_data_dir, hp, job) if cluster.is_chief else None
    )
    jobrun = job_run(contract, cluster, job.train_total, parent, budget)
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
    by_views = {"none": probabilities}
    views = hp.text("tta")
    if views != "none":
        by_views[views] = evaluate_augmented(algorithm, job, views)
    abstention = Abstention.fit(hp, job, by_views, report)
    extra = abstention.evaluation(hp, job, by_views)
    if views != "none":
        extra["tta"] = tta_evaluation(views, results, by_views[views], job)
    if report is not None:
        data_report.complete(report, contract.output_data_dir, hp.algorithm, probabilities, job)
        extra["data_report"] = {"summary": report.summary(), "leakage": report.leakage()}
    write_reports(contract, algorithm, job, results, probabilities, history, extra)
    save_model(
        contract,
        hp,
        algorithm,
        job,
        final_metrics(results, history),
        probabilities.get("validation"),
        parent,
        abstention,
        compile_for_serving(algorithm, job, probabilities),
    )


def check_eval_metric(hp: Hyperparameters, job: JobData) -> None:
    chosen = hp.text("eval_metric")
    if chosen != "accuracy" and len(job.class_names) != 2:
        raise HyperparameterError(
            f"Hyperparameter 'eval_metric' has value '{chosen}', which measures a model of two "
            f"classes, and this job has {len(job.class_names)} "
            f"({', '.join(job.class_names)}); drop eval_metric (accuracy)."
        )


def check_images_per_class(hp: Hyperparameters, job: JobData) -> None:
    """Enough training images of every class for the algorithm (the svm calibrates on folds
    that each hold one of every class out), and for the cross-validation asked for."""
    needed = hp.spec.min_images_per_class
    smallest, which = smallest_class(job.train.labels)
    if smallest < needed:
        name = job.class_names[which]
        raise DataError(
            f"{hp.algorithm} needs at least {needed} training images of every class "
            f"{hp.spec.min_images_reason}, and class '{name}' has {smallest}; add images of it, "
            "or give a validation channel so that train keeps every image "
            "(validation_fraction holds some of each class out of train)."
        )
    folds = hp.values.get("cv_folds")
    if isinstance(folds, int) and folds:
        labels = job.train.labels
        if job.validation is not None:
            labels = np.concatenate([labels, job.validation.labels])
        check_cv_folds(hp, folds, labels, job.class_names)


def check_cv_folds(
    hp: Hyperparameters, folds: int, labels: np.ndarray, class_names: Sequence[str]
) -> None:
    """Refuse a cv_folds the data cannot fill, advising one the schema accepts."""
    smallest, which = smallest_class(labels)
    needed = hp.spec.min_images_per_class
    most = int(hyperparameters.schema(hp.algorithm)["cv_folds"].high or folds)
    usable = usable_folds(smallest, needed, most)
    if folds in usable:
        return
    name = class_names[which]
    problem = (
        f"Hyperparameter 'cv_folds' has value '{folds}', but class '{name}' has only "
        f"{smallest} image{'' if smallest == 1 else 's'} in train and validation together"
    )
    calibrates = (
        f"{hp.algorithm} needs {needed} images of each class in the training part of every "
        f"fold ({hp.spec.min_images_reason})"
    )
    if not usable:
        need = "cross-validation needs one image of each class in every fold" + (
            f", and {calibrates}" if needed > 1 else ""
        )
        raise HyperparameterError(
            f"{problem}, and {need}; use cv_folds=0 to turn cross-validation off, or add "
            f"images of class '{name}'."
        )
    reason = "every fold needs one image of each class" if folds > smallest else calibrates
    shown = " or ".join(map(str, usable)) if len(usable) <= 3 else f"{usable[0]} to {usable[-1]}"
    raise HyperparameterError(
        f"{problem}, and {reason}: use cv_folds={shown}, or 0 to turn it off."
    )


def continued_model(contract: Contract, hp: Hyperparameters, job: JobData) -> ParentModel | None:
    """The model channel's model, checked against this job (incremental training)."""
    parent = find_parent(contract.channel_dir("model"), contract.scratch_dir)
    if parent is None:
        return None
    checked = check_parent(
        parent,
        hp.algorithm,
        job.image_size,
        job.channels,
        job.class_names,
        job.multi_label,
        new_head_allowed=hp.values.get("reinitialize_top_layer") is True,
    )
    log.info(
        "Continuing the model of the model channel (%s, %d train images, sha256 %s)%s.",
        checked.algorithm,
        checked.metadata.get("train_images", 0),
        checked.digest[:12],
        "" if checked.keeps_head else " with a new output layer for this job's classes",
    )
    return checked


def job_run(
    contract: Contract,
    cluster: distributed.Cluster,
    train_total: int,
    parent: ParentModel | None = None,
    memory_budget: int | None = None,
) -> JobRun:
    contract.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    pretrained = contract.channel_dir("pretrained")
    return JobRun(
        contract.checkpoint_dir,
        cluster,
        train_total,
        pretrained if pretrained.is_dir() else None,
        parent,
        memory_budget,
        contract.failure_file,
    )


def evaluate(
    algorithm: Algorithm, job: JobData, jobrun: JobRun
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Evaluation of validation and test, each measure also emitted as a metric line; and
    the probabilities it was made from, by split."""
    results = {}
    probabilities = {}
    measures = metrics.measures_for(len(job.class_names), job.multi_label)
    for split, dataset in (("validation", job.validation), ("test", job.test)):
        if dataset is None:
            continue
        probabilities[split] = predict_dataset(algorithm, dataset)
        result = evaluation.evaluate(
            probabilities[split], dataset.labels, job.class_names, dataset.sources
        )
        results[split] = result
        for measure in measures:
            if result.get(measure) is not None:  # an AUC is undefined on a one-class split
                jobrun.metric(f"{split}:{measure}", result[measure])
    return results, probabilities


def evaluate_augmented(algorithm: Algorithm, job: JobData, views: str) -> dict[str, np.ndarray]:
    """Probabilities of validation and test averaged over test-time augmentation views."""
    return {
        split: predict_dataset(algorithm, dataset, views)
        for split, dataset in (("validation", job.validation), ("test", job.test))
        if dataset is not None
    }


def write_reports(
    contract: Contract,
    algorithm: Algorithm,
    job: JobData,
    results: dict[str, dict[str, Any]],
    probabilities: dict[str, np.ndarray],
    history: History,
    extra: dict[str, Any] | None = None,
) -> None:
    """output/data/: evaluation.json (the results, the class counts of train, what the
    algorithm found; `extra`: conformal, out_of_distribution, tta, data_report) and the
    pictures."""
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
    write_json(
        out / "evaluation.json",
        results | counts | algorithm.report() | findings | (extra or {}),
    )


def final_metrics(results: dict[str, dict[str, Any]], history: History) -> dict[str, float]:
    """Evaluation measures, then each history metric's last value."""
    final: dict[str, float] = {
        f"{split}:{measure}": result[measure]
        for split, result in results.items()
        for measure in metrics.ALL_MEASURES
        if result.get(measure) is not None
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
    parent: ParentModel | None = None,
    abstention: Abstention | None = None,
    export: Export | None = None,
) -> None:
    """The model files, metadata.json, baseline.json (what the drift monitor compares
    requests with), what serve abstains by (conformal.json, ood.npz) and the export that
    serve runs (an svm or rf compiled to ONNX), moved into model/ only once all are written."""
    with staged_directory(contract.model_dir) as staging:
        algorithm.save(staging)
        if abstention is not None:
            abstention.save(staging)
        if export is not None:
            content, record = export
            trained = staging / CLASSICAL_MODEL_FILE  # what the export stands in for
            size = trained.stat().st_size if trained.is_file() else None
            exports.install(staging, content, record | {"original_bytes": size})
        write_json(
            staging / METADATA_FILE,
            {
                "algorithm": hp.algorithm,
                "class_names": job.class_names,
                "multi_label": job.multi_label,
                "image_size": job.image_size,
                "image_size_reason": job.image_size_reason,
                "channels": job.channels,
                "scaled_jpeg_decode": hp.flag("scaled_jpeg_decode"),
                "preprocessing": algorithm.preprocessing(),
                "hyperparameters": hp.as_strings(),
                "train_images": job.train_total,
                "parent": parent.lineage() if parent else None,
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
    with stopped_by_signals():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
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
    except JobStopped as stopped:
        log.error("%s", stopped.sentence())
        write_failure(contract, stopped.sentence())
        return 128 + stopped.signum
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
