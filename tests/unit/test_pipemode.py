"""pipemode.py: a Pipe-mode channel read through a real FIFO, as SageMaker streams it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smvision.data import pipemode, recordio
from smvision.data.pipemode import PipeError, PipeFeeder
from smvision.data.recordio import ImageRecord


def write_manifest(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def digit_files(digits: Path, count: int) -> list[Path]:
    return sorted((digits / "test").rglob("*.png"))[:count]


def read_through_fifo(
    tmp_path: Path, records: object, wrapped: bool
) -> list[pipemode.SpooledRecord]:
    fifo_dir = tmp_path / "data"
    fifo_dir.mkdir()
    feeder = PipeFeeder(lambda epoch: fifo_dir / f"train_{epoch}", records)  # type: ignore[arg-type]
    feeder.start()
    with open(fifo_dir / "train_0", "rb") as stream:
        return pipemode.spool(stream, tmp_path / "spool" / "train.rec", wrapped, "train")


def test_a_manifest_streams_image_then_label_records(digits: Path, tmp_path: Path) -> None:
    files = digit_files(digits, 12)
    (tmp_path / "images").mkdir()
    for path in files:
        (tmp_path / "images" / path.name).write_bytes(path.read_bytes())
    manifest = write_manifest(
        tmp_path / "train.manifest",
        [
            {
                "source-ref": f"images/{path.name}",
                "digit": int(path.parent.name),
                "digit-metadata": {"class-name": f"digit {path.parent.name}"},
            }
            for path in files
        ],
    )
    records = list(pipemode.manifest_records(manifest, ["source-ref", "digit"]))
    assert records[0] == files[0].read_bytes() and records[1] == b"0"
    spooled = read_through_fifo(
        tmp_path,
        lambda: pipemode.manifest_records(manifest, ["source-ref", "digit", "digit-metadata"]),
        wrapped=True,
    )
    assert [r.attributes[0] for r in spooled] == [int(p.parent.name) for p in files]
    assert spooled[3].attributes[1] == {"class-name": f"digit {files[3].parent.name}"}
    spool = tmp_path / "spool" / "train.rec"
    assert recordio.record_offsets(spool) == [r.offset for r in spooled]
    image = recordio.unpack_image(recordio.read_record_at(spool, spooled[5].offset)).image
    assert image == files[5].read_bytes()


def test_an_image_without_a_label_is_marked_not_dropped(tmp_path: Path) -> None:
    spooled = read_through_fifo(
        tmp_path, lambda: [b"\x89PNG one", b"3", b"\x89PNG two", b"\xff\xd8 three", b"[1, 2]"], True
    )
    assert [(r.attributes, r.error) for r in spooled] == [
        ((3,), None),
        ((), "no label record follows the image"),
        (([1, 2],), None),
    ]


def test_a_label_before_any_image_says_to_list_the_image_first(tmp_path: Path) -> None:
    with pytest.raises(PipeError, match="list the image attribute first in AttributeNames"):
        read_through_fifo(tmp_path, lambda: [b'"cat"', b"\x89PNG"], True)


def test_recordio_files_streamed_unwrapped_keep_their_header_labels(tmp_path: Path) -> None:
    payloads = [
        recordio.pack_image(ImageRecord((2.0,), b"\x89PNG a", id=0)),
        recordio.pack_image(ImageRecord((1.0, 0.0, 1.0), b"\x89PNG b", id=1)),
        b"short",
    ]
    spooled = read_through_fifo(tmp_path, lambda: payloads, wrapped=False)
    assert [r.header_labels for r in spooled] == [(2.0,), (1.0, 0.0, 1.0), ()]
    assert spooled[2].error is not None and "24-byte header" in spooled[2].error


def test_a_manifest_line_without_an_attribute_names_line_and_attribute(tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path / "m.manifest", [{"source-ref": "a.png", "class": 1}, {"source-ref": "b.png"}]
    )
    with pytest.raises(PipeError, match=r"m.manifest, line 2 lacks attribute 'class'"):
        pipemode.read_manifest(manifest, ["source-ref", "class"])


def test_s3_refs_are_refused_on_a_laptop(tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path / "m.manifest", [{"source-ref": "s3://bucket/a.png", "class": 1}]
    )
    with pytest.raises(PipeError, match="is not on this machine"):
        list(pipemode.manifest_records(manifest, ["source-ref", "class"]))
