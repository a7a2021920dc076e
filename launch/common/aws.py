"""The AWS side shared by every command: sessions, console links, readable failures.

Imported only after a command has checked its arguments, because boto3 and the
SageMaker SDK take seconds to import.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from launch.common.errors import AwsError, Interrupted

SessionFactory = Callable[[str], boto3.session.Session]

# What a describe call answers for a resource that does not exist: one of these codes,
# with one of these phrases in the message (ValidationException alone also means a
# malformed request). DescribeTrainingJob says "Requested resource not found.", the
# model and endpoint calls "Could not find ...".
_NOT_FOUND = ("ValidationException", "ResourceNotFound", "ObjectNotFoundException")
_NOT_FOUND_PHRASES = ("not find", "not exist", "not found")

# Loggers whose INFO lines a user wants to see: job status and the container's logs.
_SDK_LOGGERS = ("sagemaker.core.resources", "sagemaker.train", "sagemaker.core.transformer")


def open_session(region: str) -> boto3.session.Session:
    return boto3.session.Session(region_name=region)


def show_sdk_progress() -> None:
    """Route the SDK's status and CloudWatch log lines to the terminal.

    The SDK leaves logging to the application; without a handler the training logs
    it streams while waiting would be dropped.
    """
    from rich.logging import RichHandler

    handler = RichHandler(show_time=False, show_level=False, show_path=False, markup=True)
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, RichHandler) for h in logger.handlers):
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def console_url(region: str, fragment: str) -> str:
    domain = "console.amazonaws.cn" if region.startswith("cn-") else "console.aws.amazon.com"
    return f"https://{region}.{domain}/sagemaker/home?region={region}#/{fragment}"


def print_status_command(kind: str, name: str, region: str) -> None:
    """For --no-wait: the AWS CLI command that tells how a job of `kind` (such as
    training-job) is doing."""
    print(
        f"Not waiting. Status: aws sagemaker describe-{kind} --region {region} --{kind}-name {name}"
    )


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_missing(error: ClientError) -> bool:
    """An S3 object that is not there (GetObject says NoSuchKey, HeadObject 404)."""
    return error_code(error) in ("404", "NoSuchKey", "NotFound")


def _sdk_errors() -> tuple[type[Exception], ...]:
    """The SDK's own error class, once something imported the SDK (only then can it be
    raised); commands that never use the SDK, such as `rekognition`, need not load it."""
    module = sys.modules.get("sagemaker.core.utils.exceptions")
    return (module.SageMakerCoreError,) if module is not None else ()


@contextmanager
def reporting(step: str) -> Iterator[None]:
    """Turn AWS and SDK exceptions inside `step` into one AwsError sentence, and Ctrl-C
    into a reminder that SageMaker carries on."""
    try:
        yield
    except ClientError as error:
        raise AwsError(f"{step} failed: {error}") from error
    except BotoCoreError as error:
        raise AwsError(
            f"{step} failed: {error} (check credentials, region and network)."
        ) from error
    except _sdk_errors() as error:
        raise AwsError(f"{step} failed: {error}") from error
    except KeyboardInterrupt as error:
        raise Interrupted(
            f"Interrupted during: {step}. Whatever SageMaker had already started keeps "
            "running (and billing); check the console."
        ) from error


def describe_or_none(call: Callable[..., Any], **kwargs: str) -> dict[str, Any] | None:
    """A describe call's answer, or None when the resource does not exist."""
    try:
        return dict(call(**kwargs))
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message", ""))
        if error_code(error) in _NOT_FOUND and any(p in message for p in _NOT_FOUND_PHRASES):
            return None
        with reporting(f"Describing {kwargs}"):
            raise
