"""SageMaker's Pipe input mode: a channel streamed through a FIFO, read once into a spool.

In Pipe mode SageMaker does not copy a channel into /opt/ml/input/data/<channel>/; it
streams it through the FIFO /opt/ml/input/data/<channel>_<epoch> (epoch 0 first; the
next FIFO appears once one has been read to its end). What comes through depends on the
channel:

- an augmented manifest (S3DataType AugmentedManifestFile, RecordWrapperType RecordIO):
  for each line of the manifest, one RecordIO record per attribute named in
  AttributeNames, in that order: the bytes of the S3 object a `-ref` attribute points
  to (the image), then the JSON text of every other attribute's value (the label, and
  the label's `-metadata` object when it is named too);
- RecordIO files (`.rec`, RecordWrapperType None): the files' bytes one after another,
  which is a stream of im2rec records (IRHeader, labels, image).

The job reads epoch 0 once, writes every image into a local `.rec` spool in im2rec's
layout and keeps the labels beside it, so that training reads records at known offsets
as it reads a `.rec` channel, for as many epochs as it likes. `feed` writes the same
framing into a FIFO: `smvision.local train` uses it to run Pipe mode on a laptop.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from smvision.data import recordio
from smvision.data.formats import LayoutError, text_lines
from smvision.data.recordio import ImageRecord, RecordIOError

# A label or metadata record is JSON text, far shorter than this; an image is never JSON.
_MAX_ATTRIBUTE_BYTES = 1 << 20
# The longest a Pipe channel's FIFO may stay silent, before its first byte or between two:
# SageMaker streams from S3 as soon as the job starts, far faster than this.
IDLE_TIMEOUT_S = 600.0


class PipeError(ValueError):
    """A Pipe-mode stream the job cannot read, with the channel, the record and the fix."""


@dataclass(frozen=True)
class SpooledRecord:
    """One image of a Pipe channel, spooled: where its record is, and what labelled it."""

    index: int
    offset: int
    # The manifest attributes that followed the image (parsed JSON), for a manifest.
    attributes: tuple[Any, ...] = ()
    # The labels of the im2rec header, for a stream of RecordIO files.
    header_labels: tuple[float, ...] = ()
    # Why the record cannot be used (counted against max_corrupt_fraction).
    error: str | None = None


class _FifoReader(io.RawIOBase):
    """A FIFO read with a deadline: each read waits at most `idle_s` for data.

    Opened without blocking, so that no writer (yet) cannot hold the open; on Linux a FIFO
    that no writer has opened since reports neither data nor a hang-up, so poll's timeout
    covers a writer that never comes as well as one that stops."""

    def __init__(self, path: Path, channel: str, idle_s: float) -> None:
        super().__init__()
        self.path, self.channel, self.idle_s = path, channel, idle_s
        self.received = 0
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if not self.poller.poll(self.idle_s * 1000):
                raise PipeError(
                    f"Pipe-mode channel '{self.channel}': nothing came through {self.path} for "
                    f"{self.idle_s:g} s ({self.received} bytes before that); SageMaker "
                    "streams a Pipe channel from the start of the job, so its data is "
                    "unreachable or empty: check the channel's S3 URI, or use File mode."
                )
            try:
                count = os.readv(self.fd, [buffer])
            except BlockingIOError:  # woken without data; wait again
                continue
            self.received += count
            return count

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


def open_fifo(path: Path, channel: str, idle_s: float = IDLE_TIMEOUT_S) -> BinaryIO:
    """A Pipe channel's FIFO for reading, each read waiting at most `idle_s` for data (a
    PipeError then, with the channel and the fix)."""
    return io.BufferedReader(_FifoReader(path, channel, idle_s), buffer_size=1 << 20)


def spool(stream: BinaryIO, spool_path: Path, wrapped: bool, channel: str) -> list[SpooledRecord]:
    """Read a Pipe channel's stream to its end into `spool_path` (a `.rec` file).

    `wrapped`: RecordWrapperType RecordIO, an augmented manifest's attributes as records;
    else a stream of im2rec records (RecordIO files).
    """
    spool_path.parent.mkdir(parents=True, exist_ok=True)
    where = f"Pipe-mode channel '{channel}'"
    records = recordio.read_records(stream, where)
    with spool_path.open("wb") as out:
        writer = _SpoolWriter(out)
        if wrapped:
            return [
                writer.manifest_record(i, group)
                for i, group in enumerate(_groups(records, channel))
            ]
        return [writer.image_record(i, payload, where) for i, payload in enumerate(records)]


class _SpoolWriter:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.position = 0

    def _write(self, payload: bytes) -> int:
        offset = self.position
        self.position += recordio.write_record(self.stream, payload)
        return offset

    def manifest_record(self, index: int, group: tuple[bytes, list[Any]]) -> SpooledRecord:
        image, attributes = group
        offset = self._write(recordio.pack_image(ImageRecord((0.0,), image, id=index)))
        error = None if attributes else "no label record follows the image"
        return SpooledRecord(index, offset, attributes=tuple(attributes), error=error)

    def image_record(self, index: int, payload: bytes, where: str) -> SpooledRecord:
        offset = self._write(payload)
        try:
            labels = recordio.unpack_image(payload, f"{where}, record {index}").labels
        except RecordIOError as error:
            return SpooledRecord(index, offset, error=str(error))
        return SpooledRecord(index, offset, header_labels=labels)


def _groups(records: Iterable[bytes], channel: str) -> Iterator[tuple[bytes, list[Any]]]:
    """(image bytes, the attribute values after it) for each manifest line."""
    image: bytes | None = None
    attributes: list[Any] = []
    for number, payload in enumerate(records):
        value = _attribute(payload)
        if value is _NOT_JSON:
            if image is not None:
                yield image, attributes
            image, attributes = payload, []
        elif image is None:
            raise PipeError(
                f"Pipe-mode channel '{channel}': record {number} is JSON ({payload[:60]!r}) "
                "where an image should come first; list the image attribute first in "
                "AttributeNames, such as --attribute-names source-ref,LABEL."
            )
        else:
            attributes.append(value)
    if image is not None:
        yield image, attributes


_NOT_JSON = object()


def _attribute(payload: bytes) -> Any:
    """A record's JSON value, or _NOT_JSON for image bytes."""
    if len(payload) > _MAX_ATTRIBUTE_BYTES:
        return _NOT_JSON
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _NOT_JSON


