"""`python -m smvision.local inspect`: the data report of a data set alone, with no model.

    python -m smvision.local inspect --channel train=DIR [--channel validation=DIR]
        [--channel test=DIR] [--hp KEY=VALUE ...] --out DIR

The channels are read exactly as a training job reads them (any layout: class folders,
.lst, .rec, .npz; `--hp` takes image_size, grayscale, validation_fraction, seed,
duplicate_correlation, max_leakage...), laid out in a scratch job directory, and inspected
as a job inspects them (smvision.inspection). With a test channel, the accuracy with and
without the duplicated test images is that of the report's own probe (linear discriminant
analysis on the appearance embeddings, fitted on train), since there is no model yet.
Exit status 1 when leakage passes max_leakage (the report is written all the same).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from smvision.algorithms.features import appearance
from smvision.core.contract import CHANNELS, DATA_REPORT_FILE
from smvision.data import memory_budget
from smvision.data.dataset import DataError, Dataset
from smvision.inspection import DataReport
from smvision.local.job_dir import add_channel_option, key_value, lay_out_job
from smvision.schema import hyperparameters
from smvision.schema.hyperparameters import HyperparameterError
from smvision.training import distributed
from smvision.training.data_report import inspect_job
from smvision.training.inputs import load_data

PROBE = "the report's probe (linear discriminant analysis on appearance embeddings)"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "inspect",
        help="write the data report of a data set (duplicates, label issues, quality, balance)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_channel_option(
        parser, f"a channel ({', '.join(CHANNELS)}) and its directory; train is required"
    )
    parser.add_argument(
        "--hp",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter of how the data is read and inspected",
    )
    parser.add_argument(
        "--algorithm",
        default="svm",
        help="whose image_size and channels to inspect at (default svm)",
    )
    parser.add_argument("--out", required=True, type=Path, help="where the report goes")


def run(args: argparse.Namespace) -> int:
    channels = {name: Path(path).resolve() for name, path in args.channel}
    if "train" not in channels:
        raise SystemExit("inspect needs --channel train=DIR (validation and test optional).")
    try:
        return inspect_channels(channels, dict(args.hp), args.out.resolve(), args.algorithm)
    except (DataError, HyperparameterError) as error:
        raise SystemExit(f"error: {error}") from None


def inspect_channels(
    channels: Mapping[str, Path], values: Mapping[str, str], out: Path, algorithm: str
) -> int:
    with tempfile.TemporaryDirectory(prefix="smvision-inspect-") as scratch:
        # No validation held out of train unless asked: the report describes the channels.
        raw = {"algorithm": algorithm, "validation_fraction": "0", **values, "data_report": "true"}
        limit = hyperparameters.parse(raw).real("max_leakage")
        # The whole report first; the limit is judged here, after it is complete.
        hp = hyperparameters.parse(raw | {"max_leakage": "1"})
        contract = lay_out_job(Path(scratch), channels, raw)
        cluster = distributed.plan(contract, hp)
        job = load_data(contract, hp, cluster, memory_budget.budget_bytes("auto"))
        report = inspect_job(out, hp, job)
        if report is None:
            raise RuntimeError("inspect_job made no report with data_report=true")
        if job.test is not None and not job.multi_label:
            probabilities = probe_probabilities(report, job.train, job.test, len(job.class_names))
            report.add_model_accuracy("test", probabilities, job.test.labels, PROBE)
            report.write(out, pictures_too=False)
    print("\n".join(report.summary()))
    print(f"Report: {out / DATA_REPORT_FILE}")
    if report.max_leakage() > limit:
        print(f"Leakage {report.max_leakage():.1%} passes max_leakage={limit:g}.")
        return 1
    return 0


def probe_probabilities(
    report: DataReport, train: Dataset, test: Dataset, classes: int
) -> np.ndarray:
    """Test probabilities of a probe fitted on the train embeddings."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows, embedded = report.embeddings["train"]
    model = make_pipeline(
        StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    ).fit(embedded, train.labels[rows])
    vectors = appearance.embed_rows(test, np.arange(len(test)))
    probabilities = np.zeros((len(vectors), classes))
    probabilities[:, model.classes_.astype(int)] = model.predict_proba(vectors)
    return probabilities
