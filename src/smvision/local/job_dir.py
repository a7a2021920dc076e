"""A local training job: its directory laid out as SageMaker lays out /opt/ml, and the
command that runs the image's `train` in it.

`lay_out_job` writes JOBDIR/opt/ml (input/config, the channels as copies or links, Pipe
mode's FIFOs); `train_command` is the argv of `python -m smvision.local train`, which the
local compare runs once per algorithm.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil

from smvision.core import contract as contract_module
from smvision.core.contract import Contract
from smvision.data import pipemode, recordio
from smvision.data.pipemode import PipeError, PipeFeeder

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long a child told to stop may take before it is killed: SageMaker's wait between
# SIGTERM and SIGKILL when it stops a training job.
STOP_GRACE_S = 120.0
# The exit status when --max-run passes, as timeout(1) reports it.
TIMED_OUT = 124
# How often the wait for a child looks at its deadlines.
WAIT_SLICE_S = 0.5
# How long a SIGKILLed process may take to be gone: delivery is asynchronous.
KILL_WAIT_S = 10.0
# SageMaker's default MaxRuntimeInSeconds: a day.
DEFAULT_MAX_RUN_S = 86400

# The toolkit waits (up to 15 minutes) for every host name in resourceconfig.json to
# resolve. SageMaker's names (algo-1, ...) resolve only inside a job or a compose network,
# so outside a container we use the toolkit's own switch for local runs to skip the wait.
SKIP_HOST_WAIT_ENV = {"SM_STUDIO_LOCAL_MODE": "true"}


def job_contract(job_dir: Path) -> Contract:
    return contract_module.load(
        {contract_module.BASE_DIR_ENV: str(job_dir.resolve() / "opt" / "ml")}
    )


@dataclass(frozen=True)
class PipeChannel:
    """A channel streamed in Pipe mode: an augmented manifest (its attributes, each a
    RecordIO record) when `attribute_names` are given, else the .rec files of a folder."""

    source: Path
    attribute_names: tuple[str, ...] = ()

    def check(self, channel: str) -> None:
        """Refuse, before training starts, what the stream would fail on."""
        if not self.attribute_names:
            if not sorted(self.source.rglob("*.rec")):
                raise SystemExit(f"--pipe {channel}: {self.source} holds no .rec files to stream.")
            return
        try:
            for number, entry in enumerate(
                pipemode.read_manifest(self.source, self.attribute_names), start=1
            ):
                for name in self.attribute_names:
                    if name.endswith("-ref"):
                        pipemode.resolve_ref(self.source, str(entry[name]), number)
        except (PipeError, OSError) as error:
            raise SystemExit(f"--manifest {channel}={self.source}: {error}") from None

    def records(self) -> Iterator[bytes]:
        if self.attribute_names:
            yield from pipemode.manifest_records(self.source, self.attribute_names)
            return
        for rec_file in sorted(self.source.rglob("*.rec")):
            with rec_file.open("rb") as stream:
                yield from recordio.read_records(stream, str(rec_file))

    def input_config(self) -> dict[str, str]:
        return {
            "TrainingInputMode": contract_module.PIPE_MODE,
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": (
                contract_module.RECORDIO_WRAPPER if self.attribute_names else "None"
            ),
            "ContentType": contract_module.RECORDIO_CONTENT_TYPE,
        }


def start_pipes(contract: Contract, pipes: Mapping[str, PipeChannel]) -> None:
    """A FIFO per Pipe-mode channel, fed from a thread of this process."""
    for name, pipe in pipes.items():
        PipeFeeder(functools.partial(contract.pipe_path, name), pipe.records).start()


def lay_out_job(
    job_dir: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, str],
    hosts: Sequence[str] = ("algo-1",),
    current_host: str = "algo-1",
    pipes: Mapping[str, PipeChannel] | None = None,
) -> Contract:
    """Write JOBDIR/opt/ml as SageMaker does; keep checkpoints/ from an earlier run. Pipe
    channels get their mode in inputdataconfig.json; `start_pipes` creates their FIFOs.

    The new input/ is built beside the old one and replaces it, and an earlier run's model/
    and output/ go, only once every channel is in place: a channel that does not exist
    leaves an earlier job as it was, and one inside the job itself (its own input/data/train,
    or its model/ as a model channel) is copied before the old tree goes."""
    pipes = pipes or {}
    contract = job_contract(job_dir)
    _check_sources(contract, channels, pipes)
    contract.base_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=contract.base_dir, prefix=".input-staging-"))

    def staged(path: Path) -> Path:
        return staging / path.relative_to(contract.input_dir)

    try:
        staged(contract.config_dir).mkdir(parents=True)
        staged(contract.data_dir).mkdir(parents=True)
        for name, source in channels.items():
            if name not in pipes:
                _copy_channel(source, staged(contract.channel_dir(name)))
        _write_config(staged, contract, channels, hyperparameters, hosts, current_host, pipes)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for directory in (contract.input_dir, contract.model_dir, contract.output_dir):
        if directory.exists():
            shutil.rmtree(directory)
    staging.rename(contract.input_dir)
    for directory in (contract.model_dir, contract.output_data_dir, contract.checkpoint_dir):
        directory.mkdir(parents=True, exist_ok=True)
    return contract


def _check_sources(
    contract: Contract, channels: Mapping[str, Path], pipes: Mapping[str, PipeChannel]
) -> None:
    """Refuse, before anything is written, a channel that is missing or that the layout
    would destroy: one that holds the job directory, or a streamed one inside the part of
    the job that is laid out afresh."""
    base = contract.base_dir.resolve()
    replaced = [d.resolve() for d in (contract.input_dir, contract.model_dir, contract.output_dir)]
    for name, source in channels.items():
        given = f"--channel {name}={source}"
        if not source.exists():
            raise SystemExit(f"{given}: no such file or directory.")
        resolved = source.resolve()
        if base.is_relative_to(resolved):
            raise SystemExit(
                f"{given} holds the job directory ({base}); a channel is copied into the job, "
                "so give a folder outside it."
            )
        inside = [d for d in replaced if resolved.is_relative_to(d)]
        if name in pipes and inside:
            raise SystemExit(
                f"{given} lies inside the job's own {inside[0]}, which this run lays out "
                "afresh before it streams the channel; move it out of the job directory."
            )


def _write_config(
    staged: Callable[[Path], Path],
    contract: Contract,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, str],
    hosts: Sequence[str],
    current_host: str,
    pipes: Mapping[str, PipeChannel],
) -> None:
    """input/config: hyperparameters.json, inputdataconfig.json, resourceconfig.json."""
    _write(staged(contract.hyperparameters_file), {k: str(v) for k, v in hyperparameters.items()})
    file_mode = {
        "TrainingInputMode": contract_module.FILE_MODE,
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    }
    _write(
        staged(contract.input_data_config_file),
        {name: file_mode for name in channels if name not in pipes}
        | {name: pipe.input_config() for name, pipe in pipes.items()},
    )
    _write(
        staged(contract.resource_config_file),
        {
            "current_host": current_host,
            "current_instance_type": "local",
            "current_group_name": "homogeneousCluster",
            "hosts": list(hosts),
            "instance_groups": [
                {
                    "instance_group_name": "homogeneousCluster",
                    "instance_type": "local",
                    "hosts": list(hosts),
                }
            ],
            "network_interface_name": "eth0",
        },
    )


def _copy_channel(source: Path, destination: Path) -> None:
    """Hard-link (else copy) a channel into place, so a bind mount of opt/ml sees real files."""
    if source.is_dir():
        shutil.copytree(source, destination, copy_function=_link_or_copy)
    else:
        destination.mkdir(parents=True)
        _link_or_copy(str(source), str(destination / source.name))


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def training_environment(
    contract: Contract, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env[contract_module.BASE_DIR_ENV] = str(contract.base_dir)
    env[contract_module.TRAINING_MODULE_ENV] = contract_module.TRAINING_MODULE
    env["PYTHONUNBUFFERED"] = "1"
    env.update(SKIP_HOST_WAIT_ENV)
    return env


def console_script(name: str) -> str:
    """A console script of this interpreter's environment (the venv's `train`, `serve`)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"'{name}' is not installed next to {sys.executable}; run `make venv`.")
    return found


