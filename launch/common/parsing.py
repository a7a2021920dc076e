"""Checks for the values users type: S3 URIs, names, KEY=VALUE pairs, MIN:MAX ranges, TOML.

Every function raises LaunchError with a sentence that names the option, the value and
what to write instead.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from launch.common.errors import LaunchError

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# SageMaker's pattern for job, model, endpoint and endpoint-config names.
RESOURCE_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
# SageMaker's pattern for a model package ARN (versioned: .../model-package/GROUP/N).
_MODEL_PACKAGE_ARN = re.compile(
    r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]{9,16}:\d{12}:model-package/[^\s/]{1,63}(/\d+)?"
)


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def is_under(self, other: S3Uri) -> bool:
        prefix = other.key if not other.key or other.key.endswith("/") else other.key + "/"
        return self.bucket == other.bucket and (
            self.key == other.key or self.key.startswith(prefix)
        )


def s3_uri(text: str, option: str) -> S3Uri:
    if not text.startswith("s3://"):
        raise LaunchError(
            f"{option} '{text}' is not an S3 URI; upload the data first (for example "
            f"`aws s3 sync {text} s3://BUCKET/datasets/NAME/`) and pass s3://BUCKET/PREFIX."
        )
    bucket, _, key = text[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise LaunchError(
            f"{option} '{text}' names bucket '{bucket}', which is not a valid S3 bucket "
            "name (3 to 63 lowercase letters, digits, dots and hyphens)."
        )
    return S3Uri(bucket, key)


def resource_name(text: str, option: str, max_length: int = 63) -> str:
    if len(text) > max_length or not RESOURCE_NAME.fullmatch(text):
        raise LaunchError(
            f"{option} '{text}' is not a valid SageMaker name; use up to {max_length} "
            "letters, digits and hyphens, starting and ending with a letter or digit."
        )
    return text


def model_package_arn(text: str, option: str) -> str:
    if not _MODEL_PACKAGE_ARN.fullmatch(text):
        raise LaunchError(
            f"{option} '{text}' is not a model package ARN; copy the one `register` printed, "
            "such as arn:aws:sagemaker:us-east-1:123456789012:model-package/digits/1."
        )
    return text


def timestamped_name(base: str, now: datetime, max_length: int = 63) -> str:
    """A unique default name such as smvision-svm-20261125-220132-123."""
    stamp = now.strftime("%Y%m%d-%H%M%S") + f"-{now.microsecond // 1000:03d}"
    if len(base) + 1 + len(stamp) > max_length:
        stamp = now.strftime("%y%m%d-%H%M%S")
    return f"{base[: max_length - len(stamp) - 1]}-{stamp}"


def key_value(text: str, option: str) -> tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise LaunchError(f"{option} '{text}' is not KEY=VALUE, such as {option} C=10.")
    return key.strip(), value.strip()


def capacity_range(text: str, option: str) -> tuple[int, int]:
    low, separator, high = text.partition(":")
    try:
        minimum, maximum = int(low), int(high)
    except ValueError:
        minimum = maximum = 0
    if not separator or minimum < 1 or maximum < minimum:
        raise LaunchError(
            f"{option} '{text}' is not MIN:MAX with 1 <= MIN <= MAX, such as {option} 1:4."
        )
    return minimum, maximum


def positive_int(text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise LaunchError(f"{option} '{text}' must be a whole number of at least 1.")
    return value


def read_toml(path: Path, option: str) -> dict[str, Any]:
    """A TOML file a user named with `option`; unreadable or malformed is a LaunchError."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as error:
        raise LaunchError(f"{option} {path}: cannot read it ({error.strerror}).") from error
    except tomllib.TOMLDecodeError as error:
        raise LaunchError(f"{option} {path}: not valid TOML ({error}).") from error
