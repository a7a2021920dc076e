"""MXNet's RecordIO, as im2rec writes `.rec` files and SageMaker's Pipe mode wraps records.

Framing (dmlc-core's recordio): each record is the magic word 0xced7230a, a word whose
upper 3 bits are a continuation flag and lower 29 bits a length, the payload, and zero
padding to a multiple of 4 bytes (all little-endian). A payload that holds the magic at
a 4-byte boundary is cut there and written as parts (flag 1 starts, 2 continues, 3 ends;
0 is a whole record); the reader puts the magic back between the parts.

Image records (im2rec): the payload is an IRHeader (flag uint32, label float32, id
uint64, id2 uint64), then, when flag > 0, that many float32 labels (the header's own
label is then unused), then the image file's bytes.

Standard library only: the samples writer and the launchers use it too. No MXNet.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_FRAME = struct.Struct("<II")
_IR_HEADER = struct.Struct("<IfQQ")
_LENGTH_BITS = 29
MAX_PART = (1 << _LENGTH_BITS) - 1
WHOLE, FIRST, MIDDLE, LAST = 0, 1, 2, 3


class RecordIOError(ValueError):
    """Bytes that are not RecordIO framing, with where they went wrong."""


def _padding(length: int) -> int:
    return -length % 4


# Framing --------------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """One record's bytes on disk or in a pipe: header(s), payload part(s), padding."""
    parts = _split_at_magic(payload)
    out = bytearray()
    for index, part in enumerate(parts):
        if len(part) > MAX_PART:
            raise RecordIOError(
                f"a record part of {len(part)} bytes is over RecordIO's limit of {MAX_PART}."
            )
        if len(parts) == 1:
            flag = WHOLE
        elif index == 0:
            flag = FIRST
        elif index == len(parts) - 1:
            flag = LAST
        else:
            flag = MIDDLE
        out += _FRAME.pack(MAGIC, (flag << _LENGTH_BITS) | len(part)) + part
    out += b"\0" * _padding(len(parts[-1]))
    return bytes(out)


def _split_at_magic(payload: bytes) -> list[bytes]:
    """The payload cut at every magic word that starts on a 4-byte boundary (dropped)."""
    parts = []
    start = 0
    position = payload.find(_MAGIC_BYTES)
    while position != -1:
        if position % 4 == 0:
            parts.append(payload[start:position])
            start = position + 4
            position = payload.find(_MAGIC_BYTES, start)
        else:
            position = payload.find(_MAGIC_BYTES, position + 1)
    parts.append(payload[start:])
    return parts


def write_record(stream: BinaryIO, payload: bytes) -> int:
    """Append one framed record; returns the bytes written."""
    framed = frame(payload)
    stream.write(framed)
    return len(framed)


def read_record(stream: BinaryIO, where: str = "stream") -> bytes | None:
    """The next record's payload; None at a clean end of stream (between records)."""
    header = _read_up_to(stream, _FRAME.size)
    if not header:
        return None
    payload = bytearray()
    while True:
        flag, length = _parse_frame(header, where, first=not payload)
        payload += _read_exactly(stream, length + _padding(length), where)[:length]
        if flag in (WHOLE, LAST):
            return bytes(payload)
        payload += _MAGIC_BYTES
        header = _read_exactly(stream, _FRAME.size, where)


def _parse_frame(header: bytes, where: str, first: bool) -> tuple[int, int]:
    """(continuation flag, length) of a part's header, checked."""
    if len(header) < _FRAME.size:
        raise RecordIOError(f"{where}: the stream ends inside a record header; it is truncated.")
    magic, word = _FRAME.unpack(header)
    if magic != MAGIC:
        raise RecordIOError(
            f"{where}: expected the RecordIO magic 0x{MAGIC:08x}, found 0x{magic:08x}; "
            "this is not RecordIO, or it is corrupt from here on."
        )
    flag, length = word >> _LENGTH_BITS, word & MAX_PART
    expected = (WHOLE, FIRST) if first else (MIDDLE, LAST)
    if flag not in expected:
        raise RecordIOError(f"{where}: a record part has continuation flag {flag} out of order.")
    return flag, length


def _read_up_to(stream: BinaryIO, count: int) -> bytes:
    """Up to `count` bytes: fewer only where the stream ends (a pipe returns what it has)."""
    chunks = []
    remaining = count
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_exactly(stream: BinaryIO, count: int, where: str) -> bytes:
    data = _read_up_to(stream, count)
    if len(data) != count:
        raise RecordIOError(
            f"{where}: the stream ends inside a record ({len(data)} of {count} bytes); it "
            "is truncated."
        )
    return data