@dataclass(frozen=True)
class Finished:
    """How a foreground child ended: its own exit status, the stop signal this process
    passed on to it (Ctrl-C, kill), and whether its time limit passed first."""

    status: int
    stopped_by: int | None = None
    timed_out: bool = False

    @property
    def exit_status(self) -> int:
        """As a shell reports it: 124 past the time limit (as timeout(1)), 128 + N when
        stopped by signal N, else the child's own status."""
        if self.timed_out:
            return TIMED_OUT
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return self.own_status

    @property
    def own_status(self) -> int:
        """The child's own status (128 + N when signal N killed it): a server that ends
        cleanly on the SIGTERM passed on to it exits 0."""
        return 128 - self.status if self.status < 0 else self.status


def run_child(
    command: Sequence[str],
    env: Mapping[str, str],
    max_run_s: float | None = None,
    grace_s: float = STOP_GRACE_S,
) -> Finished:
    """Run a command in the foreground and wait for it, with deadlines.

    SIGINT and SIGTERM are passed on to it; so is a SIGTERM of our own once `max_run_s`
    passes. A child told to stop has `grace_s` to end, then it and every process it started
    are killed, so nothing outlives this one.
    """
    child = subprocess.Popen(list(command), env=dict(env))
    stops: list[int] = []
    stopped_at: float | None = None
    # The child's processes, seen whenever it is told to stop: a toolkit that ends before
    # its script would otherwise leave the script to run on, out of sight.
    family: set[psutil.Process] = set()

    def stop(signum: int, _frame: FrameType | None = None) -> None:
        nonlocal stopped_at
        stops.append(signum)
        stopped_at = stopped_at or time.monotonic()
        family.update(_descendants(child.pid))
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    started = time.monotonic()
    timed_out = False
    try:
        while True:
            if max_run_s is not None and not timed_out and time.monotonic() - started > max_run_s:
                timed_out = True
                stop(signal.SIGTERM)
            if stopped_at is not None and time.monotonic() - stopped_at > grace_s:
                family.update(_descendants(child.pid))
                _kill(family | {psutil.Process(child.pid)})
                status = child.wait()
                break
            try:
                status = child.wait(timeout=WAIT_SLICE_S)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stops:
        _kill(family)  # the child ended; what it started may not have
    return Finished(status, stops[0] if stops else None, timed_out)


