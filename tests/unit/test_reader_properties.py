"""Generated input for the readers of what users and SageMaker hand the image (issue 22):
.lst files, augmented manifests, RecordIO streams and files, and data-capture records.

Each reader either reads what it is given or refuses it with its own error, one that names
where (a file and line, a record, a byte): never another exception, which a job reports as
an internal error. Well-formed input, generated, reads back as it was written. The `ci`
profile (tests/conftest.py) bounds the examples per test.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from smvision.data import dataset, pipemode, recordio
from smvision.data.channels import label_values
from smvision.data.dataset import DataError
from smvision.data.pipemode import PipeError
from smvision.data.recordio import ImageRecord, RecordIOError
from smvision.monitor.capture import read_captured

DIGIT = cv2.imencode(".png", np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)[1].tobytes()


@contextmanager
def folder() -> Iterator[Path]:
    """A fresh directory per example (hypothesis runs many examples in one test)."""
    with tempfile.TemporaryDirectory(prefix="smvision-properties-") as name:
        yield Path(name)


# Any text a file may hold, binary included.
LINES = st.lists(
    st.one_of(
        st.text(string.printable, max_size=40),
        st.text(max_size=20),
        st.lists(
            st.one_of(
                st.sampled_from(["0", "1", "3.000000", "-1", "nan", "inf", "1e30", "a.png", ""]),
                st.text(max_size=8),
            ),
            min_size=1,
            max_size=5,
        ).map("\t".join),
    ),
    max_size=12,
)
BYTES = st.one_of(st.binary(max_size=300), LINES.map(lambda lines: "\n".join(lines).encode()))


# .lst --------------------------------------------------------------------------------------


@given(content=BYTES)
def test_any_lst_file_is_read_or_refused_by_file_and_line(content: bytes) -> None:
    with folder() as channel:
        (channel / "a.png").write_bytes(DIGIT)
        (channel / "train.lst").write_bytes(content)
        try:
            samples = dataset.list_channel(channel, "train")
        except DataError as error:
            assert str(channel / "train.lst") in str(error) or "Channel 'train'" in str(error)
            return
    for sample in samples:
        assert sample.values and all(
            math.isfinite(float(v)) and float(v) >= 0 and float(v).is_integer()
            for v in sample.values
        )


@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 9)),
        min_size=1,
        max_size=30,
        unique_by=lambda r: r[1],
    ),
    repeats=st.integers(1, 3),
)
def test_a_generated_lst_reads_back_each_image_once_with_its_label(
    rows: list[tuple[int, int]], repeats: int
) -> None:
    with folder() as channel:
        for _, image in rows:
            (channel / f"{image}.png").write_bytes(DIGIT)
        lines = [f"{i}\t{label}.000000\t{image}.png" for i, (label, image) in enumerate(rows)]
        (channel / "train.lst").write_text("\n".join(lines * repeats) + "\n")
        samples = dataset.list_channel(channel, "validation")  # may hold any classes
    assert [(s.label, s.source) for s in samples] == [(str(c), f"{i}.png") for c, i in rows]


# Augmented manifests -----------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    lines=st.lists(
        st.one_of(
            JSON.map(json.dumps),
            st.fixed_dictionaries({"source-ref": st.just("a.png"), "class": JSON}).map(json.dumps),
            st.text(max_size=30),
            st.just("[" * 5000),  # deeper than json's recursion limit
        ),
        max_size=6,
    )
)
def test_any_manifest_is_read_or_refused_by_line(lines: list[str]) -> None:
    with folder() as where:
        (where / "a.png").write_bytes(DIGIT)
        manifest = where / "train.manifest"
        manifest.write_text("\n".join(lines))
        try:
            entries = pipemode.read_manifest(manifest, ["source-ref", "class"])
        except PipeError as error:
            assert str(manifest) in str(error)
            return
        records = list(pipemode.manifest_records(manifest, ["source-ref", "class"]))
    assert len(records) == 2 * len(entries)
    for entry in entries:
        values, why = label_values(entry["class"])
        assert why is None or values == ()


@given(
    attributes=st.lists(
        st.one_of(JSON.map(json.dumps).map(str.encode), st.binary(max_size=64)), max_size=8
    )
)
def test_any_pipe_stream_spools_or_is_refused(attributes: list[bytes]) -> None:
    stream = io.BytesIO(b"".join(recordio.frame(a) for a in attributes))
    with folder() as where:
        try:
            spooled = pipemode.spool(stream, where / "train.rec", True, "train")
        except (PipeError, RecordIOError) as error:
            assert "Pipe-mode channel 'train'" in str(error)
            return
    for record in spooled:
        assert record.error is None or "label" in record.error


# RecordIO ----------------------------------------------------------------------------------

MAGIC = recordio.MAGIC.to_bytes(4, "little")
PAYLOADS = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.lists(st.sampled_from([MAGIC, b"\0", b"ab", b"xyz", b"\xff" * 4]), max_size=8).map(
            b"".join
        ),
    ),
    max_size=8,
)


@given(payloads=PAYLOADS)
def test_records_written_read_back_whole_magic_words_and_all(payloads: list[bytes]) -> None:
    stream = io.BytesIO()
    for payload in payloads:
        recordio.write_record(stream, payload)
    stream.seek(0)
    assert list(recordio.read_records(stream, "stream")) == payloads
    with folder() as where:
        path = where / "x.rec"
        path.write_bytes(stream.getvalue())
        offsets = recordio.record_offsets(path)
        assert [recordio.read_record_at(path, offset) for offset in offsets] == payloads


@given(data=st.binary(max_size=200), cut=st.integers(0, 200), payloads=PAYLOADS)
def test_any_bytes_read_as_records_or_are_refused_by_byte(
    data: bytes, cut: int, payloads: list[bytes]
) -> None:
    framed = b"".join(recordio.frame(p) for p in payloads)
    for raw in (data, framed[:cut] + data, framed[:cut]):
        try:
            list(recordio.read_records(io.BytesIO(raw), "stream"))
        except RecordIOError as error:
            assert str(error).startswith("stream")
        with folder() as where:
            path = where / "x.rec"
            path.write_bytes(raw)
            try:
                recordio.record_offsets(path)
            except RecordIOError as error:
                assert str(path) in str(error)


@given(
    labels=st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=4),
    image=st.binary(max_size=40),
    ids=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    noise=st.binary(max_size=40),
)
def test_image_records_pack_and_unpack_and_any_payload_is_read_or_refused(
    labels: list[float], image: bytes, ids: tuple[int, int], noise: bytes
) -> None:
    record = ImageRecord(tuple(labels), image, *ids)
    assert recordio.unpack_image(recordio.pack_image(record)) == record
    try:
        recordio.unpack_image(noise, "record 3")
    except RecordIOError as error:
        assert str(error).startswith("record 3")


@given(
    labels=st.lists(st.floats(width=32) | st.integers(0, 12).map(float), min_size=1, max_size=12)
)
def test_a_rec_channel_with_any_labels_is_read_or_refused_by_record(labels: list[float]) -> None:
    with folder() as channel:
        records = [ImageRecord((label,), DIGIT, index) for index, label in enumerate(labels)]
        recordio.write_image_records(channel / "train.rec", records)
        try:
            samples = dataset.list_channel(channel, "train")
        except DataError as error:
            assert "train.rec" in str(error)
            return
    assert sorted({s.label for s in samples}, key=int) == [
        str(i) for i in range(len({s.label for s in samples}))
    ]


# Data-capture records ----------------------------------------------------------------------

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def good_record(index: int) -> dict[str, Any]:
    answer = json.dumps({"predictions": [{"label": "3", "probability": 0.9}]})
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": "image/png",
                "mode": "INPUT",
                "data": base64.b64encode(DIGIT).decode(),
                "encoding": "BASE64",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": answer,
                "encoding": "JSON",
            },
        },
        "eventMetadata": {
            "eventId": str(index),
            "inferenceTime": (START + timedelta(seconds=index)).isoformat(),
        },
        "eventVersion": "0",
    }


PATHS = [
    ("captureData",),
    ("eventMetadata",),
    ("eventMetadata", "inferenceTime"),
    ("captureData", "endpointInput"),
    ("captureData", "endpointInput", "data"),
    ("captureData", "endpointInput", "encoding"),
    ("captureData", "endpointInput", "observedContentType"),
    ("captureData", "endpointOutput"),
    ("captureData", "endpointOutput", "data"),
    ("captureData", "endpointOutput", "observedContentType"),
]
ANSWERS = st.one_of(
    JSON.map(json.dumps),
    st.lists(st.fixed_dictionaries({"label": JSON, "probability": JSON}), max_size=2).map(
        lambda p: json.dumps({"predictions": p})
    ),
    st.just(json.dumps({"predictions": [{"label": "3", "probability": 10**400}]})),
)


@given(
    changes=st.lists(
        st.tuples(st.sampled_from(PATHS), st.one_of(JSON, ANSWERS)), min_size=1, max_size=3
    ),
    junk=st.lists(
        st.one_of(st.text(max_size=30), JSON.map(json.dumps), st.just("[" * 5000)), max_size=2
    ),
    windowed=st.booleans(),
)
def test_malformed_capture_records_are_skipped_with_their_reasons(
    changes: list[tuple[tuple[str, ...], Any]], junk: list[str], windowed: bool
) -> None:
    records = [good_record(i) for i in range(4)]
    for index, (path, value) in enumerate(changes):
        target = records[index % 3]
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                break
            target = target[key]
        else:
            target[path[-1]] = value
    lines = [json.dumps(r) for r in records] + junk
    with folder() as root:
        capture = root / "endpoint" / "AllTraffic" / "2026" / "03" / "01" / "09" / "x.jsonl"
        capture.parent.mkdir(parents=True)
        capture.write_text("\n".join(lines) + "\n")
        window = (
            (START - timedelta(hours=1), START + timedelta(hours=1)) if windowed else (None, None)
        )
        captured = read_captured(root, 8, 1, *window)
    assert len(captured.predictions) == len(captured.shapes)
    assert len(captured.shapes) >= 1  # the fourth record is never changed
    for where, why in captured.skipped:
        assert where.startswith(os.path.join("endpoint", "AllTraffic")) and why
