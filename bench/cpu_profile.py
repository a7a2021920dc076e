"""Where a `serve` worker's CPU goes per request, thread by thread (a profile for NOTES.md).

    python -m bench.cpu_profile JOBDIR [--concurrency 8] [--seconds 6]

Starts `serve` over JOBDIR, loads it with each payload of bench/serving.py, and prints
each thread group's CPU milliseconds per request from /proc/PID/task/*/stat: the event
loop (MainThread), the inference thread, the decode pool, and the native threads that
TensorFlow, oneDNN and OpenCV start (named by their /proc comm). Python thread names
come from `py-spy dump` (requirements/dev.txt).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench import loadgen, serving

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PY_SPY_THREAD = re.compile(r'Thread (\d+) \([^)]*\): "([^"]+)"')


def python_thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, from py-spy."""
    py_spy = Path(sys.executable).parent / "py-spy"
    dump = subprocess.run(
        [str(py_spy), "dump", "--pid", str(pid)], capture_output=True, text=True, check=True
    ).stdout
    return {int(tid): name for tid, name in _PY_SPY_THREAD.findall(dump)}


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Thread id -> (/proc comm, CPU seconds)."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended while we looked
        threads[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)
    return threads


def group(name: str | None, comm: str) -> str:
    if name is None:
        return f"native threads '{comm}'"
    return re.sub(r"_\d+$", "", name)  # decode_0, decode_1 -> decode


def profile(job_dir: Path, concurrency: int, seconds: int) -> None:
    with tempfile.TemporaryDirectory() as logs, serving.running("serve", job_dir, Path(logs)) as s:
        workers = s.worker_pids()
        for payload in serving.payloads():
            loadgen.warm_up(s.port, payload.body, payload.content_type, concurrency, 1)
            names = {tid: n for pid in workers for tid, n in python_thread_names(pid).items()}
            before = {pid: thread_cpu(pid) for pid in workers}
            result = loadgen.run_load(
                s.port, payload.body, payload.content_type, concurrency, seconds
            )
            used: defaultdict[str, float] = defaultdict(float)
            for pid in workers:
                for tid, (comm, cpu) in thread_cpu(pid).items():
                    used[group(names.get(tid), comm)] += cpu - before[pid].get(tid, (comm, 0.0))[1]
            requests = result.completed
            print(
                f"{payload.name}, c={concurrency}: {result.requests_per_s:.0f} requests/s, "
                f"p50 {result.percentile_ms(50):.1f} ms, {len(workers)} worker(s)"
            )
            for name, cpu in sorted(used.items(), key=lambda item: -item[1]):
                if cpu > 0:
                    print(f"  {name:32} {cpu / requests * 1000:6.2f} ms CPU per request")
            print(f"  {'all threads':32} {sum(used.values()) / requests * 1000:6.2f} ms")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cpu_profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args(argv)
    profile(args.job_dir, args.concurrency, args.seconds)


if __name__ == "__main__":
    main()
