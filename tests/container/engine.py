"""The container engine the image tests drive: podman with its state in build/podman.

`scripts/podman.sh` is the one place that knows how podman is set up on these machines
(configuration, the debootstrap base image, the build with the host's CA bundle, the
Docker-compatible socket); this module runs it and keeps track of what the tests start,
so that they remove exactly that and nothing else.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PODMAN_SCRIPT = ROOT / "scripts" / "podman.sh"
# Set to 1 to skip the container tests on a machine that cannot run them (README
# Prerequisites, docs/design/image.md). CI never sets it: there, a missing engine fails the run.
OPT_OUT_ENV = "SMVISION_SKIP_CONTAINER_TESTS"
IMAGE = "localhost/smvision:test"
LITE_IMAGE = "localhost/smvision:test-lite"
BUILD_TIMEOUT_S = 1800
SERVICE_START_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 120
COMPOSE_WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
SDK_NETWORK = "sagemaker-local"


class EngineError(RuntimeError):
    """An engine command that failed; the message holds its output."""


def opted_out() -> bool:
    return os.environ.get(OPT_OUT_ENV, "").strip().lower() in ("1", "true", "yes")


def missing_requirements() -> str:
    """What this machine lacks to run the image tests, with the install line; '' if nothing."""
    if not PODMAN_SCRIPT.is_file():
        return f"{PODMAN_SCRIPT} is missing."
    checked = subprocess.run(
        ["bash", str(PODMAN_SCRIPT), "check"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    return "" if checked.returncode == 0 else (checked.stdout + checked.stderr).strip()


def engine_environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus the podman, docker and docker-compose settings `podman.sh env` prints."""
    printed = subprocess.run(
        ["bash", str(PODMAN_SCRIPT), "env"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=True,
    ).stdout
    env = dict(base)
    for line in printed.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


@dataclass
class Engine:
    """podman, and the docker CLI and docker-compose through podman's Docker API."""

    env: dict[str, str]
    log_dir: Path
    _service: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def podman(
        self, *args: str, timeout: float = COMMAND_TIMEOUT_S, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            ["podman", *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and completed.returncode != 0:
            raise EngineError(
                f"podman {' '.join(args)} exited {completed.returncode}:\n"
                f"{completed.stdout}{completed.stderr}"
            )
        return completed

    def build_image(self, tag: str, build_args: Sequence[str] = ()) -> float:
        """Build the repository's Dockerfile FROM the debootstrap base, with `build_args`
        (NAME=VALUE); seconds taken."""
        started = time.monotonic()
        log = self.log_dir / f"image-build-{tag.rpartition(':')[2]}.log"
        arguments = [part for arg in build_args for part in ("--build-arg", arg)]
        with log.open("w") as stream:
            for step in (["base"], ["build", *arguments, "--tag", tag, str(ROOT)]):
                completed = subprocess.run(
                    ["bash", str(PODMAN_SCRIPT), *step],
                    stdout=stream,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    timeout=BUILD_TIMEOUT_S,
                )
                if completed.returncode != 0:
                    raise EngineError(
                        f"scripts/podman.sh {step[0]} exited "
                        f"{completed.returncode}; the end of {log}:\n"
                        f"{log.read_text()[-6000:]}"
                    )
        return time.monotonic() - started

    @property
    def socket(self) -> Path:
        return Path(self.env["DOCKER_HOST"].removeprefix("unix://"))

    def start_docker_api(self) -> None:
        """Serve the Docker API for docker, compose and the SDK, on a socket of this test
        session's own (another session in the same checkout may be serving build/podman's)."""
        if self._service is not None:
            return
        self.env["DOCKER_HOST"] = f"unix://{self.log_dir / 'podman.sock'}"
        with (self.log_dir / "podman-service.log").open("wb") as log:  # the child keeps its own
            self._service = subprocess.Popen(
                ["bash", str(PODMAN_SCRIPT), "service", str(self.socket)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while True:
            if self._service.poll() is not None:
                raise EngineError(
                    f"podman system service exited {self._service.returncode}: "
                    f"{(self.log_dir / 'podman-service.log').read_text()}"
                )
            answered = subprocess.run(
                ["docker", "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=30,
            )
            if answered.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise EngineError(
                    f"The Docker API on {self.socket} did not answer in "
                    f"{SERVICE_START_TIMEOUT_S} s: {answered.stderr}"
                )
            time.sleep(0.5)  # waits on podman's Docker API answering

    def stop_docker_api(self) -> None:
        if self._service is None:
            return
        self._service.terminate()
        try:
            self._service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._service.kill()
            self._service.wait(timeout=30)
        self._service = None

    def network_exists(self, name: str) -> bool:
        return self.podman("network", "exists", name, check=False).returncode == 0

    def containers_under(self, directory: Path, running_only: bool = False) -> list[str]:
        """Containers that docker-compose started for a project inside `directory`."""
        which = [] if running_only else ["--all"]
        listed = json.loads(self.podman("ps", *which, "--format", "json").stdout or "[]")
        inside = str(directory.resolve())
        return [
            entry["Id"]
            for entry in listed
            if (entry.get("Labels") or {}).get(COMPOSE_WORKING_DIR_LABEL, "").startswith(inside)
        ]

    def remove_containers(self, ids: Sequence[str]) -> None:
        if ids:
            self.podman("rm", "--force", "--time", "10", *ids)

    @contextmanager
    def container(
        self,
        image: str,
        command: Sequence[str],
        options: Sequence[str] = (),
    ) -> Iterator[str]:
        """A detached container with a fresh name, removed on the way out."""
        name = f"smvision-test-{uuid.uuid4().hex[:12]}"
        self.podman("run", "--detach", "--name", name, *options, image, *command)
        try:
            yield name
        finally:
            self.podman("rm", "--force", "--time", "10", name, check=False)

    def logs(self, name: str) -> str:
        completed = self.podman("logs", name, check=False)
        return completed.stdout + completed.stderr


def run_container(
    engine: Engine, image: str, command: Sequence[str], options: Sequence[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`podman run --rm ... IMAGE COMMAND` in the foreground, as SageMaker runs a job."""
    name = f"smvision-test-{uuid.uuid4().hex[:12]}"
    try:
        return subprocess.run(
            ["podman", "run", "--rm", "--name", name, *options, image, *command],
            capture_output=True,
            text=True,
            env=engine.env,
            timeout=timeout,
        )
    finally:
        engine.podman("rm", "--force", "--ignore", name, check=False)
