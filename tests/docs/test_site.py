"""The documentation site builds: `mkdocs build --strict` fails on a broken link or anchor,
a page left out of the nav, a missing include, so CI (make test) fails with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    for page in ("index.html", "guides/aws/index.html", "reference/cli-help/index.html"):
        assert (site / page).is_file(), page
    endpoints = (site / "guides" / "endpoints" / "index.html").read_text()
    assert "invoke_endpoint" in endpoints  # the README's snippet, included
    assert "random forest" in (site / "index.html").read_text()  # its algorithm table
    for picture in (ROOT / "docs" / "images").glob("*.png"):
        assert (site / "images" / picture.name).is_file()
    assert (site / "bench" / "RESULTS" / "index.html").is_file()
