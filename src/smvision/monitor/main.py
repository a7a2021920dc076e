"""The `monitor` entrypoint: a processing job (or Model Monitor schedule) over captured data.

    monitor [--baseline PATH] [--captured DIR] [--output DIR] [--since TIME] [--until TIME]
            [--ks-alpha X] [--ks-min-distance X] [--psi-max X] [--chi2-alpha X]
            [--min-images N]

Where things are, each from its option, else Model Monitor's variable for a scheduled
run, else the processing job's layout (smvision.core.contract):
- the baseline: --baseline; `baseline_statistics`; processing/input/baseline/ (baseline.json,
  or the model.tar.gz that holds it);
- the captured data: --captured; `dataset_source`; processing/input/endpoint/;
- the output: --output; `output_path`; processing/output/.
The window: --since/--until, else `start_time`/`end_time` (ISO times, UTC when no zone).

It always exits 0 once it has written its files, drift or not (SageMaker reads the
violations from constraint_violations.json); a baseline or input it cannot use ends it
with the reason in /opt/ml/output/message (the job's ExitMessage) and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from smvision.core import contract as contract_module
from smvision.core.contract import Contract
from smvision.core.processing import run_job
from smvision.monitor import analysis, baseline, drift_report, thresholds
from smvision.monitor.capture import read_captured

log = logging.getLogger("smvision.monitor")

# Model Monitor's environment for a scheduled (bring-your-own-container) job.
BASELINE_ENV = "baseline_statistics"
DATASET_ENV = "dataset_source"
OUTPUT_ENV = "output_path"
START_ENV = "start_time"
END_ENV = "end_time"


class MonitorError(ValueError):
    """An option, path or time the monitor cannot use, with the fix."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="PATH",
        help="baseline.json, a model directory or a model.tar.gz",
    )
    parser.add_argument(
        "--captured",
        type=Path,
        metavar="DIR",
        help="a folder of data-capture .jsonl files (searched recursively)",
    )
    parser.add_argument("--output", type=Path, metavar="DIR", help="where the report goes")
    parser.add_argument("--since", metavar="TIME", help="only requests at or after TIME (ISO)")
    parser.add_argument("--until", metavar="TIME", help="only requests before TIME (ISO)")
    thresholds.add_arguments(parser)
    return parser


def parse_time(text: str | None, option: str) -> datetime | None:
    if not text or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise MonitorError(
            f"{option} {text!r} is not an ISO time such as 2026-01-31T14:00:00Z."
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(args: argparse.Namespace, contract: Contract, environ: Mapping[str, str]) -> int:
    try:
        limits = thresholds.from_arguments(args)
    except ValueError as error:
        raise MonitorError(str(error)) from error
    baseline_path = (
        args.baseline
        or _env_path(environ, BASELINE_ENV)
        or (contract.processing_input(contract_module.BASELINE_INPUT))
    )
    captured_dir = (
        args.captured
        or _env_path(environ, DATASET_ENV)
        or (contract.processing_input(contract_module.CAPTURED_INPUT))
    )
    out_dir = args.output or _env_path(environ, OUTPUT_ENV) or contract.processing_output_dir
    window = (
        parse_time(args.since or environ.get(START_ENV), "--since"),
        parse_time(args.until or environ.get(END_ENV), "--until"),
    )
    if not baseline_path.exists():
        raise MonitorError(
            f"No baseline at {baseline_path}; give --baseline (baseline.json, "
            "the model directory or its model.tar.gz)."
        )
    if not captured_dir.is_dir():
        raise MonitorError(
            f"No captured data at {captured_dir}: it is not a folder; give "
            "--captured (the endpoint's data-capture prefix, downloaded)."
        )
    reference = baseline.read(baseline_path)
    log.info(
        "Baseline %s: %s model, %d classes, %d training images.",
        baseline_path,
        reference["algorithm"],
        len(reference["class_names"]),
        reference["images"]["count"],
    )
    captured = read_captured(
        captured_dir, int(reference["image_size"]), int(reference["channels"]), *window
    )
    log.info(
        "Captured: %d files, %d records in the window, %d images, %d records skipped.",
        captured.files,
        captured.records,
        len(captured.shapes),
        len(captured.skipped),
    )
    for where, why in captured.skipped[: drift_report.SKIPPED_SHOWN]:
        log.warning("Skipped %s: %s", where, why)
    result = analysis.analyse(reference, captured, limits)
    document = drift_report.report_document(reference, captured, result, limits, window)
    written = drift_report.write(out_dir, document, reference, result)
    for note in result.notes:
        log.warning("%s", note)
    for check in result.checks:
        log.info("%s %s", "DRIFT" if check.violated else "ok   ", check.description)
    log.info(
        "%d violations of %d checks; wrote %s",
        len(result.violations),
        len(result.checks),
        ", ".join(str(p) for p in written),
    )
    return 0


def _env_path(environ: Mapping[str, str], name: str) -> Path | None:
    value = environ.get(name, "").strip()
    return Path(value) if value else None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_job(
        lambda contract: run(args, contract, os.environ),
        (MonitorError, baseline.BaselineError),
        log,
    )


if __name__ == "__main__":
    sys.exit(main())
