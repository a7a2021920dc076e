"""File kinds the launchers send to the image: images by suffix, and JSON Lines."""

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
JSON_LINES_SUFFIXES = (".jsonl", ".jsonlines")
# Batch transform sends every image of a job with one content type; the server reads
# any supported format under this one.
ANY_IMAGE = "application/x-image"
JSON_LINES = "application/jsonlines"
JSON = "application/json"


def suffix_of(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > name.rfind("/") else ""


def image_content_type(name: str) -> str | None:
    return IMAGE_CONTENT_TYPES.get(suffix_of(name))


def is_json_lines(name: str) -> bool:
    return suffix_of(name) in JSON_LINES_SUFFIXES
