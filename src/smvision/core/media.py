"""The media types `serve` reads and writes, and image files by suffix (standard library only).

`serve` decodes every type in CONTENT_TYPES and answers in every type in ACCEPT_TYPES; the
launchers send files by these suffixes and register a model package with these lists.
Both read them here.
"""

from __future__ import annotations

IMAGE_CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
}
# Batch transform sends every image of a job with one content type; `serve` reads any
# supported format under this one.
ANY_IMAGE = "application/x-image"
IMAGE_TYPES = ("image/jpeg", "image/png", ANY_IMAGE, "image/bmp", "image/tiff", "image/webp")
NPY = "application/x-npy"
JSON = "application/json"
JSON_LINES = "application/jsonlines"
CSV = "text/csv"
CONTENT_TYPES = IMAGE_TYPES + (NPY, JSON, JSON_LINES)
ACCEPT_TYPES = (JSON, JSON_LINES, CSV)
JSON_LINES_SUFFIXES = (".jsonl", ".jsonlines")


def media_type(header: str | None) -> str:
    """'Application/JSON; charset=utf-8' -> 'application/json'."""
    return (header or "").split(";", 1)[0].strip().lower()


def suffix_of(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > name.rfind("/") else ""


def image_content_type(name: str) -> str | None:
    return IMAGE_CONTENT_TYPES.get(suffix_of(name))


def is_json_lines(name: str) -> bool:
    return suffix_of(name) in JSON_LINES_SUFFIXES
