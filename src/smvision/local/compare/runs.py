"""One training job per algorithm, run as `python -m smvision.local train` runs it: its
output kept in job_dir/train.log and shown line by line, its wall time, its peak memory
(see `memory`: the process tree's resident sum, sampled, or wait4's ru_maxrss if larger).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from smvision.local.compare.peak_memory import TreeMemorySampler
from smvision.local.job_dir import job_contract, train_command
from smvision.schema import specs

# ru_maxrss is in kilobytes on Linux and in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass(frozen=True)
class JobOutcome:
    algorithm: str
    job_dir: Path
    returncode: int
    wall_seconds: float
    tree_peak_bytes: int  # sampled sum over the process tree (0 without /proc)
    largest_process_peak_bytes: int  # wait4's ru_maxrss
    log_file: Path

    @property
    def peak_memory_bytes(self) -> int:
        return max(self.tree_peak_bytes, self.largest_process_peak_bytes)

    @property
    def model_dir(self) -> Path:
        return job_contract(self.job_dir).model_dir

    @property
    def output_data_dir(self) -> Path:
        return job_contract(self.job_dir).output_data_dir

    def failure(self) -> str | None:
        """The job's failure sentence (output/failure), or why there is none; None on success."""
        if self.returncode == 0:
            return None
        path = job_contract(self.job_dir).failure_file
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        return (
            f"The job exited with status {self.returncode} and wrote no failure file; "
            f"its log is {self.log_file}."
        )


def run_job(
    algorithm: str,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, str],
    job_dir: Path,
    on_line: Callable[[str], None] = lambda line: None,
) -> JobOutcome:
    """Train one algorithm in job_dir; every output line goes to job_dir/train.log and on_line."""
    spec = specs.get(algorithm)
    readable = {name: path for name, path in channels.items() if spec.reads_channel(name)}
    job_dir.mkdir(parents=True, exist_ok=True)
    log_file = job_dir / "train.log"
    command = train_command(algorithm, readable, job_dir, hyperparameters)
    started = time.perf_counter()
    with (
        log_file.open("w") as log,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as process,
    ):
        assert process.stdout is not None
        with TreeMemorySampler(process.pid) as sampler:
            for line in process.stdout:
                log.write(line)
                on_line(line.rstrip("\n"))
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
    return JobOutcome(
        algorithm=algorithm,
        job_dir=job_dir,
        returncode=process.returncode,
        wall_seconds=time.perf_counter() - started,
        tree_peak_bytes=sampler.peak_bytes,
        largest_process_peak_bytes=usage.ru_maxrss * _MAXRSS_UNIT,
        log_file=log_file,
    )
