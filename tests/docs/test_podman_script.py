"""scripts/podman.sh ensure, the step `make test` runs before pytest.

As root it installs the container engine when it is missing (not exercised here: that
needs a machine without it); as anyone else it stops with the apt-get line and the
opt-out, so that `make test` says what to do before the image tests fail one by one.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.engine import OPT_OUT_ENV, PODMAN_SCRIPT, opted_out

NOBODY = 65534


@pytest.fixture
def state() -> Iterator[Path]:
    """A state directory that nobody can write (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory(prefix="smvision-podman-") as directory:
        os.chmod(directory, 0o777)
        yield Path(directory)


def ensure(state: Path, opt_out: str | None) -> subprocess.CompletedProcess[str]:
    """`podman.sh ensure` as a user who is not root (root drops to nobody for it)."""
    env = {key: value for key, value in os.environ.items() if key != OPT_OUT_ENV}
    env["SMVISION_PODMAN_DIR"] = str(state)
    if opt_out is not None:
        env[OPT_OUT_ENV] = opt_out
    command = ["bash", str(PODMAN_SCRIPT), "ensure"]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_without_root_it_stops_with_the_apt_get_line_and_the_opt_out(state: Path) -> None:
    result = ensure(state, opt_out=None)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "apt-get install -y --no-install-recommends podman runc" in result.stderr
    assert f"{OPT_OUT_ENV}=1 make test" in result.stderr


@pytest.mark.parametrize("value", ["1", "true", " Yes ", "TRUE", "0", "no", ""])
def test_the_opt_out_reads_as_the_image_tests_read_it(
    state: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(OPT_OUT_ENV, value)
    result = ensure(state, opt_out=value)
    assert (result.returncode == 0) == opted_out(), result.stdout + result.stderr
    if opted_out():
        assert "will be skipped" in result.stdout
