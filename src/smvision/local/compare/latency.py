"""In-process serving cost of one trained model: `python -m smvision.local.compare.latency
MODEL_DIR IMAGES_DIR` prints one JSON line {"p50_ms", "batch32_images_per_second", "images"}.

It answers requests exactly as a `serve` worker does, minus HTTP: the model and runtime
serve would load (`Predictor.load`, with SMVISION_SERVE_FORMAT and SMVISION_KERAS_RUNTIME),
then `Predictor.respond` on the files' own bytes (decode, resize, predict, encode the
answer). p50 is over one request of one image at a time; throughput over batches of 32
such requests, which is what the server's micro-batcher hands `respond` under load.
"""

from __future__ import annotations

import io
import itertools
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smvision.core import contract as contract_module
from smvision.core.media import ANY_IMAGE, NPY, image_content_type
from smvision.data import dataset
from smvision.serving.inference import Predictor, Request

MIN_TIMINGS = 50
MAX_SINGLE_IMAGES = 200
BATCH = 32
MAX_BATCHES = 10
BATCH_SECONDS = 5.0


def requests_for(images_dir: Path) -> list[Request]:
    """One request per labelled image of a channel directory, as a client would send it."""
    requests = []
    for sample in dataset.list_channel(images_dir, images_dir.name):
        if sample.array is None:  # a file, or a .rec record's image
            named = image_content_type(sample.path.name) if sample.offset is None else None
            requests.append(Request(sample.read_bytes(), named or ANY_IMAGE))
        else:
            buffer = io.BytesIO()
            np.save(buffer, sample.read())
            requests.append(Request(buffer.getvalue(), NPY))
    return requests


def measure(predictor: Predictor, requests: Sequence[Request]) -> dict[str, float]:
    for request in [predictor.warm_up_request(), *requests[:3]]:
        _answer(predictor, [request])
    singles = list(
        itertools.islice(
            itertools.cycle(requests), max(MIN_TIMINGS, min(len(requests), MAX_SINGLE_IMAGES))
        )
    )
    timings = []
    for request in singles:
        started = time.perf_counter()
        _answer(predictor, [request])
        timings.append(time.perf_counter() - started)
    endless = itertools.cycle(requests)
    batch_timings: list[float] = []
    deadline = time.perf_counter() + BATCH_SECONDS
    while len(batch_timings) < MAX_BATCHES and (
        len(batch_timings) < 3 or time.perf_counter() < deadline
    ):
        batch = list(itertools.islice(endless, BATCH))
        started = time.perf_counter()
        _answer(predictor, batch)
        batch_timings.append(time.perf_counter() - started)
    return {
        "p50_ms": 1000 * statistics.median(timings),
        "batch32_images_per_second": BATCH / statistics.median(batch_timings),
        "images": min(len(requests), len(singles)),
    }


def _answer(predictor: Predictor, batch: Sequence[Request]) -> None:
    for answer in predictor.respond(batch):
        if isinstance(answer, Exception):
            raise answer


def main(argv: Sequence[str] | None = None) -> int:
    model_dir, images_dir = (Path(a) for a in (sys.argv[1:] if argv is None else argv))
    requests = requests_for(images_dir)
    # The model and runtime `serve` would pick, from the same variables
    # (SMVISION_SERVE_FORMAT, SMVISION_KERAS_RUNTIME).
    settings = contract_module.load()
    predictor = Predictor.load(model_dir, settings.serve_format, settings.keras_runtime)
    print(json.dumps(measure(predictor, requests)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
