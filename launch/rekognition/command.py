"""`rekognition analyze` and `rekognition custom-labels`: the guide's managed-service row.

    python -m launch rekognition analyze IMAGES... --out FILE.jsonl [--faces] [--text]
    python -m launch rekognition custom-labels --train S3 --test S3 --project NAME
    python -m launch rekognition custom-labels --project NAME --stop

Everything a command can check (paths, numbers, names) is checked before AWS is called.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launch.common import options
from launch.common.errors import LaunchError
from launch.common.parsing import positive_int, s3_uri
from launch.common.settings import Settings
from launch.rekognition.names import project_name

if TYPE_CHECKING:
    import boto3

    from launch.common.aws import SessionFactory
    from launch.rekognition.analyze import Request
    from launch.rekognition.custom_labels import CustomLabelsPlan

HELP = "AWS Rekognition: analyze images (labels, faces, text), or train Custom Labels"
ANALYZE_HELP = (
    "DetectLabels (and DetectFaces, DetectText) on many images: one JSON line per "
    "image, failures recorded, throttling retried"
)
CUSTOM_HELP = (
    "train a Rekognition Custom Labels model on class folders in S3 and print its "
    "evaluation (F1 per label); --stop stops the project's running models"
)


def add_parser(commands: options.Commands, parents: list[argparse.ArgumentParser]) -> None:
    # The settings options (parents) go on each step, where they are typed.
    parser = options.command_parser(commands, "rekognition", [], HELP)
    steps = parser.add_subparsers(
        dest="rekognition_command", required=True, metavar="STEP", help="analyze or custom-labels"
    )
    analyze = options.command_parser(steps, "analyze", parents, ANALYZE_HELP)
    analyze.add_argument(
        "images",
        nargs="+",
        metavar="FILE_OR_FOLDER_OR_S3",
        help="image files, folders (searched recursively) or s3:// prefixes",
    )
    analyze.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.jsonl",
        help="where the JSON lines go, one per image",
    )
    analyze.add_argument(
        "--max-labels", default="10", metavar="N", help="DetectLabels' MaxLabels (default 10)"
    )
    analyze.add_argument(
        "--min-confidence",
        default="70",
        metavar="PERCENT",
        help="DetectLabels' MinConfidence, 0 to 100 (default 70)",
    )
    analyze.add_argument("--faces", action="store_true", help="also DetectFaces (all attributes)")
    analyze.add_argument("--text", action="store_true", help="also DetectText")
    analyze.add_argument(
        "--concurrency", default="8", metavar="N", help="requests in flight at once (default 8)"
    )
    analyze.set_defaults(handler=run_analyze)

    custom = options.command_parser(steps, "custom-labels", parents, CUSTOM_HELP)
    custom.add_argument(
        "--project",
        required=True,
        metavar="NAME",
        help="the Custom Labels project to create (or, with --stop, to stop)",
    )
    custom.add_argument("--train", metavar="S3URI", help="S3 prefix of training class folders")
    custom.add_argument("--test", metavar="S3URI", help="S3 prefix of test class folders")
    custom.add_argument(
        "--version", metavar="NAME", help="the model version's name (default smvision-TIMESTAMP)"
    )
    custom.add_argument(
        "--stop",
        action="store_true",
        help="stop the project's running models (they bill by the hour) instead of training",
    )
    custom.set_defaults(handler=run_custom_labels)


def run_analyze(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    from launch.rekognition import sources

    sources.check_arguments(args.images)
    request = _request(args)
    concurrency = positive_int(args.concurrency, "--concurrency")
    if not args.out.parent.is_dir():
        raise LaunchError(f"--out {args.out}: folder {args.out.parent} does not exist.")
    session = open_session(settings.require("region"))
    return _analyze(session, args.images, args.out, request, concurrency)


def run_custom_labels(
    args: argparse.Namespace, settings: Settings, open_session: SessionFactory
) -> int:
    from launch.rekognition import custom_labels

    project = project_name(args.project, "--project")
    if args.stop:
        if args.train or args.test:
            raise LaunchError("--stop only stops models; drop --train and --test.")
        session = open_session(settings.require("region"))
        custom_labels.stop_running(_rekognition(session), project)
        return 0
    if not args.train or not args.test:
        raise LaunchError(
            "custom-labels needs --train and --test (S3 prefixes of class folders), or --stop."
        )
    bucket = settings.require("bucket")
    plan = custom_labels.CustomLabelsPlan(
        project=project,
        version=project_name(args.version, "--version")
        if args.version
        else f"smvision-{datetime.now():%Y%m%d-%H%M%S}",
        train=s3_uri(args.train, "--train"),
        test=s3_uri(args.test, "--test"),
        output=s3_uri(f"s3://{bucket}/smvision/custom-labels/{project}", "--bucket"),
    )
    session = open_session(settings.require("region"))
    return _custom_labels(session, plan)


def _analyze(
    session: boto3.session.Session, images: list[str], out: Path, request: Request, concurrency: int
) -> int:
    from rich.progress import Progress

    from launch.common.aws import reporting
    from launch.rekognition import analyze, sources

    s3 = session.client("s3")
    with reporting("Listing the images"):
        found = sources.gather(images, s3)
    analyzer = analyze.Analyzer(_rekognition(session), s3, request)
    with out.open("w") as lines, Progress() as progress:
        task = progress.add_task(" + ".join(request.operations), total=len(found))
        summary = analyze.run(
            analyzer, found, lines, concurrency, lambda record: progress.advance(task)
        )
    print(
        f"Analyzed {summary.images} images into {out}: {summary.images - summary.failed} "
        f"answered, {summary.failed} failed, {summary.reencoded} re-encoded for Rekognition; "
        f"{summary.calls} billable calls."
    )
    for error in summary.errors[:10]:
        print(f"  failed: {error}", file=sys.stderr)
    return 1 if summary.failed == summary.images else 0


def _custom_labels(session: boto3.session.Session, plan: CustomLabelsPlan) -> int:
    from launch.common.aws import reporting
    from launch.rekognition import custom_labels

    with reporting(f"Custom Labels project {plan.project}"):
        result = custom_labels.train_and_evaluate(plan, _rekognition(session), session.client("s3"))
    print(f"Evaluation of {result.version_arn} ({result.test_images} test images):")
    for label, f1 in sorted(result.f1_per_label.items()):
        print(f"  {label}: F1 {f1:.3f}")
    print(f"  macro-F1 {result.macro_f1:.3f}")
    print(f"Add it to a comparison: python -m launch compare ... --custom-labels {plan.project}")
    return 0


def _rekognition(session: boto3.session.Session) -> Any:
    from launch.rekognition.retry import rekognition_client

    return rekognition_client(session)


def _request(args: argparse.Namespace) -> Request:
    from launch.rekognition.analyze import Request

    try:
        confidence = float(args.min_confidence)
    except ValueError:
        confidence = -1.0
    if not 0 <= confidence <= 100:
        raise LaunchError(
            f"--min-confidence '{args.min_confidence}' must be a number from 0 to 100."
        )
    return Request(
        labels=True,
        faces=bool(args.faces),
        text=bool(args.text),
        max_labels=positive_int(args.max_labels, "--max-labels"),
        min_confidence=confidence,
    )
