"""The real `serve`, tried as a hostile user would (issue 22): variables out of range, bodies
that stop half-way, models whose files are missing, empty, mislabelled or outside the
model root, loads that never end, and many unloads at once.

Each case ends in a 4xx (or, for `serve` itself, exit 2) and one sentence, and the server
goes on serving. "Stalled", "stuck" and "in flight" are certain by construction: a
connection that sends half a body and then nothing (`StalledRequest`), a FIFO in place of a
model file (opening it blocks until a writer comes, and none does), or the svm as
`tests.support.gated_algorithm.GatedSVM`, held at a gate the test opens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server_process import free_port

SERVE_EXIT_TIMEOUT_S = 120


def serve_command() -> list[str]:
    return [str(Path(sys.executable).parent / "serve")]


@pytest.mark.parametrize(
    "name, value",
    [
        ("SAGEMAKER_BIND_TO_PORT", "70000"),
        ("SAGEMAKER_BIND_TO_PORT", "0"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "inf"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "nan"),
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "inf"),
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "-inf"),
        ("SMVISION_MODELS_MEMORY_MB", "inf"),
    ],
)
def test_a_serving_variable_out_of_range_exits_2_with_one_sentence(
    tmp_path: Path, name: str, value: str
) -> None:
    """A multi-model server needs no model to start, so the variable is all that is wrong."""
    env = {
        "SAGEMAKER_BASE_DIR": str(tmp_path / "opt" / "ml"),
        "SAGEMAKER_MULTI_MODEL": "true",
        "SAGEMAKER_BIND_TO_PORT": str(free_port()),  # should it start after all
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        name: value,
    }
    try:
        completed = subprocess.run(
            serve_command(), env=env, capture_output=True, text=True, timeout=SERVE_EXIT_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"serve with {name}={value} was still running: {expired.output!r}")
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert "Traceback" not in output and "Error:" not in output, output
    (line,) = [line for line in output.splitlines() if " ERROR " in line]
    assert f"Environment variable {name} has value '{value}'; use " in line, output
