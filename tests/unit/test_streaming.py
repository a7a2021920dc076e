"""serving/streaming.py on its own: a JSON Lines body cut into groups as its chunks arrive,
answered group by group, equal to the answer of the whole body, reading no further
than `in_flight` groups ahead of the predictions."""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from collections.abc import AsyncIterator
from typing import IO

import numpy as np
import pytest

from smvision.core.media import CSV, JSON, JSON_LINES
from smvision.serving.codecs import encode_predictions
from smvision.serving.streaming import Group, LineGroups, answer_in_groups

CLASSES = ["cat", "dog", "bird"]


def probabilities(body: bytes) -> np.ndarray:
    """A row of probabilities per non-blank line, derived from the line's bytes."""
    rows = []
    for line in body.splitlines():
        if line.strip():
            digest = hashlib.sha256(line.strip()).digest()
            weights = np.array(list(digest[:3]), dtype=float) + 1
            rows.append(weights / weights.sum())
    return np.array(rows).reshape(-1, len(CLASSES))


def body_of(lines: int, blank_every: int = 0) -> bytes:
    text = []
    for i in range(lines):
        text.append(json.dumps({"b64": f"image-{i}"}))
        if blank_every and i % blank_every == 0:
            text.append("")
    return ("\n".join(text) + "\n").encode()


async def chunked(body: bytes, size: int, pulled: list[int] | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        if pulled is not None:
            pulled.append(start)
        yield body[start : start + size]


def answer(body: bytes, accept: str, chunk: int, group_lines: int, in_flight: int = 2) -> bytes:
    async def predict(group: Group, group_accept: str) -> bytes:
        await asyncio.sleep(0)
        return encode_predictions(probabilities(group.body), CLASSES, group_accept, None)

    async def run() -> bytes:
        spooled = await answer_in_groups(
            chunked(body, chunk), predict, accept, group_lines, in_flight
        )
        return b"".join(spooled.chunks())

    return asyncio.run(run())


@pytest.mark.parametrize("accept", [JSON, JSON_LINES, CSV])
@pytest.mark.parametrize("lines", [1, 8, 9, 100])
@pytest.mark.parametrize("chunk", [1, 4096])
def test_the_answer_in_groups_equals_the_answer_to_the_whole_body(
    accept: str, lines: int, chunk: int
) -> None:
    body = body_of(lines, blank_every=3)
    whole = encode_predictions(probabilities(body), CLASSES, accept, None)
    assert answer(body, accept, chunk, group_lines=8) == whole


def test_groups_keep_the_line_numbers_of_the_body() -> None:
    body = b"a\n\nb\nc\r\n\n\nd\ne"
    groups = LineGroups(2)
    found = [g for start in range(0, len(body), 3) for g in groups.feed(body[start : start + 3])]
    last = groups.close()
    assert last is not None
    found.append(last)
    assert [(g.first_line, g.body, g.lines) for g in found] == [
        (1, b"a\n\nb", 2),
        (4, b"c\r\n\n\nd", 2),
        (8, b"e", 1),
    ]
    for group in found:
        for offset, line in enumerate(group.body.split(b"\n")):
            assert body.split(b"\n")[group.first_line - 1 + offset] == line


def test_reading_waits_while_in_flight_groups_are_predicted() -> None:
    """One line a chunk, four lines a group, two groups in flight: while the predictions
    are held, exactly eight lines have been read, whatever the speed of the machine."""
    body = body_of(40)

    async def run() -> tuple[int, bytes]:
        release = asyncio.Event()
        pulled: list[int] = []
        calls: list[int] = []
        line = len(body_of(1))

        async def predict(group: Group, group_accept: str) -> bytes:
            calls.append(group.first_line)
            await release.wait()
            return encode_predictions(probabilities(group.body), CLASSES, group_accept, None)

        task = asyncio.ensure_future(
            answer_in_groups(
                chunked(body, line, pulled), predict, JSON_LINES, group_lines=4, in_flight=2
            )
        )
        while len(calls) < 2:
            await asyncio.sleep(0)
        for _ in range(100):  # let the reader go as far as it would
            await asyncio.sleep(0)
        held = len(pulled)
        release.set()
        return held, b"".join((await task).chunks())

    held, result = asyncio.run(run())
    assert held == 8
    assert result == encode_predictions(probabilities(body), CLASSES, JSON_LINES, None)


def test_a_failing_group_fails_the_answer_and_cancels_the_rest() -> None:
    body = body_of(20)
    cancelled: list[int] = []

    async def predict(group: Group, group_accept: str) -> bytes:
        if group.first_line == 1:
            return encode_predictions(probabilities(group.body), CLASSES, group_accept, None)
        if group.first_line == 5:
            raise ValueError(f"Line {group.first_line} is not valid JSON.")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(group.first_line)
            raise
        return b""

    async def run() -> None:
        await answer_in_groups(chunked(body, 64), predict, JSON, group_lines=4, in_flight=3)

    with pytest.raises(ValueError, match="Line 5 is not valid JSON"):
        asyncio.run(run())
    assert cancelled == [9]


def test_an_empty_body_is_answered_as_any_request() -> None:
    async def predict(group: Group, group_accept: str) -> bytes:
        assert (group.first_line, group.body, group_accept) == (1, b"", JSON)
        return b"the usual answer"

    async def run() -> bytes:
        return b"".join((await answer_in_groups(chunked(b"", 10), predict, JSON, 4, 2)).chunks())

    assert asyncio.run(run()) == b"the usual answer"


def test_a_large_answer_moves_to_a_file_and_comes_back_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smvision.serving import streaming

    monkeypatch.setattr(streaming, "SPOOL_IN_MEMORY_BYTES", 100)
    monkeypatch.setattr(streaming, "SEND_CHUNK_BYTES", 64)
    spooled = streaming.Answer()
    parts = [bytes([i]) * 30 for i in range(10)]
    for part in parts:
        spooled.write(part)
    assert spooled.whole() is None and spooled.size == 300
    chunks = list(spooled.chunks())
    assert b"".join(chunks) == b"".join(parts) and max(map(len, chunks)) == 64
    assert streaming.Answer.of(b"small").whole() == b"small"


def test_an_error_part_way_closes_the_spool_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Line 9's group fails after earlier answers moved to a file in /tmp: the file is
    closed then, not left open until the garbage collector finds it."""
    from smvision.serving import streaming

    monkeypatch.setattr(streaming, "SPOOL_IN_MEMORY_BYTES", 100)
    opened: list[IO[bytes]] = []
    original = tempfile.TemporaryFile

    def temporary_file() -> IO[bytes]:
        spool: IO[bytes] = original()  # noqa: SIM115
        opened.append(spool)
        return spool

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)

    async def predict(group: Group, group_accept: str) -> bytes:
        if group.first_line >= 9:
            raise ValueError(f"line {group.first_line} is not an image")
        return b"x" * 80 + b"\n"

    async def run() -> None:
        await answer_in_groups(chunked(body_of(12), 4096), predict, JSON_LINES, 2, 1)

    with pytest.raises(ValueError, match="line 9"):
        asyncio.run(run())
    assert len(opened) == 1 and opened[0].closed
