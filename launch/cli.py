"""`python -m launch COMMAND`: parse, resolve settings, hand over to one command.

Every command module has `add_parser(commands, parents)`, which registers its options and sets
`handler`, and a `run(args, settings, open_session)` that validates everything it can
before it opens an AWS session. Adding a flag and its dispatch to a command is a few
lines in that command's module.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from launch.common.errors import Interrupted, LaunchError
from launch.common.settings import SPECS, resolve
from launch.compare import command as compare
from launch.hosting import add_model, cleanup, deploy, invoke, transform
from launch.local.cli import add_local_options
from launch.mlops import model_registry, monitoring, pipeline
from launch.rekognition import command as rekognition
from launch.training import train, tune

if TYPE_CHECKING:
    import boto3

    from launch.common.aws import SessionFactory

COMMANDS = (
    train,
    tune,
    deploy,
    add_model,
    invoke,
    transform,
    cleanup,
    model_registry,
    compare,
    rekognition,
    monitoring,
    pipeline,
)

DESCRIPTION = """\
Run the smvision image on Amazon SageMaker: training and tuning jobs, endpoints, batch
transform, and a comparison of every algorithm (beside AWS Rekognition). Settings come
from flags, else SMVISION_REGION, SMVISION_ROLE, SMVISION_BUCKET and SMVISION_IMAGE_URI,
else the TOML file given by --config (keys region, role, bucket, image_uri)."""


def build_parser() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    group = shared.add_argument_group("settings (flag, else environment variable, else --config)")
    for spec in SPECS.values():
        group.add_argument(
            spec.flag,
            dest=spec.name,
            metavar=spec.name.upper(),
            help=f"{spec.meaning} (${spec.variable}; e.g. {spec.example})",
        )
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a TOML file with any of: region, role, bucket, image_uri",
    )
    parser = argparse.ArgumentParser(
        prog="python -m launch",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands, [shared])
    add_local_options(commands.choices)
    return parser


def _boto3_session(region: str) -> boto3.session.Session:
    from launch.common.aws import open_session

    return open_session(region)


def main(argv: Sequence[str] | None = None, open_session: SessionFactory | None = None) -> int:
    """Run one command; `open_session` (region -> boto3 session) defaults to boto3's own."""
    args = build_parser().parse_args(argv)
    try:
        settings = resolve({name: getattr(args, name) for name in SPECS}, os.environ, args.config)
        return int(args.handler(args, settings, open_session or _boto3_session))
    except LaunchError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr, flush=True)
        return Interrupted.exit_code
