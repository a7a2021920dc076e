"""The names Rekognition Custom Labels accepts for projects and model versions."""

from __future__ import annotations

import re

from launch.common.errors import LaunchError

# The service model's pattern for ProjectName and VersionName.
_NAME = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")


def project_name(text: str, option: str) -> str:
    if not _NAME.fullmatch(text):
        raise LaunchError(
            f"{option} '{text}' is not a valid Custom Labels name; use up to 255 "
            "letters, digits, '.', '_' and '-'."
        )
    return text
