"""How much memory decoded images may take, and where they go beyond it.

A job decodes every image once before training. When the decoded images fit the budget
(`data_memory_mb`; auto: half the memory available when the job starts, container limit
included) they stay in memory. Beyond it they go to a cache file on the training volume,
read through a memory map, so the operating system keeps what fits in its page cache
(`decoded_cache`, the default); without the cache, or without the disk space for it, they
are decoded again whenever they are read. Either way the job never holds more than a
batch or a chunk of decoded images at once, instead of being killed for memory.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from smvision.data.dataset import DataError, Storage

log = logging.getLogger(__name__)

MB = 1 << 20
# Room left on the training volume beside a cache file (checkpoints, the model, logs).
DISK_HEADROOM = 1.1
_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def megabytes(count: int) -> str:
    """Bytes as a person reads them: 0.1 MB, 12 MB, 3,500 MB."""
    return f"{count / MB:,.1f} MB" if count < 10 * MB else f"{count / MB:,.0f} MB"


def available_bytes() -> int:
    """Memory this process may still take: the kernel's MemAvailable, bounded by the
    container's own limit (cgroup v2 or v1) when it has one."""
    free = _meminfo_available()
    limited = _cgroup_headroom()
    candidates = [v for v in (free, limited) if v is not None]
    if candidates:
        return min(candidates)
    try:  # macOS and other systems without /proc: physical memory
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    for limit_file, usage_file in (
        (_CGROUP_V2 / "memory.max", _CGROUP_V2 / "memory.current"),
        (_CGROUP_V1 / "memory.limit_in_bytes", _CGROUP_V1 / "memory.usage_in_bytes"),
    ):
        try:
            limit = limit_file.read_text().strip()
            usage = int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:  # no limit
            return None
        return max(0, int(limit) - usage)
    return None


def budget_bytes(setting: object) -> int:
    """`data_memory_mb` in bytes; auto: half of what is available now."""
    if setting == "auto":
        return available_bytes() // 2
    if not isinstance(setting, (int, float)) or isinstance(setting, bool):
        raise TypeError(f"data_memory_mb is {setting!r}, not a number or auto")
    return int(setting * MB)


def plan_storage(decoded_bytes: int, budget: int, cache: bool, scratch_dir: Path) -> Storage:
    """Where a job's decoded images go: memory when they fit the budget, else the cache
    file when allowed and the volume has room, else nowhere (decoded as read)."""
    if decoded_bytes <= budget:
        return Storage("memory")
    over = (
        f"The decoded images take {megabytes(decoded_bytes)}, over the memory budget of "
        f"{megabytes(budget)} (data_memory_mb)"
    )
    if cache:
        free = _free_disk_bytes(scratch_dir)
        if free >= decoded_bytes * DISK_HEADROOM:
            log.info("%s: they stream from a cache file in %s.", over, scratch_dir)
            return Storage("cache", scratch_dir / "decoded")
        log.warning(
            "%s, and the training volume has %s free, too little for the decoded-image "
            "cache: images are decoded again each time they are read (slower); give the job "
            "a larger volume for the cache.",
            over,
            megabytes(free),
        )
    else:
        log.info("%s: they are decoded again each time they are read (decoded_cache=false).", over)
    return Storage("stream")


def _free_disk_bytes(directory: Path) -> int:
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def require_fits(what: str, needed: int, budget: int, fix: str) -> None:
    """Fail with a sentence, before allocating, when something must sit in memory whole."""
    if needed > budget:
        raise DataError(
            f"{what} take {megabytes(needed)}, over the memory budget of "
            f"{megabytes(budget)} (data_memory_mb; auto is half the memory available), so "
            f"the job would run out of memory. {fix}"
        )
