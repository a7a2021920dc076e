"""`serve` in an asynchronous endpoint's mode (SMVISION_ASYNC_INFERENCE=true, which
`deploy --async` sets): bodies up to 1 GB and an hour per request, and a JSON Lines body
of thousands of images predicted as it arrives, in memory that does not grow with it.

The real server runs as a subprocess over the digits svm; memory is the worker's peak
resident set (VmHWM), reset before the request, so the figures do not depend on how
fast the machine is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.support.photos import encode, grey_photo, photo
from tests.support.server_process import RunningServer, running_server
from tests.support.serving import (
    CLASS_NAMES,
    JobDirs,
    assert_predictions_match,
    job_environment,
    npy,
    offline_file_probabilities,
)

ASYNC = {"SMVISION_ASYNC_INFERENCE": "true"}
LINES = 3000
CROP = 256
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def async_server(serving_jobs: JobDirs) -> Iterator[RunningServer]:
    job_dir = serving_jobs("svm")
    env = {**job_environment(job_dir), **ASYNC, "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with running_server(job_dir, env=env) as server:
        yield server


def peak_resident_mib(pid: int, reset: bool = False) -> float:
    """A process's peak resident set (VmHWM); `reset` starts a new peak from now."""
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"/proc/{pid}/status has no VmHWM line")


def photo_crops(count: int) -> Iterator[bytes]:
    """JPEGs of CROP x CROP patches of real photographs, each from another place."""
    sources = [photo(name) for name in ("china", "flower", "astronaut", "coffee", "chelsea")]
    sources.append(cv2.cvtColor(grey_photo("camera"), cv2.COLOR_GRAY2RGB))
    for index in range(count):
        source = sources[index % len(sources)]
        height, width = source.shape[:2]
        top = (index * 37) % (height - CROP)
        left = (index * 53) % (width - CROP)
        yield encode(source[top : top + CROP, left : left + CROP], ".jpg")


def test_async_mode_raises_the_payload_and_time_limits(async_server: RunningServer) -> None:
    with httpx.Client(base_url=async_server.url, timeout=120) as client:
        parameters = client.get("/execution-parameters").json()
        assert parameters["MaxPayloadInMB"] == 1024
        camera = cv2.resize(grey_photo("camera"), (2800, 2800))  # 7.8 MB: over 6 MB
        answer = client.post(
            "/invocations", content=npy(camera), headers={"Content-Type": "application/x-npy"}
        )
        assert answer.status_code == 200, answer.text
    assert "timeout 3600 s, payload limit 1024 MB" in async_server.log()


@pytest.mark.slow
def test_a_json_lines_body_of_thousands_of_images_streams_in_bounded_memory(
    async_server: RunningServer, serving_jobs: JobDirs
) -> None:
    crops = list(photo_crops(LINES))
    body = b"".join(
        json.dumps({"b64": base64.b64encode(c).decode()}).encode() + b"\n" for c in crops
    )
    decoded_mib = LINES * CROP * CROP * 3 / MIB
    (worker,) = async_server.worker_pids()
    with httpx.Client(base_url=async_server.url, timeout=600) as client:
        warm = client.post(
            "/invocations",
            content=body[: body.index(b"\n") + 1],
            headers={"Content-Type": "application/jsonlines"},
        )
        assert warm.status_code == 200, warm.text
        before = peak_resident_mib(worker, reset=True)
        answer = client.post(
            "/invocations",
            content=body,
            headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
        )
        growth = peak_resident_mib(worker) - before
    assert answer.status_code == 200, answer.text[:500]
    predictions = [json.loads(line) for line in answer.text.splitlines()]
    assert len(predictions) == LINES
    checked = [0, 31, 32, 33, 1500, LINES - 1]  # around the groups' edges, and the last
    expected = offline_file_probabilities(serving_jobs("svm"), [crops[i] for i in checked])
    assert_predictions_match([predictions[i] for i in checked], expected, CLASS_NAMES)
    print(
        f"\n{LINES} images in one JSON Lines body of {len(body) / MIB:.0f} MiB "
        f"({decoded_mib:.0f} MiB decoded): the worker's peak memory grew "
        f"{growth:.1f} MiB"
    )
    assert growth < len(body) / MIB / 4
    assert growth < decoded_mib / 20


def test_a_bad_line_deep_in_a_streamed_body_is_named_and_the_server_goes_on(
    async_server: RunningServer, serving_jobs: JobDirs
) -> None:
    good = json.dumps({"b64": base64.b64encode(next(photo_crops(1))).decode()}).encode()
    lines = [good] * 100
    lines[76] = b'{"b64": "bm90IGFuIGltYWdl"}'  # "not an image"
    with httpx.Client(base_url=async_server.url, timeout=120) as client:
        refused = client.post(
            "/invocations",
            content=b"\n".join(lines) + b"\n",
            headers={"Content-Type": "application/jsonlines"},
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"].startswith("Line 77 ")
        fine = client.post(
            "/invocations",
            content=b"\n".join([good] * 40),
            headers={"Content-Type": "application/jsonlines"},
        )
        assert fine.status_code == 200
        assert len(fine.json()["predictions"]) == 40


def test_json_lines_answers_equal_whatever_the_group(
    async_server: RunningServer, serving_jobs: JobDirs
) -> None:
    """70 images (three groups) answered in JSON, JSON Lines and CSV: equal, line by line,
    to the answers to the same images sent one request each."""
    crops = list(photo_crops(70))
    body = b"\n".join(json.dumps({"b64": base64.b64encode(c).decode()}).encode() for c in crops)
    expected = offline_file_probabilities(serving_jobs("svm"), crops)
    with httpx.Client(base_url=async_server.url, timeout=120) as client:

        def post(accept: str) -> httpx.Response:
            response = client.post(
                "/invocations",
                content=body,
                headers={"Content-Type": "application/jsonlines", "Accept": accept},
            )
            assert response.status_code == 200, response.text
            return response

        as_json = post("application/json").json()
        assert set(as_json) == {"predictions"}
        assert_predictions_match(as_json["predictions"], expected, CLASS_NAMES)
        as_lines = [json.loads(line) for line in post("application/jsonlines").text.splitlines()]
        assert as_lines == as_json["predictions"]
        rows = [line.split(",") for line in post("text/csv").text.splitlines()]
        assert [row[0] for row in rows] == [p["label"] for p in as_lines]
        np.testing.assert_allclose(
            [float(row[1]) for row in rows], [p["probability"] for p in as_lines], rtol=1e-6
        )
