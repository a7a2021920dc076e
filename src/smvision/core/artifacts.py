"""Writing results so a failure never leaves half a model behind."""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from smvision.core.contract import METADATA_FILE

_VERSIONED = (
    "numpy",
    "opencv-python-headless",
    "scikit-learn",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
)


class ModelFileError(ValueError):
    """A model file that cannot be served: not a regular file, empty, unreadable, or holding
    another algorithm's model than metadata.json names."""


def write_json(path: Path, data: Any) -> None:
    """Write JSON next to its destination, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        json.dump(data, stream, indent=2)
        stream.write("\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def write_message(path: Path, message: str) -> None:
    """A status sentence SageMaker shows: a training job's output/failure, a processing
    job's output/message (its ExitMessage)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message.strip() + "\n")


@contextmanager
def staged_directory(final_dir: Path) -> Iterator[Path]:
    """A scratch directory beside `final_dir` whose entries move into it only on success."""
    final_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=f".{final_dir.name}-staging-"))
    try:
        yield staging
        for entry in sorted(staging.iterdir()):
            target = final_dir / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(entry), str(target))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("smvision",) + _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """The metadata.json `train` wrote (FileNotFoundError if missing, else ValueError if bad)."""
    path = model_dir / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the model directory must hold what smvision's train wrote "
            "(metadata.json plus the model files)."
        )
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(
            f"{METADATA_FILE} holds a JSON {_json_type(data)}, not the object smvision's "
            "train writes"
        )
    return data


def _json_type(value: object) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
