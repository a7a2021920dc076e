"""The job's data channels, wherever SageMaker put them, listed into labelled samples.

A File or FastFile channel is a directory under input/data (layouts.py reads what it
holds; FastFile fetches each file as it is read). A Pipe channel is a FIFO, read once
into a spool on the training volume (pipemode.py): an augmented manifest's records give
each image the label that follows it, and class names when the manifest's
`<label>-metadata` attribute is streamed too; a stream of `.rec` files gives each image
the labels of its record header.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from smvision.core.contract import PIPE_MODE, RECORDIO_WRAPPER, ChannelInput, Contract
from smvision.data import pipemode
from smvision.data.dataset import DataError, list_channel, with_single_label
from smvision.data.formats import LabelValue, Sample
from smvision.data.labels import label_text
from smvision.data.pipemode import PipeError, SpooledRecord
from smvision.data.recordio import RecordIOError

log = logging.getLogger(__name__)


@dataclass
class Listing:
    """A channel's samples, and the names its manifest gives class ids (id -> name)."""

    samples: list[Sample]
    class_names: dict[str, str] = field(default_factory=dict)


def list_job_channel(contract: Contract, channel: str) -> Listing:
    """The samples of one channel, in the input mode inputdataconfig.json gives it."""
    config = contract.channel_inputs().get(channel, ChannelInput())
    if config.mode == PIPE_MODE:
        return list_pipe_channel(contract, channel, config)
    return Listing(list_channel(contract.channel_dir(channel), channel))


def list_pipe_channel(contract: Contract, channel: str, config: ChannelInput) -> Listing:
    """Read a Pipe-mode channel's first FIFO to its end into a spool; its samples."""
    fifo = contract.pipe_path(channel, 0)
    if not fifo.exists():
        raise DataError(
            f"Pipe-mode channel '{channel}' has no FIFO at {fifo}; SageMaker creates it for a "
            "channel whose InputMode is Pipe (`smvision.local train --manifest` emulates it)."
        )
    spool = contract.scratch_dir / "pipe" / f"{channel}.rec"
    wrapped = config.record_wrapper == RECORDIO_WRAPPER
    started = time.perf_counter()
    try:
        with pipemode.open_fifo(fifo, channel) as stream:
            spooled = pipemode.spool(stream, spool, wrapped, channel)
    except (PipeError, RecordIOError) as error:
        what = "an augmented manifest" if wrapped else "RecordIO (.rec) files"
        raise DataError(f"{error} (the channel is {what}, by its RecordWrapperType).") from None
    log.info(
        "Pipe-mode channel '%s': %d images (%.1f MB) streamed into %s in %.1f s.",
        channel,
        len(spooled),
        spool.stat().st_size / 1e6,
        spool,
        time.perf_counter() - started,
    )
    if not spooled:
        raise DataError(f"Pipe-mode channel '{channel}' streamed no records; it holds no images.")
    listing = Listing([])
    for record in spooled:
        sample = (
            _manifest_sample(record, channel, spool, listing)
            if wrapped
            else Sample(
                f"{channel} record {record.index}",
                spool,
                record.header_labels,
                offset=record.offset,
                error=record.error,
            )
        )
        listing.samples.append(with_single_label(sample))
    return listing


def _manifest_sample(record: SpooledRecord, channel: str, spool: Any, listing: Listing) -> Sample:
    source = f"{channel} line {record.index + 1}"
    if record.error is not None or not record.attributes:
        return Sample(source, spool, (), offset=record.offset, error=record.error)
    values, error = label_values(record.attributes[0])
    for extra in record.attributes[1:]:
        if isinstance(extra, dict):
            _remember_names(extra, values, listing.class_names)
    return Sample(source, spool, values, offset=record.offset, error=error)


def label_values(value: Any) -> tuple[tuple[LabelValue, ...], str | None]:
    """A manifest label attribute's value as label values, or why it is not one."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return (value,), None
    if isinstance(value, list) and all(
        isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value
    ):
        return tuple(value), None
    shown = repr(value)[:60]
    return (), (
        f"its label {shown} is not a class id, a class name or a list of them (the second "
        "attribute name must be the label attribute)"
    )


def _remember_names(
    metadata: dict[str, Any], values: tuple[LabelValue, ...], names: dict[str, str]
) -> None:
    """Class names from Ground Truth's metadata: class-name (one label) or class-map."""
    found: dict[str, str] = {}
    if isinstance(metadata.get("class-map"), dict):
        found = {label_text(k): str(v) for k, v in metadata["class-map"].items()}
    elif isinstance(metadata.get("class-name"), str) and len(values) == 1:
        found = {label_text(values[0]): metadata["class-name"]}
    for class_id, name in found.items():
        known = names.setdefault(class_id, name)
        if known != name:
            log.warning(
                "Class id %s is named both %r and %r in the manifest's metadata; keeping %r.",
                class_id,
                known,
                name,
                known,
            )
