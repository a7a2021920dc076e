"""`python -m smvision.local compare`: train every algorithm on the same channels, measure
each, and write the comparison (DIR/comparison.md, comparison.json, three plots).

    python -m smvision.local compare --channel train=DIR [--channel validation=DIR]
        [--channel test=DIR] [--channel pretrained=DIR]
        [--algorithms svm,rf,cnn,resnet50,svm+deep,rf+deep] [--hp KEY=VALUE ...]
        [--hp ALG:KEY=VALUE ...] --out DIR

Every algorithm runs by default; with ImageNet weights at hand (a pretrained channel
holding Keras' ResNet50 file, or the file baked into the image) svm+deep and rf+deep too:
svm and rf on a frozen ResNet50's features, the fixed-feature extractor. They run one
after the other (each job uses every core, so running them together would only distort
their times), each in DIR/jobs/NAME with its logs (train.log, serve.log, latency.log).
One that fails does not stop the others: its row carries the sentence its job wrote to
output/failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import re
import shutil
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from smvision.comparison.report import write_report
from smvision.comparison.rows import (
    Qualities,
    Row,
    ScoresError,
    directory_bytes,
    scores_from_evaluation,
)
from smvision.core.contract import DATA_REPORT_FILE, METADATA_FILE
from smvision.core.machine import available_cores
from smvision.local.compare import runs, serving
from smvision.local.compare.plan import Plan, PlanError, make_plan
from smvision.local.compare.progress import Display, display
from smvision.local.job_dir import add_channel_option, key_value
from smvision.schema import configurations, hyperparameters, specs
from smvision.schema.configurations import Configuration

MEASURED = {
    "Training time": "wall time of `smvision.local train` for the algorithm, from its start "
    "to its exit (laying out the job, loading and decoding the images, fitting, evaluating, "
    "writing the model); images/s is training images over that time",
    "Peak memory": "the job's whole process tree (the local wrapper, the toolkit's `train`, "
    "the training script): the peak of their summed resident memory, sampled from /proc "
    "every 0.2 s, or os.wait4's ru_maxrss (exact, but of the largest process alone) where "
    "that is larger; the notes give both",
    "Model size": "bytes of the files in the job's model/ directory",
    "Latency p50, 1 image": "in one process, as a serve worker answers minus HTTP: the "
    "model and runtime serve loads (Predictor.load), then Predictor.respond on one request "
    "of one image file (decode, resize, predict, encode the answer), median over the "
    "evaluated images after warm-up",
    "Images/s, batch 32": "32 such requests answered as one micro-batch, median over batches",
    "Serve ready": "from starting the real `serve` (python -m smvision.local serve) to its "
    "first 200 on /ping",
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `compare` subcommand of `python -m smvision.local`."""
    parser = commands.add_parser(
        "compare",
        help="train every algorithm on the same channels and compare them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_channel_option(parser, "a channel (train required; validation, test) and its directory")
    parser.add_argument(
        "--algorithms",
        type=lambda text: [a for a in text.split(",") if a.strip()],
        help="comma-separated algorithms or configurations such as svm+deep (default: every "
        f"algorithm of the table, {','.join(specs.names())}, and "
        f"{','.join(configurations.FIXED_FEATURES)} when ImageNet weights are at hand)",
    )
    parser.add_argument(
        "--hp",
        action="append",
        type=key_value,
        default=[],
        metavar="[ALG:]KEY=VALUE",
        help="a hyperparameter for every algorithm that has it, or (ALG:KEY) for one",
    )
    parser.add_argument("--out", required=True, type=Path, help="where jobs and the report go")


def run(args: argparse.Namespace) -> int:
    channels = {name: Path(path).resolve() for name, path in args.channel}
    try:
        plan = make_plan(args.algorithms, args.hp, channels)
    except PlanError as error:
        raise SystemExit(str(error)) from None
    out: Path = args.out.resolve()
    try:
        rows = compare(plan, out)
    except KeyboardInterrupt:
        print(f"Interrupted: no report written; the jobs so far are in {out / 'jobs'}.")
        return 130
    comparison = write_report(
        rows,
        out,
        title="Which algorithm for these images?",
        context=context_lines(plan),
        measured=MEASURED,
        data=data_report(out, plan.algorithms),
    )
    failed = [row.name for row in rows if row.failed]
    print(f"Report: {out / 'comparison.md'}; recommended: {comparison.recommended or 'none'}.")
    if failed:
        print(f"Failed: {', '.join(failed)} (see the report's 'Failed runs').")
    return 1 if failed else 0


def compare(plan: Plan, out: Path) -> list[Row]:
    epochs = {
        name: _expected_epochs(plan.configuration(name).algorithm, plan.hyperparameters[name])
        for name in plan.algorithms
    }
    rows = []
    with display(plan.algorithms, epochs) as progress:
        for algorithm in plan.algorithms:
            job_dir = out / "jobs" / algorithm
            if job_dir.exists():  # a fresh job: an old checkpoint would shorten the training
                shutil.rmtree(job_dir)
            progress.start(algorithm)
            row = measure_algorithm(plan, algorithm, job_dir, progress)
            progress.finish(algorithm, _summary(row))
            rows.append(row)
    return rows


def measure_algorithm(plan: Plan, algorithm: str, job_dir: Path, progress: Display) -> Row:
    """Train one algorithm, score it, and measure what serving it costs."""
    configuration = plan.configuration(algorithm)
    outcome = runs.run_job(
        configuration.algorithm,
        plan.channels,
        plan.hyperparameters[algorithm],
        job_dir,
        on_line=lambda line: progress.line(algorithm, line),
    )
    row = trained_row(outcome, configuration)
    if row.failed:
        return row
    progress.stage(algorithm, "serve starting", steps_left=2)
    notes = list(row.notes)
    try:
        row = _replace(
            row, seconds_to_ready=serving.seconds_to_ready(job_dir, job_dir / "serve.log")
        )
    except serving.ServingMeasurementError as error:
        notes.append(str(error))
    progress.stage(algorithm, "measuring latency", steps_left=1)
    try:
        latency = serving.measure_latency(
            outcome.model_dir, plan.channels[plan.evaluated_channel], job_dir / "latency.log"
        )
        row = _replace(
            row,
            latency_p50_ms=latency.p50_ms,
            batch32_images_per_second=latency.batch32_images_per_second,
        )
    except serving.ServingMeasurementError as error:
        notes.append(str(error))
    return _replace(row, notes=tuple(notes))


def data_report(out: Path, algorithms: Sequence[str]) -> dict[str, Any] | None:
    """The data report of the first job that wrote one (every job inspects the same
    channels), with its paths relative to `out`."""
    for algorithm in algorithms:
        found = sorted((out / "jobs" / algorithm).glob(f"**/output/data/{DATA_REPORT_FILE}"))
        if not found:
            continue
        try:
            document = json.loads(found[0].read_text())
        except (OSError, json.JSONDecodeError):
            continue
        folder = found[0].parent.relative_to(out)
        return {
            "summary": document.get("summary", []),
            "source": str(folder / DATA_REPORT_FILE),
            "pictures": {
                kind: str(folder / file) for kind, file in document.get("pictures", {}).items()
            },
        }
    return None


def trained_row(outcome: runs.JobOutcome, configuration: Configuration | None = None) -> Row:
    """What the finished job tells: its failure, or its scores, model and training figures."""
    configuration = configuration or Configuration(outcome.algorithm, outcome.algorithm)
    row = Row(
        name=configuration.name,
        where="local",
        training_seconds=outcome.wall_seconds,
        peak_memory_bytes=outcome.peak_memory_bytes,
        qualities=Qualities(*configuration.qualities()),
        source=str(outcome.job_dir),
    )
    failure = outcome.failure()
    if failure is not None:
        return _replace(row, failure=failure)
    try:
        evaluation = json.loads((outcome.output_data_dir / "evaluation.json").read_text())
        scores = scores_from_evaluation(evaluation)
    except (OSError, ScoresError) as error:
        return _replace(row, failure=f"The job succeeded but cannot be scored: {error}")
    metadata = json.loads((outcome.model_dir / METADATA_FILE).read_text())
    train_images = int(metadata["train_images"])
    return _replace(
        row,
        scores=scores,
        train_images=train_images,
        training_images_per_second=train_images / outcome.wall_seconds,
        model_bytes=directory_bytes(outcome.model_dir),
        notes=tuple(_job_notes(outcome, metadata)),
    )


def _job_notes(outcome: runs.JobOutcome, metadata: Mapping[str, Any]) -> list[str]:
    size = f"image_size {metadata['image_size']}, {metadata['channels']} channel(s)"
    reason = str(metadata.get("image_size_reason", ""))
    notes = [
        size + (f" ({reason})" if "auto" in reason else ""),
        f"peak memory: {outcome.tree_peak_bytes / 1e6:.0f} MB for the process tree, "
        f"{outcome.largest_process_peak_bytes / 1e6:.0f} MB for its largest process",
    ]
    fit = _fit_seconds(outcome.log_file)
    if fit is not None:
        notes.append(f"fit {fit:.1f} s of the {outcome.wall_seconds:.1f} s job")
    return notes


def _replace(row: Row, **changes: Any) -> Row:
    return dataclasses.replace(row, **changes)


def _expected_epochs(algorithm: str, values: Mapping[str, str]) -> int:
    """Epochs the job should run, for the progress bar (the job's log corrects it)."""
    try:
        hp = hyperparameters.parse({"algorithm": algorithm, **values})
    except hyperparameters.HyperparameterError:
        return 1
    found = hp.values
    epochs = found.get("epochs", 1)
    extra = found.get("fine_tune_epochs", 0)
    return int(epochs) + int(extra) if isinstance(epochs, int) and isinstance(extra, int) else 1


def _fit_seconds(log_file: Path) -> float | None:
    match = re.search(r"Training took ([\d.]+) s", log_file.read_text(errors="replace"))
    return float(match[1]) if match else None


def _summary(row: Row) -> str:
    if row.failure is not None:
        return "failed: " + " ".join(row.failure.split())[:160]
    assert row.scores is not None
    latency = f", p50 {row.latency_p50_ms:.2f} ms" if row.latency_p50_ms is not None else ""
    return (
        f"{row.scores.split} accuracy {100 * row.scores.accuracy:.1f}% on {row.scores.count} "
        f"images, trained in {row.training_seconds:.1f} s{latency}"
    )


def context_lines(plan: Plan) -> list[str]:
    lines = [f"Channel {name}: {path}" for name, path in plan.channels.items()]
    lines.append(f"Algorithms: {', '.join(plan.algorithms)}")
    for algorithm in plan.algorithms:
        if plan.hyperparameters[algorithm]:
            values = " ".join(f"{k}={v}" for k, v in plan.hyperparameters[algorithm].items())
            lines.append(f"Hyperparameters of {algorithm}: {values}")
    lines.append(
        f"Measured on {date.today().isoformat()}, {platform.system()} {platform.machine()}, "
        f"{available_cores()} core(s), Python {platform.python_version()}, one algorithm at a time"
    )
    return lines
