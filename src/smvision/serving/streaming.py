"""A JSON Lines body predicted as it arrives, a group of lines at a time, in bounded memory.

An asynchronous endpoint may send thousands of images in one JSON Lines body of up to
1 GB. Holding it whole, then every decoded image, would take memory in proportion to
the body; here the body is cut into groups of complete lines as its chunks arrive, each
group is decoded and predicted like a request of its own, at most `in_flight` groups are
in the works at once (no more of the body is read meanwhile, so the client waits), and
each group's answer is appended to a spool (in memory while small, else in /tmp).

The answer equals that of the whole body sent at once: JSON Lines and CSV answers
concatenate, and a JSON answer's predictions are joined into one list, written exactly
as `json.dumps` writes it. A body that fits in one group is answered as any request is.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import IO

from smvision.core.media import JSON, JSON_LINES

# An answer this large moves from memory to a file in /tmp.
SPOOL_IN_MEMORY_BYTES = 8 * 1024 * 1024
SEND_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Group:
    """Consecutive lines of a body (blank ones kept, so that numbering holds), the number
    of the first one, and how many are not blank."""

    first_line: int
    body: bytes
    lines: int


class LineGroups:
    """Chunks of a body -> groups of `size` non-blank lines; holds one partial line and one
    unfinished group at most."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size is {size}; a group holds at least one line.")
        self._size = size
        self._partial = bytearray()
        self._lines: list[bytes] = []
        self._filled = 0
        self._first_line = 1

    def feed(self, chunk: bytes) -> list[Group]:
        """The groups `chunk` completes."""
        if b"\n" not in chunk:
            self._partial += chunk
            return []
        head, *complete = chunk.split(b"\n")
        rest = complete.pop()
        complete.insert(0, bytes(self._partial) + head)
        self._partial = bytearray(rest)
        groups = []
        for line in complete:
            self._lines.append(line)
            self._filled += bool(line.strip())
            if self._filled == self._size:
                groups.append(self._take())
        return groups

    def close(self) -> Group | None:
        """The last group, once the body has ended; None if nothing is left."""
        if self._partial:
            self._lines.append(bytes(self._partial))
            self._filled += bool(self._partial.strip())
            self._partial = bytearray()
        return self._take() if self._lines else None

    def _take(self) -> Group:
        group = Group(self._first_line, b"\n".join(self._lines), self._filled)
        self._first_line += len(self._lines)
        self._lines, self._filled = [], 0
        return group


class Answer:
    """An answer written part by part: in memory while small, else in a file in /tmp."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._file: IO[bytes] | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._file is None and self.size <= SPOOL_IN_MEMORY_BYTES:
            self._parts.append(data)
            return
        if self._file is None:
            # Closed by chunks(), once the answer is sent, or by close() on an error.
            self._file = tempfile.TemporaryFile()  # noqa: SIM115
            self._file.writelines(self._parts)
            self._parts = []
        self._file.write(data)

    def whole(self) -> bytes | None:
        """The answer as one bytes object when it was written in one part."""
        return self._parts[0] if len(self._parts) == 1 and self._file is None else None

    def chunks(self) -> Iterator[bytes]:
        """The answer from its start, a chunk at a time; a spool file is closed at the end."""
        if self._file is None:
            yield from self._parts
            return
        try:
            self._file.seek(0)
            while chunk := self._file.read(SEND_CHUNK_BYTES):
                yield chunk
        finally:
            self._file.close()

    def close(self) -> None:
        """Let go of the answer unsent (an error came part-way): its spool file too."""
        self._parts = []
        if self._file is not None:
            self._file.close()

    @classmethod
    def of(cls, data: bytes) -> Answer:
        answer = cls()
        answer.write(data)
        return answer


class GroupAnswers:
    """The answers of a body's groups, in order, as one answer in the Accept type."""

    def __init__(self, accept: str) -> None:
        self.accept = accept
        self.answer = Answer()
        self._empty = True
        if accept == JSON:
            self.answer.write(b'{"predictions": [')

    @staticmethod
    def group_accept(accept: str) -> str:
        """What a group is answered in: JSON's predictions come as JSON Lines, one a line,
        each written as json.dumps writes it inside the list."""
        return JSON_LINES if accept == JSON else accept

    def add(self, answer: bytes) -> None:
        if self.accept != JSON:
            self.answer.write(answer)
            return
        items = b", ".join(line for line in answer.split(b"\n") if line)
        if items:
            self.answer.write(items if self._empty else b", " + items)
            self._empty = False

    def finish(self) -> Answer:
        if self.accept == JSON:
            self.answer.write(b"]}")
        return self.answer


Predict = Callable[[Group, str], Awaitable[bytes]]


async def answer_in_groups(
    chunks: AsyncIterator[bytes], predict: Predict, accept: str, group_lines: int, in_flight: int
) -> Answer:
    """The answer to a JSON Lines body read from `chunks`, predicted a group at a time by
    `predict(group, accept)`; the first error raised is raised here, the rest cancelled."""
    groups = LineGroups(group_lines)
    pending: deque[asyncio.Future[bytes]] = deque()
    answers: GroupAnswers | None = None
    try:
        async for chunk in chunks:
            for group in groups.feed(chunk):
                answers = answers or GroupAnswers(accept)
                pending.append(
                    asyncio.ensure_future(predict(group, GroupAnswers.group_accept(accept)))
                )
                while len(pending) >= in_flight:
                    answers.add(await pending.popleft())
        last = groups.close()
        if answers is None:  # the whole body in one group: answered as any request is
            return Answer.of(await predict(last or Group(1, b"", 0), accept))
        if last is not None and last.lines:
            pending.append(asyncio.ensure_future(predict(last, GroupAnswers.group_accept(accept))))
        while pending:
            answers.add(await pending.popleft())
        return answers.finish()
    except BaseException:
        if answers is not None:
            answers.answer.close()
        raise
    finally:
        for future in pending:
            future.cancel()
