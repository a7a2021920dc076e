"""A Pipe-mode FIFO is read with a deadline (issue 22): a writer that never comes, or that
stops, ends the read with a sentence instead of a job that hangs. The FIFOs are real; the
writer's silence is certain by construction (it never writes, or waits on an event)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from smvision.data import pipemode, recordio
from smvision.data.pipemode import PipeError


def test_a_fifo_that_no_writer_opens_ends_in_a_sentence(tmp_path: Path) -> None:
    fifo = tmp_path / "train_0"
    os.mkfifo(fifo)
    with pytest.raises(PipeError) as silent, pipemode.open_fifo(fifo, "train", 0.5) as stream:
        stream.read()
    assert str(silent.value).startswith(
        f"Pipe-mode channel 'train': nothing came through {fifo} for 0.5 s (0 bytes before that)"
    )


def test_a_writer_that_stops_midway_ends_in_a_sentence_and_a_whole_stream_is_read(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "train_0"
    os.mkfifo(fifo)
    records = [b"first record", b"second record"]
    finish = threading.Event()

    def writer(stop_after: int) -> None:
        with open(fifo, "wb") as stream:
            for payload in records[:stop_after]:
                recordio.write_record(stream, payload)
            stream.flush()
            finish.wait(60)  # silent, the FIFO still open, until the test has seen the end

    stalled = threading.Thread(target=writer, args=(1,))
    stalled.start()
    try:
        with (
            pytest.raises(PipeError, match=r"for 0.5 s \(20 bytes before that\)"),
            pipemode.open_fifo(fifo, "train", 0.5) as stream,
        ):
            list(recordio.read_records(stream, "train"))
    finally:
        finish.set()
        stalled.join()

    whole = threading.Thread(target=pipemode.feed, args=(fifo, records))
    whole.start()
    with pipemode.open_fifo(fifo, "train", 60) as stream:
        assert list(recordio.read_records(stream, "train")) == records
    whole.join()