def run_foreground(
    command: Sequence[str],
    env: Mapping[str, str],
    max_run_s: float | None = None,
    grace_s: float = STOP_GRACE_S,
) -> int:
    """`run_child`, and the exit status a shell would report."""
    return run_child(command, env, max_run_s, grace_s).exit_status


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _kill(processes: set[psutil.Process]) -> None:
    """SIGKILL each process and wait (up to KILL_WAIT_S) until each is gone or a zombie:
    the signal is delivered asynchronously, and nothing may run on once this returns."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline and any(map(_alive, processes)):
        time.sleep(WAIT_SLICE_S / 10)


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def add_channel_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--channel NAME=DIR, repeatable: the channels of train, compare and inspect."""
    parser.add_argument(
        "--channel",
        action="append",
        type=key_value,
        default=[],
        metavar="NAME=DIR",
        help=help_text,
    )


def key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    key, value = text.split("=", 1)
    return key.strip(), value


def train_command(
    algorithm: str,
    channels: Mapping[str, Path],
    job_dir: Path,
    hyperparameters: Mapping[str, str] | None = None,
    manifests: Mapping[str, Path] | None = None,
    attribute_names: Sequence[str] = (),
    pipes: Sequence[str] = (),
) -> list[str]:
    """The argv of `python -m smvision.local train` (this interpreter) for these arguments."""
    command = [sys.executable, "-m", "smvision.local", "train", "--algorithm", algorithm]
    command += ["--job-dir", str(job_dir)]
    for name, path in channels.items():
        command += ["--channel", f"{name}={path}"]
    for name, path in (manifests or {}).items():
        command += ["--manifest", f"{name}={path}"]
    if attribute_names:
        command += ["--attribute-names", ",".join(attribute_names)]
    for name in pipes:
        command += ["--pipe", name]
    for key, value in (hyperparameters or {}).items():
        command += ["--hp", f"{key}={value}"]
    return command
