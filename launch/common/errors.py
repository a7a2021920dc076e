"""The two ways a launcher command fails."""

from __future__ import annotations


class LaunchError(Exception):
    """A setting, option or input that cannot work; found before or without AWS."""

    exit_code = 2


class AwsError(LaunchError):
    """AWS refused a request or a job ended badly; the message says which and why."""

    exit_code = 1


class Interrupted(LaunchError):
    """Ctrl-C while a step ran: what SageMaker already started goes on without us."""

    exit_code = 130
