"""What several commands share, spelled once: a command's parser and handler, and the
options --job-name, --wait, --instance-type and --instance-count with their defaults."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from launch.common.errors import LaunchError
from launch.common.parsing import positive_int, resource_name, timestamped_name
from launch.common.settings import Settings

if TYPE_CHECKING:
    import boto3

    from launch.common.aws import SessionFactory

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
# What a parser's `handler` default is: run the command, return its exit status.
Handler = Callable[[argparse.Namespace, Settings, "SessionFactory"], int]
Plan = TypeVar("Plan")
# SageMaker's limit for job, model, endpoint and endpoint-config names.
NAME_LENGTH = 63


def command_parser(
    commands: Commands,
    name: str,
    parents: list[argparse.ArgumentParser],
    summary: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """One command's parser: `summary` in the command list, `description` (default the
    summary) at the top of its --help, printed as written."""
    if description is None:
        return commands.add_parser(name, parents=parents, help=summary, description=summary + ".")
    return commands.add_parser(
        name,
        parents=parents,
        help=summary,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def planned(
    plan: Callable[[argparse.Namespace, Settings, datetime], Plan],
    submit: Callable[[Plan, boto3.session.Session], int],
) -> Handler:
    """The handler of a command that checks everything it can on this machine (`plan`)
    before it opens an AWS session and hands the plan to the SDK (`submit`)."""

    def handle(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
        checked = plan(args, settings, datetime.now())
        session = open_session(settings.require("region"))
        from launch.common.aws import show_sdk_progress  # seconds to import: only once it is needed

        show_sdk_progress()
        return submit(checked, session)

    return handle


def add_name_argument(
    parser: argparse.ArgumentParser,
    meaning: str,
    default: str,
    option: str = "--job-name",
    max_length: int = NAME_LENGTH,
) -> None:
    """`option` NAME: `meaning`, at most `max_length` characters, else DEFAULT-TIMESTAMP."""
    limit = f", up to {max_length} characters" if max_length != NAME_LENGTH else ""
    parser.add_argument(
        option, metavar="NAME", help=f"{meaning}{limit} (default {default}-TIMESTAMP)"
    )


def chosen_name(
    given: str | None, option: str, default: str, now: datetime, max_length: int = NAME_LENGTH
) -> str:
    """The name the user gave, checked, or `default`-TIMESTAMP."""
    if given:
        return resource_name(given, option, max_length)
    return timestamped_name(default, now, max_length)


def add_wait_argument(parser: argparse.ArgumentParser, what: str, note: str = "") -> None:
    parser.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"wait for {what} (default --wait){'; ' + note if note else ''}",
    )


def add_wait_timeout_argument(parser: argparse.ArgumentParser, what: str, default_s: int) -> None:
    parser.add_argument(
        "--wait-timeout",
        metavar="SECONDS",
        help=f"stop waiting for {what} after this long; SageMaker carries on (default {default_s})",
    )


def wait_timeout_s(args: argparse.Namespace, default_s: int) -> int:
    given = getattr(args, "wait_timeout", None)
    return default_s if given is None else positive_int(given, "--wait-timeout")


def add_instance_arguments(
    parser: argparse.ArgumentParser, type_default: str, count_meaning: str
) -> None:
    """--instance-type (None when not given: each command has its own default) and
    --instance-count (default 1)."""
    parser.add_argument(
        "--instance-type", metavar="TYPE", help=f"ml.* instance type (default {type_default})"
    )
    parser.add_argument(
        "--instance-count", default="1", metavar="N", help=f"{count_meaning} (default 1)"
    )


def sagemaker_instance_type(text: str, examples: str = "ml.m5.xlarge") -> str:
    if not text.startswith("ml."):
        raise LaunchError(
            f"--instance-type '{text}' is not a SageMaker instance type; use "
            f"one such as {examples}."
        )
    return text


def add_endpoint_argument(parser: argparse.ArgumentParser) -> None:
    """--endpoint-name of an endpoint that exists (`invoke`, `cleanup`)."""
    parser.add_argument(
        "--endpoint-name", required=True, metavar="NAME", help="the endpoint `deploy` created"
    )
