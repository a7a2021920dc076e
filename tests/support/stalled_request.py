"""A request that stops half-way through its body: a client that stalls, or a request in
flight, by construction.

It asks `Expect: 100-continue`, so the server's "100 Continue" proves that the app has
started reading this request's body before half of it is sent; after that the
connection stays open and silent until the server answers or closes it (`answer`), or
until the test sends the rest (`finish`).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> str:
        document: dict[str, Any] = json.loads(self.body)
        return str(document["error"])


class StalledRequest:
    """POST `path` with `body` on a connection of its own; half the body is sent, then nothing."""

    def __init__(
        self,
        url: str,
        path: str,
        body: bytes,
        content_type: str,
        timeout: float,
    ) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = socket.create_connection((host, int(port)), timeout=timeout)
        head = (
            f"POST {path} HTTP/1.1\r\n"
            f"Host: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        )
        self.body = body
        self.connection.sendall(head.encode())
        self._unread = b""
        status, _ = self._read_head()
        assert status == 100, status
        self.connection.sendall(body[: len(body) // 2])

    def finish(self) -> Answer:
        """Send the rest of the body; what the server answers."""
        self.connection.sendall(self.body[len(self.body) // 2 :])
        return self.answer()

    def answer(self) -> Answer:
        """What the server answers without the rest of the body (within the socket's
        timeout: socket.timeout otherwise)."""
        try:
            status, headers = self._read_head()
            length = int(headers["content-length"])
            while len(self._unread) < length:
                self._unread += self._receive()
            return Answer(status, headers, self._unread[:length])
        finally:
            self.connection.close()

    def _read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self._unread:
            self._unread += self._receive()
        head, _, self._unread = self._unread.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def _receive(self) -> bytes:
        chunk = self.connection.recv(65536)
        if not chunk:
            raise ConnectionError(f"The server closed the connection; read {self._unread!r}")
        return chunk
