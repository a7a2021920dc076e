"""The lite serving image (Dockerfile RUNTIME=lite): its size, built first if missing.

The image is built with podman as `make image-podman RUNTIME=lite` builds it
(scripts/podman.sh: a Debian bookworm base from debootstrap, no registry needed); on a
machine without podman the figure is left out and RESULTS.md says how to get it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.common import ROOT, Store

IMAGE = "smvision:cpu-lite"
BUILD_TIMEOUT_S = 3600
_PODMAN = ["bash", "-c", 'eval "$(scripts/podman.sh env)" && exec podman "$@"', "podman"]


def size_bytes() -> int | None:
    """The image's size as podman reports it, or None when it is not there."""
    inspect = subprocess.run(
        [*_PODMAN, "image", "inspect", "--format", "{{.Size}}", IMAGE],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return int(inspect.stdout.strip()) if inspect.returncode == 0 else None


def measure(store: Store, work: Path) -> None:
    """Build the image if it is missing (log in `work`), then store its size in MB."""
    if subprocess.run(["scripts/podman.sh", "check"], cwd=ROOT, capture_output=True).returncode:
        print("podman is not usable here (scripts/podman.sh check): no lite image size", flush=True)
        return
    if size_bytes() is None:
        log = work / "lite-image-build.log"
        with log.open("wb") as out:
            built = subprocess.run(
                ["make", "image-podman", "RUNTIME=lite"],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT_S,
            )
        if built.returncode != 0:
            raise RuntimeError(f"building {IMAGE} failed; see {log}")
    size = size_bytes()
    if size is None:
        raise RuntimeError(f"{IMAGE} was built but podman does not find it")
    store.add("lite image/size", "MB", size / 1e6)
