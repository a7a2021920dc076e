"""Which images a Rekognition command reads: local files and folders, and S3 prefixes.

Local arguments are checked before any AWS call; S3 prefixes are listed (ListObjectsV2),
never downloaded here. A labelled set is a prefix of class folders, as the training
channels are (`test/cat/001.jpg`): the class is the first folder under the prefix and the
`source` is the key under the prefix, as evaluation.json names its images.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch.common.errors import LaunchError
from launch.common.parsing import S3Uri, s3_uri

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass(frozen=True)
class ImageRef:
    """One image: a local file, or an S3 object with its size from the listing."""

    name: str  # a path or s3://bucket/key, as the output names it
    path: Path | None = None
    bucket: str | None = None
    key: str | None = None
    size: int | None = None

    @property
    def in_s3(self) -> bool:
        return self.bucket is not None


@dataclass(frozen=True)
class Labelled:
    image: ImageRef
    label: str
    source: str  # the key under the set's prefix: "cat/001.jpg"


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def check_arguments(arguments: Sequence[str]) -> None:
    """Every local argument exists; every s3:// one is a well-formed URI (no AWS call)."""
    for argument in arguments:
        if argument.startswith("s3://"):
            s3_uri(argument, "IMAGES")
        elif not Path(argument).exists():
            raise LaunchError(
                f"'{argument}' is neither a file, a folder nor an s3:// URI; check the path."
            )


def gather(arguments: Sequence[str], s3: Any) -> list[ImageRef]:
    """Every image the arguments name, in the order given (folders and prefixes sorted)."""
    found: list[ImageRef] = []
    for argument in arguments:
        if argument.startswith("s3://"):
            images = [ref for ref, _ in _listed(s3, s3_uri(argument, "IMAGES"))]
        else:
            images = _local(Path(argument))
        if not images:
            raise LaunchError(
                f"'{argument}' holds no image ({', '.join(IMAGE_SUFFIXES)}); check the path."
            )
        found += images
    return found


def labelled_set(s3: Any, uri: S3Uri, option: str) -> list[Labelled]:
    """The images of a prefix of class folders, each with its class."""
    labelled = []
    loose = []
    for ref, relative in _listed(s3, uri):
        label, separator, _ = relative.partition("/")
        if not separator:
            loose.append(relative)
            continue
        labelled.append(Labelled(ref, label, relative))
    if loose:
        raise LaunchError(
            f"{option} {uri}: {len(loose)} image(s) lie directly under the prefix (such as "
            f"'{loose[0]}'), outside a class folder; put each in a folder named after its "
            "class (PREFIX/CLASS/IMAGE)."
        )
    if len({item.label for item in labelled}) < 2:
        raise LaunchError(
            f"{option} {uri}: found {len(labelled)} image(s) in "
            f"{len({item.label for item in labelled})} class folder(s); a classifier needs "
            "two classes or more (PREFIX/CLASS/IMAGE)."
        )
    return labelled


def _local(path: Path) -> list[ImageRef]:
    if path.is_file():
        return [ImageRef(str(path), path=path)]
    return [
        ImageRef(str(file), path=file)
        for file in sorted(path.rglob("*"))
        if file.is_file() and is_image(file.name)
    ]


def _listed(s3: Any, uri: S3Uri) -> Iterator[tuple[ImageRef, str]]:
    """Image objects under the prefix (or the one object the URI names), key order."""
    from launch.common.aws import reporting

    prefix = uri.key
    with reporting(f"Listing {uri}"):
        pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=prefix))
    objects = [item for page in pages for item in page.get("Contents", [])]
    if prefix and not prefix.endswith("/") and not any(o["Key"] == prefix for o in objects):
        prefix += "/"
    for item in objects:
        key = str(item["Key"])
        if key == prefix.rstrip("/"):  # the URI names one object
            yield _s3_ref(uri.bucket, key, item), key.rsplit("/", 1)[-1]
        elif key.startswith(prefix) and is_image(key):
            yield _s3_ref(uri.bucket, key, item), key[len(prefix) :]


def _s3_ref(bucket: str, key: str, item: dict[str, Any]) -> ImageRef:
    return ImageRef(f"s3://{bucket}/{key}", bucket=bucket, key=key, size=int(item["Size"]))
