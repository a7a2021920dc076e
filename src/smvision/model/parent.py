"""Incremental training: a `model` channel holding an earlier model to continue from.

The channel holds the model.tar.gz an earlier job wrote (SageMaker copies the S3 object
into input/data/model/), or that archive's contents (metadata.json and the model files).
`find_parent` unpacks it into the job's scratch directory and reads its metadata.json;
`check_parent` refuses a model that cannot continue into this job with a sentence that
names both sides. What continuing means is each algorithm's (cnn and resnet50 start from
its weights, rf adds trees, svm refits); metadata.json records the parent (`lineage`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from smvision.core.artifacts import read_metadata
from smvision.core.contract import METADATA_FILE


class ParentModelError(ValueError):
    """A model channel the job cannot continue from, with both sides and the fix."""


@dataclass(frozen=True)
class ParentModel:
    """An earlier model: its directory (metadata.json and model files) and what it says.

    `keeps_head`: the job's classes are the parent's, so its output layer carries over;
    False when `reinitialize_top_layer` gives the model a new one."""

    directory: Path
    metadata: dict[str, Any]
    digest: str
    keeps_head: bool = True

    @property
    def algorithm(self) -> str:
        return str(self.metadata.get("algorithm"))

    @property
    def class_names(self) -> list[str]:
        return [str(name) for name in self.metadata.get("class_names", [])]

    @property
    def multi_label(self) -> bool:
        return self.metadata.get("multi_label") is True

    def hyperparameter(self, name: str) -> str | None:
        value = self.metadata.get("hyperparameters", {}).get(name)
        return None if value is None else str(value)

    def lineage(self) -> dict[str, Any]:
        """What metadata.json records of the parent: enough to find and compare it."""
        return {
            "sha256": self.digest,
            "algorithm": self.algorithm,
            "class_names": self.class_names,
            "train_images": self.metadata.get("train_images"),
            "metrics": self.metadata.get("metrics", {}),
            "head": "kept" if self.keeps_head else "replaced",
            "parent": self.metadata.get("parent"),
        }


def find_parent(channel: Path, scratch: Path) -> ParentModel | None:
    """The model in the job's `model` channel directory, unpacked into `scratch` when it is
    an archive; None without the channel."""
    if not channel.is_dir():
        return None
    archives = sorted(channel.rglob("*.tar.gz"))
    if archives:
        directory = scratch / "parent-model"
        digest = _unpack(archives[0], directory)
    else:
        directory = _metadata_directory(channel)
        digest = _digest(sorted(p for p in directory.rglob("*") if p.is_file()))
    model_dir = _metadata_directory(directory)
    try:
        metadata = read_metadata(model_dir)
    except (ValueError, FileNotFoundError) as error:
        raise ParentModelError(f"The model channel's {error}") from None
    return ParentModel(model_dir, metadata, digest)


def _unpack(archive: Path, directory: Path) -> str:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(directory, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ParentModelError(
            f"The model channel's {archive.name} is not a readable .tar.gz ({error}); give it "
            "the model.tar.gz a training job wrote."
        ) from None
    return _digest([archive])


def _metadata_directory(root: Path) -> Path:
    found = sorted(root.rglob(METADATA_FILE), key=lambda p: len(p.parts))
    if not found:
        raise ParentModelError(
            f"The model channel ({root}) holds no {METADATA_FILE}; give it the model.tar.gz "
            "an earlier smvision training job wrote (or that archive's files)."
        )
    return found[0].parent


def _digest(files: Sequence[Path]) -> str:
    """sha256 of the files' contents, in order: the archive, or the unpacked model."""
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def check_parent(
    parent: ParentModel,
    algorithm: str,
    image_size: int,
    channels: int,
    class_names: Sequence[str],
    multi_label: bool,
    new_head_allowed: bool,
) -> ParentModel:
    """The parent as this job continues it; a mismatch is a sentence naming both sides.

    `new_head_allowed`: reinitialize_top_layer is set and the algorithm can replace its
    output layer, so other classes (or a change of multi_label) get a new head."""
    if parent.algorithm != algorithm:
        raise ParentModelError(
            f"The model channel holds a {parent.algorithm} model and this job trains "
            f"{algorithm}; continue a model with its own algorithm, or drop the model channel."
        )
    theirs_size = parent.metadata.get("image_size")
    if theirs_size != image_size:
        raise ParentModelError(
            f"The model channel's model takes {theirs_size}x{theirs_size} images and this job's "
            f"image_size is {image_size}; set image_size={theirs_size} to continue it."
        )
    theirs_channels = parent.metadata.get("channels")
    if theirs_channels != channels:
        raise ParentModelError(
            f"The model channel's model takes images of {theirs_channels} channel(s) and this "
            f"job's have {channels}; set grayscale={'true' if theirs_channels == 1 else 'false'} "
            "to continue it."
        )
    same_head = list(class_names) == parent.class_names and multi_label == parent.multi_label
    if same_head:
        return parent
    if not new_head_allowed:
        raise ParentModelError(_head_mismatch(parent, class_names, multi_label))
    return replace(parent, keeps_head=False)


def _head_mismatch(parent: ParentModel, class_names: Sequence[str], multi_label: bool) -> str:
    if list(class_names) != parent.class_names:
        difference = (
            f"The model channel's model knows the classes {json.dumps(parent.class_names)} and "
            f"this job's train channel has {json.dumps(list(class_names))}"
        )
    else:
        kinds = {True: "multi-label", False: "single-label"}
        difference = (
            f"The model channel's model is {kinds[parent.multi_label]} and this job is "
            f"{kinds[multi_label]} (multi_label)"
        )
    return (
        f"{difference}; give the job the model's classes, or set reinitialize_top_layer=true "
        "to give a cnn or resnet50 model a new output layer (rf and svm models cannot change "
        "their classes)."
    )
