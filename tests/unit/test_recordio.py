"""recordio.py: MXNet's framing and im2rec's image records, byte for byte."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from smvision.data import images, recordio
from smvision.data.recordio import ImageRecord, RecordIOError
from tests.support.photos import encode, photo

MAGIC = struct.pack("<I", 0xCED7230A)


def im2rec_bytes(label: float, record_id: int, image: bytes) -> bytes:
    """What im2rec writes for a single-label image, spelled out independently of the module:
    magic, length word (flag 0), IRHeader(flag=0, label, id, id2=0), image, zero padding."""
    payload = struct.pack("<IfQQ", 0, label, record_id, 0) + image
    padding = b"\0" * (-len(payload) % 4)
    return MAGIC + struct.pack("<I", len(payload)) + payload + padding


def test_a_single_label_record_is_laid_out_as_im2rec_writes_it() -> None:
    image = encode(photo("china")[:40, :50], ".jpg")
    packed = recordio.pack_image(ImageRecord((3.0,), image, id=17))
    assert recordio.frame(packed) == im2rec_bytes(3.0, 17, image)


def test_packed_labels_follow_the_header_and_set_its_flag() -> None:
    image = encode(photo("china")[:8, :8], ".png")
    packed = recordio.pack_image(ImageRecord((1.0, 0.0, 1.0), image, id=5))
    assert packed[:24] == struct.pack("<IfQQ", 3, 0.0, 5, 0)
    assert struct.unpack("<3f", packed[24:36]) == (1.0, 0.0, 1.0)
    assert packed[36:] == image
    assert recordio.unpack_image(packed) == ImageRecord((1.0, 0.0, 1.0), image, 5, 0)


def test_a_payload_holding_the_magic_at_a_word_boundary_is_written_in_parts() -> None:
    payload = b"abcd" + MAGIC + b"efghijkl" + MAGIC + b"k"
    framed = recordio.frame(payload)
    # Three parts: flags 1, 2, 3 in the top bits of each length word; the magic words are cut.
    words = [struct.unpack("<I", framed[i + 4 : i + 8])[0] for i in (0, 12, 28)]
    assert [w >> 29 for w in words] == [1, 2, 3]
    assert [w & ((1 << 29) - 1) for w in words] == [4, 8, 1]
    assert recordio.read_record(io.BytesIO(framed)) == payload
    unaligned = b"ab" + MAGIC + b"cd"
    assert recordio.frame(unaligned).count(MAGIC) == 2  # the frame's own, and the payload's


def test_offsets_and_reading_at_an_offset(tmp_path: Path) -> None:
    payloads = [b"first", b"x" * 8 + MAGIC + b"tail", b"", b"last one"]
    path = tmp_path / "mixed.rec"
    with path.open("wb") as stream:
        for payload in payloads:
            recordio.write_record(stream, payload)
    offsets = recordio.record_offsets(path)
    assert len(offsets) == 4
    assert [recordio.read_record_at(path, o) for o in offsets] == payloads
    with path.open("rb") as stream:
        assert list(recordio.read_records(stream)) == payloads


def test_a_truncated_file_names_the_file_and_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "cut.rec"
    path.write_bytes(im2rec_bytes(1.0, 0, b"12345678")[:-6])
    with pytest.raises(RecordIOError, match="cut.rec: the last record runs past the end"):
        recordio.record_offsets(path)
    with path.open("rb") as stream, pytest.raises(RecordIOError, match="ends inside a record"):
        recordio.read_record(stream, str(path))


def test_bytes_that_are_not_recordio_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "photo.rec"
    path.write_bytes(encode(photo("china")[:16, :16], ".png"))
    with pytest.raises(RecordIOError, match=r"photo.rec at byte 0: expected the RecordIO magic"):
        recordio.record_offsets(path)


def test_a_short_record_is_not_an_image_record() -> None:
    with pytest.raises(RecordIOError, match="fewer than im2rec's 24-byte header"):
        recordio.unpack_image(b"tiny", "train.rec, record 3")
    header = struct.pack("<IfQQ", 10, 0.0, 0, 0)
    with pytest.raises(RecordIOError, match="packs 10 labels"):
        recordio.unpack_image(header + b"abc")


def test_written_images_decode_to_the_same_pixels(tmp_path: Path) -> None:
    pictures = [photo("china")[:32, :48], photo("flower")[100:140, 200:230]]
    path = tmp_path / "photos.rec"
    recordio.write_image_records(
        path, [ImageRecord((float(i),), encode(p, ".png"), id=i) for i, p in enumerate(pictures)]
    )
    index = path.with_suffix(".idx").read_text().splitlines()
    offsets = recordio.record_offsets(path)
    assert index == [f"{i}\t{o}" for i, o in enumerate(offsets)]
    for i, offset in enumerate(offsets):
        record = recordio.unpack_image(recordio.read_record_at(path, offset))
        assert record.labels == (float(i),) and record.id == i
        assert (images.decode_image(record.image) == pictures[i]).all()


def test_headers_read_without_their_images(tmp_path: Path) -> None:
    path = tmp_path / "labels.rec"
    packed = [
        ImageRecord((4.0,), b"image-a" * 100, id=7),
        ImageRecord((1.0, 0.0, 1.0), b"image-b", id=8),
        # A header whose first label's bytes are the magic word: written in parts.
        ImageRecord((struct.unpack("<f", MAGIC)[0], 1.0), b"image-c", id=9),
    ]
    recordio.write_image_records(path, packed)
    with path.open("rb") as stream:
        for offset, record in zip(recordio.record_offsets(path), packed, strict=True):
            stream.seek(offset)
            assert recordio.read_image_header(stream) == ImageRecord(
                record.labels, b"", record.id, record.id2
            )