# Writing a Pipe channel (local runs and tests) ---------------------------------------------


def manifest_records(manifest: Path, attribute_names: Sequence[str]) -> Iterator[bytes]:
    """What SageMaker streams for an augmented manifest, each attribute a record; `-ref`
    attributes name files on this machine (absolute, or relative to the manifest)."""
    for number, entry in enumerate(read_manifest(manifest, attribute_names), start=1):
        for name in attribute_names:
            value = entry[name]
            if name.endswith("-ref"):
                yield resolve_ref(manifest, str(value), number).read_bytes()
            else:
                yield json.dumps(value).encode()


def read_manifest(manifest: Path, attribute_names: Sequence[str]) -> list[dict[str, Any]]:
    """The lines of a JSON Lines manifest, each checked for the attributes named."""
    entries = []
    try:
        lines = text_lines(manifest)
    except LayoutError as error:
        raise PipeError(str(error)) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as error:
            raise PipeError(f"{manifest}, line {number} is not JSON ({error}).") from None
        except RecursionError:
            raise PipeError(
                f"{manifest}, line {number} is not JSON this reader takes: it nests deeper than "
                f"{sys.getrecursionlimit()} levels."
            ) from None
        if not isinstance(entry, dict):
            raise PipeError(f"{manifest}, line {number} is not a JSON object.")
        missing = [name for name in attribute_names if name not in entry]
        if missing:
            raise PipeError(
                f"{manifest}, line {number} lacks attribute {missing[0]!r} (it has "
                f"{', '.join(sorted(entry))}); every line needs each of the attribute names "
                f"{', '.join(attribute_names)}."
            )
        entries.append(entry)
    return entries


def resolve_ref(manifest: Path, ref: str, line: int) -> Path:
    """A `-ref` value as a file on this machine."""
    if "://" in ref and not ref.startswith("file://"):
        raise PipeError(
            f"{manifest}, line {line}: {ref} is not on this machine; a local run reads "
            "`-ref` attributes as file paths (absolute, or relative to the manifest)."
        )
    path = Path(ref.removeprefix("file://"))
    path = path if path.is_absolute() else manifest.parent / path
    if not path.is_file():
        raise PipeError(f"{manifest}, line {line}: {ref} is not a file ({path}).")
    return path


def feed(fifo: Path, records: Iterable[bytes]) -> None:
    """Write records into a FIFO in RecordIO framing (blocks until a reader opens it)."""
    with open(fifo, "wb") as stream:
        for payload in records:
            recordio.write_record(stream, payload)


class PipeFeeder:
    """Feeds a channel's FIFOs as SageMaker does: epoch 0's, then, once read, epoch 1's...

    `fifo(epoch)` is the FIFO's path (the contract's `pipe_path`). Runs in a daemon
    thread: a reader that stops early, or never opens a FIFO, leaves it blocked, which
    ends with the process.
    """

    def __init__(self, fifo: Callable[[int], Path], records: Callable[[], Iterable[bytes]]) -> None:
        self.fifo = fifo
        self.records = records
        self._make(0)
        self._thread = threading.Thread(target=self._run, name=f"pipe-{fifo(0).name}", daemon=True)

    def _make(self, epoch: int) -> None:
        path = self.fifo(epoch)
        path.unlink(missing_ok=True)
        os.mkfifo(path)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        epoch = 0
        while True:
            # BrokenPipeError: the reader closed the FIFO before its end.
            with contextlib.suppress(BrokenPipeError):
                feed(self.fifo(epoch), self.records())
            self.fifo(epoch).unlink(missing_ok=True)
            epoch += 1
            self._make(epoch)
