"""Where the weights of features=deep live, and the check `serve` makes before it starts.

A model trained with features=deep needs the very weights its features were computed
with. metadata.json records them (file name and sha256). Weights that came from the
'pretrained' channel, or random ones (weights=none), travel inside the model directory;
Keras' ImageNet file does not (it is 94 MB and the image can bake it in): `serve` finds
it in the image's Keras cache ($KERAS_HOME/models). No TensorFlow here: `serve` checks
before it starts any worker.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

NETWORK = "resnet50"
DEEP_WIDTH = 2048  # channels of ResNet50's last block, pooled


class BackboneMissingError(ValueError):
    """The backbone weights a features=deep model needs are absent or not the same file."""


@dataclass(frozen=True)
class BackboneRecord:
    """Which weights a model's deep features came from, as metadata.json records them."""

    network: str
    # imagenet, pretrained channel, or random (weights=none)
    weights: str
    file: str
    sha256: str
    # True: the file is in the model directory; False: in the image's Keras cache.
    in_model_dir: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneRecord:
        return cls(**data)


def keras_models_dir() -> Path:
    """Keras' download cache, where the image bakes the ImageNet weights (KERAS_HOME)."""
    home = os.environ.get("KERAS_HOME") or str(Path.home() / ".keras")
    return Path(home) / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def locate(model_dir: Path, record: BackboneRecord) -> Path:
    """The backbone's weights file, checked against the recorded sha256."""
    file, sha = record.file, record.sha256[:12]
    if record.in_model_dir:
        path = model_dir / file
        if not path.is_file():
            raise BackboneMissingError(
                f"This model's features=deep backbone weights {file} are missing from "
                f"{model_dir} (sha256 {sha}; metadata.json names them); give the endpoint the "
                "whole model directory (model.tar.gz) that training wrote."
            )
    else:
        path = keras_models_dir() / file
        if not path.is_file():
            raise BackboneMissingError(
                f"This model computes features=deep with ResNet50's ImageNet weights {file} "
                f"(sha256 {sha}), which this image does not hold at {path}; serve it with an "
                "image built with --build-arg RESNET50_WEIGHTS=imagenet (or point KERAS_HOME "
                "at a folder whose models/ holds the file), or retrain it with a 'pretrained' "
                "channel so that the weights travel inside the model."
            )
    actual = sha256_of(path)[:12]
    if actual != sha:
        raise BackboneMissingError(
            f"{path} has sha256 {actual}, but this model's features were computed with sha256 "
            f"{sha}; other weights give other features and wrong answers. Serve the model "
            "with the weights it was trained with."
        )
    return path


def check_model_dir(model_dir: Path, metadata: dict[str, Any]) -> None:
    """Raise BackboneMissingError unless a features=deep model's weights are at hand."""
    record = metadata.get("preprocessing", {}).get("backbone")
    if record:
        locate(model_dir, BackboneRecord.from_dict(record))
