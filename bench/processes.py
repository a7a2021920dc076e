"""What the benchmarks read about server processes: readiness, CPU time, memory, from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from smvision.local.compare.peak_memory import descendants
from smvision.local.compare.serving import ping_status

POLL_S = 0.01
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class NotReadyError(RuntimeError):
    """A server that exited or never answered /ping with 200."""


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> float:
    """Poll /ping every 10 ms until it says 200; the seconds since `process` started."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise NotReadyError(f"exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if ping_status(port) == 200:
            return time.monotonic() - started
        time.sleep(POLL_S)
    raise NotReadyError(f"no 200 on /ping within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes], timeout: float = 40.0) -> None:
    """SIGTERM and wait; SIGKILL it and its children if it overstays."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        for pid in [*descendants(process.pid), process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MiB: PSS splits pages shared with other processes among them."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            values[name] = int(rest.split()[0]) / 1024
    return values["Rss"], values["Pss"]


def wait_idle(pids: list[int], quiet_s: float = 0.2, timeout: float = 120.0) -> None:
    """Wait until `pids` together use under a tenth of a core for `quiet_s`: wrk leaves the
    requests in flight when a run ends, and a server works them off before the next run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(_cpu_or_zero(pid) for pid in pids)
        time.sleep(quiet_s)
        if sum(_cpu_or_zero(pid) for pid in pids) - before < 0.1 * quiet_s:
            return
    raise NotReadyError(f"processes {pids} still busy {timeout:.0f} s after the load stopped")


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
