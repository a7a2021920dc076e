"""The two ways a launcher command fails."""

from __future__ import annotations


class LaunchError(Exception):
    """A setting, option or input that cannot work; found before or without AWS."""

    exit_code = 2


class AwsError(LaunchError):
    """AWS refused a request or a job ended badly; the message says which and why."""

    exit_code = 1
