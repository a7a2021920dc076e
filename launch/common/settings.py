"""Where the launchers work: region, IAM role, S3 bucket and image URI.

Each setting comes from its flag, else its environment variable, else the TOML file
given by --config (top-level keys below). A command asks only for the settings it
needs, and a missing or malformed one is an error that says how to set it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from launch.common.errors import LaunchError
from launch.common.parsing import read_toml

SettingName = Literal["region", "role", "bucket", "image_uri"]


@dataclass(frozen=True)
class SettingSpec:
    name: SettingName
    flag: str
    variable: str
    meaning: str
    example: str
    pattern: re.Pattern[str]


SPECS: dict[SettingName, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec(
            "region",
            "--region",
            "SMVISION_REGION",
            "the AWS region",
            "us-east-1",
            re.compile(r"[a-z]{2}(-[a-z]+)+-\d+"),
        ),
        SettingSpec(
            "role",
            "--role",
            "SMVISION_ROLE",
            "the ARN of the IAM role SageMaker runs jobs and endpoints as",
            "arn:aws:iam::123456789012:role/SmvisionExecution",
            re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+"),
        ),
        SettingSpec(
            "bucket",
            "--bucket",
            "SMVISION_BUCKET",
            "the S3 bucket for outputs (written under s3://BUCKET/smvision/)",
            "my-ml-bucket",
            re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"),
        ),
        SettingSpec(
            "image_uri",
            "--image-uri",
            "SMVISION_IMAGE_URI",
            "the smvision image in ECR (docker/build_and_push.sh prints it)",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/smvision:cpu",
            re.compile(r"[^\s@:]+(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?"),
        ),
    )
}


@dataclass(frozen=True)
class Source:
    """A value and where it came from, for error messages."""

    value: str
    origin: str


@dataclass(frozen=True)
class Settings:
    values: Mapping[SettingName, Source]

    def require(self, name: SettingName) -> str:
        spec = SPECS[name]
        source = self.values.get(name)
        if source is None:
            raise LaunchError(
                f"Missing setting '{name}' ({spec.meaning}): pass {spec.flag}, set "
                f'{spec.variable}, or put {name} = "{spec.example}" in the --config file.'
            )
        if not spec.pattern.fullmatch(source.value):
            raise LaunchError(
                f"Setting '{name}' has value '{source.value}' (from {source.origin}), which "
                f"is not {spec.meaning}; use a value such as {spec.example}."
            )
        return source.value

    def get(self, name: SettingName) -> str | None:
        source = self.values.get(name)
        return None if source is None else self.require(name)


def resolve(
    flags: Mapping[SettingName, str | None],
    environ: Mapping[str, str],
    config_file: Path | None,
) -> Settings:
    """Flag over environment variable over config file, per setting."""
    from_file = read_config(config_file) if config_file is not None else {}
    values: dict[SettingName, Source] = {}
    for name, spec in SPECS.items():
        flag_value = flags.get(name)
        if flag_value:
            values[name] = Source(flag_value.strip(), spec.flag)
        elif environ.get(spec.variable, "").strip():
            values[name] = Source(environ[spec.variable].strip(), spec.variable)
        elif name in from_file:
            values[name] = Source(from_file[name], f"{name} in {config_file}")
    return Settings(values)


def read_config(path: Path) -> dict[SettingName, str]:
    data = read_toml(path, "--config")
    known = {str(name): name for name in SPECS}
    result: dict[SettingName, str] = {}
    for key, value in data.items():
        if key not in known:
            raise LaunchError(
                f"--config {path}: unknown key '{key}'; the file may set {', '.join(known)}."
            )
        if not isinstance(value, str) or not value.strip():
            raise LaunchError(
                f"--config {path}: key '{key}' must be a non-empty string, such as "
                f'{key} = "{SPECS[known[key]].example}".'
            )
        result[known[key]] = value.strip()
    return result