def read_records(stream: BinaryIO, where: str = "stream") -> Iterator[bytes]:
    """Every record's payload, in order."""
    while (payload := read_record(stream, where)) is not None:
        yield payload


def record_offsets(path: Path) -> list[int]:
    """Where each record of a file starts, from its headers alone (payloads are skipped)."""
    offsets = []
    size = path.stat().st_size
    position = 0
    first = True
    with path.open("rb") as stream:
        while position < size:
            stream.seek(position)
            where = f"{path} at byte {position}"
            flag, length = _parse_frame(stream.read(_FRAME.size), where, first)
            if first:
                offsets.append(position)
            first = flag in (WHOLE, LAST)
            position += _FRAME.size + length + _padding(length)
    if position > size or not first:
        raise RecordIOError(
            f"{path}: the last record runs past the end of the file; it is truncated."
        )
    return offsets


def read_record_at(path: Path, offset: int) -> bytes:
    """The payload of the record that starts at `offset` of a file."""
    with path.open("rb") as stream:
        stream.seek(offset)
        payload = read_record(stream, f"{path} at byte {offset}")
    if payload is None:
        raise RecordIOError(f"{path} has no record at byte {offset}.")
    return payload


# Image records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRecord:
    """One im2rec record: its labels (one, or the packed label array), ids and image bytes."""

    labels: tuple[float, ...]
    image: bytes
    id: int = 0
    id2: int = 0


def pack_image(record: ImageRecord) -> bytes:
    """An IRHeader (and packed labels when there are several) before the image bytes."""
    if len(record.labels) == 1:
        header = _IR_HEADER.pack(0, record.labels[0], record.id, record.id2)
        return header + record.image
    packed = struct.pack(f"<{len(record.labels)}f", *record.labels)
    return _IR_HEADER.pack(len(record.labels), 0.0, record.id, record.id2) + packed + record.image


def unpack_image(payload: bytes, where: str = "record") -> ImageRecord:
    """The labels, ids and image bytes of one im2rec record."""
    if len(payload) < _IR_HEADER.size:
        raise RecordIOError(
            f"{where} has {len(payload)} bytes, fewer than im2rec's {_IR_HEADER.size}-byte "
            "header (flag, label, id, id2)."
        )
    flag, label, record_id, id2 = _IR_HEADER.unpack_from(payload)
    start = _IR_HEADER.size
    if flag == 0:
        return ImageRecord((float(label),), payload[start:], record_id, id2)
    end = start + 4 * flag
    if end > len(payload):
        raise RecordIOError(
            f"{where}: its header packs {flag} labels ({4 * flag} bytes) but only "
            f"{len(payload) - start} bytes follow the header."
        )
    labels = struct.unpack_from(f"<{flag}f", payload, start)
    return ImageRecord(tuple(float(v) for v in labels), payload[end:], record_id, id2)


def read_image_header(stream: BinaryIO, where: str = "record") -> ImageRecord:
    """The labels and ids of the im2rec record that starts at the stream's position, read
    without its image (returned empty): listing a large `.rec` file reads its headers only."""
    start = stream.tell()
    flag, length = _parse_frame(_read_exactly(stream, _FRAME.size, where), where, first=True)
    head = _read_up_to(stream, min(length, _IR_HEADER.size))
    if len(head) == _IR_HEADER.size:
        label_count = _IR_HEADER.unpack(head)[0]
        needed = _IR_HEADER.size + 4 * label_count
        if needed <= length:
            record = unpack_image(head + _read_exactly(stream, needed - len(head), where), where)
            return ImageRecord(record.labels, b"", record.id, record.id2)
    # The header is split across parts (a magic word inside it) or short: read it all.
    stream.seek(start)
    payload = read_record(stream, where)
    if payload is None:
        raise RecordIOError(f"{where}: no record here.")
    record = unpack_image(payload, where)
    return ImageRecord(record.labels, b"", record.id, record.id2)


class ImageRecordWriter:
    """Writes a `.rec` file (and its `.idx` index, id<TAB>offset) as im2rec does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream = path.open("wb")
        self._index = path.with_suffix(".idx").open("w")
        self._position = 0

    def write(self, record: ImageRecord) -> None:
        self._index.write(f"{record.id}\t{self._position}\n")
        self._position += write_record(self._stream, pack_image(record))

    def close(self) -> None:
        self._stream.close()
        self._index.close()

    def __enter__(self) -> ImageRecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_image_records(path: Path, records: Sequence[ImageRecord]) -> None:
    """A whole `.rec` file (and `.idx`) from records."""
    with ImageRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
