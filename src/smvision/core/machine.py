"""What this machine offers the processes of a job or an endpoint."""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity on Linux, else every core.

    A container limited with --cpuset-cpus sees all the host's cores in os.cpu_count()
    but only its own in the affinity mask; macOS (local mode) has no affinity call.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
