"""A job directory's files packed as SageMaker packs them: model.tar.gz and output.tar.gz."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def tar_gz(folder: Path) -> bytes:
    """Every entry of folder at the archive's root, as SageMaker packs /opt/ml/model."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(folder.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def model_archive(job_dir: Path) -> bytes:
    return tar_gz(job_dir / "opt" / "ml" / "model")


def output_archive(job_dir: Path) -> bytes:
    """output.tar.gz: what the job left in /opt/ml/output/data."""
    return tar_gz(job_dir / "opt" / "ml" / "output" / "data")
