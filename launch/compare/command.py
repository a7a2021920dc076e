"""`compare`: every algorithm trained on the same S3 data at once, then one report.

One training job per algorithm, each defined exactly as `train` defines its job
(jobs.job_spec, training.job_definition), all created before any is followed; one display
follows them all.
When they end, each job's evaluation.json (from its output.tar.gz), final metrics,
billable seconds and price make a row of the report smvision.comparison writes; with
--rekognition, zero-shot DetectLabels on the test images makes one more row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from launch.common import options
from launch.common.errors import AwsError, Interrupted, LaunchError
from launch.common.parsing import S3Uri, key_value, positive_int, s3_uri, timestamped_name
from launch.common.pricing import Prices, parse_prices
from launch.common.settings import Settings
from launch.rekognition.names import project_name
from launch.rekognition.zero_shot import LabelMap, read_label_map
from launch.training import spec as jobs
from launch.training.train import TrainingPlan, job_definition
from smvision.comparison.rows import Row
from smvision.schema import configurations, specs
from smvision.schema.configurations import Configuration
from smvision.schema.hyperparameters import HyperparameterError, split_per_algorithm

if TYPE_CHECKING:
    import boto3

HELP = (
    "train every algorithm on the same S3 data at once, follow them, and compare them "
    "(optionally beside AWS Rekognition)"
)
POLL_S = 30
TITLE = "Which algorithm for these images? (SageMaker)"


@dataclass(frozen=True)
class ComparePlan:
    jobs: tuple[TrainingPlan, ...]
    names: tuple[str, ...]  # each job's row: its algorithm or configuration (svm+deep)
    prices: Prices
    out_dir: Path
    test: S3Uri | None
    label_map: LabelMap | None
    concurrency: int
    custom_labels: str | None


def add_parser(commands: options.Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = options.command_parser(commands, "compare", parents, HELP)
    parser.add_argument(
        "--train",
        required=True,
        metavar="S3URI",
        help="S3 prefix of the training images (class folders, .lst or .npz)",
    )
    parser.add_argument(
        "--validation",
        metavar="S3URI",
        help="S3 prefix of validation images (else each job holds some out)",
    )
    parser.add_argument(
        "--test",
        metavar="S3URI",
        help="S3 prefix of test images: the report scores every row on them "
        "(needed for --rekognition)",
    )
    parser.add_argument(
        "--pretrained",
        metavar="S3URI",
        help="S3 prefix of starting weights, for the algorithms that read a "
        "'pretrained' channel ("
        + ", ".join(s.name for s in specs.table().values() if s.reads_channel("pretrained"))
        + ")",
    )
    parser.add_argument(
        "--algorithms",
        metavar="A,B,...",
        help=f"which to compare: algorithms, or configurations such as svm+deep (default "
        f"{','.join(specs.names())}, and with --pretrained "
        f"{','.join(configurations.FIXED_FEATURES)} too)",
    )
    parser.add_argument(
        "--instance-type",
        action="append",
        default=[],
        metavar="ALG=TYPE",
        help="an algorithm's instance type (repeat; default the algorithm "
        "table's: "
        + ", ".join(f"{s.name} {s.training_instance_type}" for s in specs.table().values())
        + ")",
    )
    parser.add_argument(
        "--spot",
        action="store_true",
        help="managed spot training for every job (cheaper, may wait for "
        "capacity); billable seconds then carry the saving",
    )
    parser.add_argument(
        "--max-run",
        default=str(jobs.DEFAULT_MAX_RUN_S),
        metavar="SECONDS",
        help=f"stop any job after this long (default {jobs.DEFAULT_MAX_RUN_S})",
    )
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE|ALG:KEY=VALUE",
        help="a hyperparameter for every algorithm that takes KEY, or for "
        "ALG alone (repeat); checked here before anything is sent",
    )
    parser.add_argument(
        "--rekognition",
        type=Path,
        metavar="MAP.toml",
        help="add zero-shot Rekognition DetectLabels on the --test images as a "
        "row; the file maps each class to Rekognition labels: "
        'cat = ["Cat", "Kitten"]',
    )
    parser.add_argument(
        "--custom-labels",
        metavar="PROJECT",
        help="add the newest trained model of this Rekognition Custom Labels "
        "project as a row (F1 per label; see `rekognition custom-labels`)",
    )
    parser.add_argument(
        "--concurrency",
        default="8",
        metavar="N",
        help="Rekognition requests in flight at once (default 8)",
    )
    parser.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="TYPE=USD_PER_HOUR",
        help="an instance type's hourly price, over the dated us-east-1 "
        "on-demand table in launch/common/pricing.py (repeat)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("comparison"),
        metavar="DIR",
        help="where comparison.md and comparison.json go (default ./comparison)",
    )
    parser.set_defaults(handler=options.planned(plan, submit))


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> ComparePlan:
    chosen = _configurations(args.algorithms, weights=bool(args.pretrained))
    algorithms = list(dict.fromkeys(c.algorithm for c in chosen))
    instance_types = _instance_types(args.instance_type, algorithms)
    try:
        hyperparameters = split_per_algorithm(args.hp, algorithms)
    except HyperparameterError as error:
        raise LaunchError(f"{error} Nothing was sent to AWS.") from error
    channels = {
        channel: str(s3_uri(value, option)) for channel, option, value in jobs.given_channels(args)
    }
    planned = []
    for configuration in chosen:
        algorithm = configuration.algorithm
        values = {**hyperparameters[algorithm], **configuration.values}
        # The options `train` would get for this configuration alone.
        alone = argparse.Namespace(
            algorithm=algorithm,
            instance_count="1",
            max_run=args.max_run,
            hp=[f"{key}={value}" for key, value in values.items()],
        )
        instance_type = options.sagemaker_instance_type(
            instance_types.get(algorithm) or specs.get(algorithm).training_instance_type,
            "ml.m5.xlarge or ml.g5.xlarge",
        )
        read = {
            channel: jobs.ChannelSource(uri)
            for channel, uri in channels.items()
            if specs.get(algorithm).reads_channel(channel)
        }
        spec = jobs.job_spec(alone, settings, read, instance_type)
        name = timestamped_name(f"smvision-{configuration.name.replace('+', '-')}", now)
        planned.append(
            TrainingPlan(name, job_definition(spec, settings, name, bool(args.spot)), wait=True)
        )
    test = s3_uri(args.test, "--test") if args.test else None
    if args.rekognition is not None and test is None:
        raise LaunchError("--rekognition scores Rekognition on the test images; add --test.")
    return ComparePlan(
        jobs=tuple(planned),
        names=tuple(c.name for c in chosen),
        prices=parse_prices(args.price),
        out_dir=args.out,
        test=test,
        label_map=read_label_map(args.rekognition) if args.rekognition else None,
        concurrency=positive_int(args.concurrency, "--concurrency"),
        custom_labels=project_name(args.custom_labels, "--custom-labels")
        if args.custom_labels
        else None,
    )


def submit(comparison: ComparePlan, session: boto3.session.Session, poll_s: float = POLL_S) -> int:
    """Create every job, score Rekognition meanwhile, follow the jobs, write the report."""
    from launch.common.aws import reporting
    from launch.compare import rows as compare_rows
    from launch.rekognition import custom_labels, zero_shot
    from launch.rekognition.retry import rekognition_client
    from launch.training.follow_many import StillRunning, follow_jobs, still_running

    region = str(session.region_name)
    test_set = None
    if comparison.label_map is not None and comparison.test is not None:
        # Before any job starts: a map that does not fit the test classes costs nothing.
        test_set = zero_shot.test_set(session.client("s3"), comparison.test, comparison.label_map)
    created: dict[str, str] = {}
    try:
        failures = _create_jobs(comparison.jobs, comparison.names, session, created)
        rows = []
        if test_set is not None and comparison.label_map is not None:
            label_map, test = comparison.label_map, test_set
            rows.append(
                _managed_row(
                    "rekognition",
                    "Scoring Rekognition on the test images",
                    lambda: zero_shot.row(
                        session, test, label_map, comparison.out_dir, comparison.concurrency
                    ),
                )
            )
        if comparison.custom_labels is not None:
            project = comparison.custom_labels
            rows.append(
                _managed_row(
                    custom_labels.ROW_NAME,
                    f"Reading Custom Labels project {project}",
                    lambda: custom_labels.row(
                        custom_labels.latest_evaluation(
                            rekognition_client(session), session.client("s3"), project
                        )
                    ),
                )
            )
        with reporting("Following the training jobs (they go on without us)"):
            described = follow_jobs(session.client("sagemaker"), created, region, poll_s)
    except StillRunning:
        raise
    except (KeyboardInterrupt, Interrupted) as interrupt:
        raise StillRunning(region, created) from interrupt
    except AwsError as error:
        raise AwsError("\n".join([str(error), *still_running(region, created)])) from error
    rows = (
        compare_rows.sagemaker_rows(
            session.client("s3"),
            comparison.jobs,
            described,
            failures,
            comparison.prices,
            comparison.names,
        )
        + rows
    )
    return compare_rows.report(rows, comparison.out_dir, TITLE, _context(comparison, region))


def _managed_row(name: str, step: str, build: Callable[[], Row]) -> Row:
    """A Rekognition row, or the row of its failure: the training jobs go on either way."""
    from launch.common.aws import reporting

    try:
        with reporting(step):
            return build()
    except AwsError as error:
        return Row(name, "rekognition", failure=str(error))
    except Interrupted:
        raise
    except LaunchError as error:
        return Row(name, "rekognition", failure=str(error))


def _create_jobs(
    planned: Sequence[TrainingPlan],
    names: Sequence[str],
    session: boto3.session.Session,
    created: dict[str, str],
) -> dict[str, str]:
    """Create every job, filling `created` by row name; the creation errors by row name.

    A job AWS refuses does not stop the others: its row carries the reason. A job counts
    as created from the moment it is asked for, so that Ctrl-C during the request still
    names it among those to stop.
    """
    from launch.common.aws import reporting

    failures = {}
    for job, name in zip(planned, names, strict=True):
        spec = job.definition.spec
        print(
            f"Training job {job.job_name}: {name} on {spec.instance_type}"
            f"{' (spot)' if job.definition.spot else ''}",
            flush=True,
        )
        created[name] = job.job_name
        try:
            with reporting(f"Creating training job {job.job_name}"):
                job.definition.create_training_job(session, job.job_name)
        except AwsError as error:
            del created[name]
            failures[name] = str(error)
            print(f"error: {error}", file=sys.stderr, flush=True)
    return failures


def _context(comparison: ComparePlan, region: str) -> list[str]:
    channels = comparison.jobs[0].definition.spec.channels
    lines = [
        f"Data: {', '.join(f'{name} {uri}' for name, uri in channels.items())}.",
        f"Trained on Amazon SageMaker in {region}, {datetime.now():%Y-%m-%d}, one job "
        "per algorithm: "
        + ", ".join(
            f"{name} {job.job_name}" for name, job in zip(comparison.names, comparison.jobs)
        )
        + ".",
    ]
    if comparison.label_map is not None:
        lines.append(f"Rekognition zero-shot through the label map {comparison.label_map.path}.")
    return lines


def _configurations(text: str | None, weights: bool) -> list[Configuration]:
    """--algorithms as configurations; by default every algorithm, and with --pretrained
    the fixed-feature rows (svm and rf on deep features) too."""
    if text is None:
        names = list(specs.names()) + (list(configurations.FIXED_FEATURES) if weights else [])
    else:
        names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name.partition("+")[0] not in specs.table()]
    if unknown or not names:
        raise LaunchError(
            f"--algorithms '{text}': {', '.join(unknown) or 'no name'} is not an algorithm; "
            f"use a comma-separated list of {', '.join(specs.names())} or configurations "
            f"such as {', '.join(configurations.FIXED_FEATURES)}."
        )
    try:
        chosen = [configurations.parse(name) for name in names]
    except HyperparameterError as error:
        raise LaunchError(f"--algorithms '{text}': {error}") from error
    if len({c.name for c in chosen}) != len(chosen):
        raise LaunchError(f"--algorithms '{text}' names an algorithm twice; name each once.")
    return chosen


def _instance_types(pairs: Sequence[str], algorithms: Sequence[str]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for pair in pairs:
        algorithm, instance_type = key_value(pair, "--instance-type")
        if algorithm not in algorithms:
            raise LaunchError(
                f"--instance-type '{pair}' names '{algorithm}', which is not compared; use "
                f"ALG=TYPE with ALG one of {', '.join(algorithms)}, such as "
                "--instance-type cnn=ml.g5.xlarge."
            )
        chosen[algorithm] = instance_type
    return chosen
