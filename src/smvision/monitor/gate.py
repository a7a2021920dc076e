"""The `gate` entrypoint: the retraining pipeline's evaluation step, a processing job.

    gate --group NAME --region REGION [--training DIR] [--output DIR]

It reads the new model's evaluation.json from the training job's output.tar.gz (in
--training, default processing/input/training/) and the model-quality statistics of the
latest Approved version in the model package group, and writes to --output (default
processing/output/):
- gate.json, the pipeline's property file: the new model's accuracy (test, else
  validation), the latest approved version's (0 when there is none) and its ARN ("none");
- model_quality.json, the new model's statistics, which the registration step attaches
  to the package it creates.
The pipeline's condition compares those numbers; `gate` only measures. A problem ends it
with the reason in /opt/ml/output/message (the job's ExitMessage) and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smvision.core import contract as contract_module
from smvision.core import model_quality
from smvision.core.artifacts import write_json
from smvision.core.processing import run_job

log = logging.getLogger("smvision.monitor.gate")
APPROVED = "Approved"


class GateError(ValueError):
    """An input the gate cannot read, with what it expected."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--group", required=True, help="the model package group")
    parser.add_argument("--region", required=True, help="the AWS region of the group")
    parser.add_argument(
        "--training",
        type=Path,
        metavar="DIR",
        help="where the training job's output.tar.gz (or evaluation.json) is",
    )
    parser.add_argument("--output", type=Path, metavar="DIR", help="where gate.json goes")
    return parser


def read_evaluation(folder: Path) -> dict[str, Any]:
    """evaluation.json, as it is or inside the output.tar.gz a training job wrote."""
    direct = folder / model_quality.EVALUATION_FILE
    if direct.is_file():
        return dict(json.loads(direct.read_text()))
    for archive_path in sorted(folder.glob("*.tar.gz")):
        with tarfile.open(archive_path, "r:gz") as archive:
            for member in archive:
                if member.isfile() and Path(member.name).name == model_quality.EVALUATION_FILE:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        return dict(json.loads(handle.read()))
    raise GateError(
        f"{folder} holds no {model_quality.EVALUATION_FILE} (nor an output.tar.gz with one): "
        "the training job evaluated nothing; give it a test channel."
    )


def latest_approved(session: Any, group: str) -> tuple[str, float] | None:
    """The ARN and accuracy of the group's latest Approved version; None when there is none."""
    from botocore.exceptions import ClientError

    sagemaker = session.client("sagemaker")
    try:
        listed = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus=APPROVED,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )["ModelPackageSummaryList"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    if not listed:
        return None
    arn = listed[0]["ModelPackageArn"]
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    statistics = (
        described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    )
    if not statistics:
        raise GateError(
            f"The latest approved version {arn} has no model-quality statistics "
            "to compare with; register versions with `launch register` or this "
            "pipeline, or reject it."
        )
    bucket, _, key = statistics[len("s3://") :].partition("/")
    body = session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return arn, model_quality.accuracy_of(json.loads(body), statistics)


def run(args: argparse.Namespace, contract: contract_module.Contract, session: Any) -> int:
    training = args.training or contract.processing_input(contract_module.TRAINING_OUTPUT_INPUT)
    out = args.output or contract.processing_output_dir
    statistics = model_quality.from_evaluation(read_evaluation(training))
    accuracy = model_quality.accuracy_of(statistics, model_quality.EVALUATION_FILE)
    approved = latest_approved(session, args.group)
    gate = {
        model_quality.NEW_ACCURACY: accuracy,
        model_quality.APPROVED_ACCURACY: approved[1] if approved else 0.0,
        model_quality.APPROVED_PACKAGE: approved[0] if approved else "none",
        "split": statistics["dataset"]["split"],
    }
    write_json(out / model_quality.GATE_FILE, gate)
    write_json(out / model_quality.FILE, statistics)
    log.info(
        "New model: %s accuracy %.4f; latest approved version of %s: %s.",
        gate["split"],
        accuracy,
        args.group,
        f"{approved[1]:.4f} ({approved[0]})" if approved else "none",
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def work(contract: contract_module.Contract) -> int:
        import boto3

        return run(args, contract, boto3.session.Session(region_name=args.region))

    return run_job(work, (GateError, model_quality.EvaluationError), log)


if __name__ == "__main__":
    sys.exit(main())
