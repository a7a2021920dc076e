"""Trained job directories and running servers, shared by the serving tests.

Each algorithm is trained once per test run on the digits, with
`python -m smvision.local train` as a subprocess (small settings: a few seconds to a
minute each), in a folder every xdist worker shares (`tests.support.shared_cache`), and
served by the real `serve` through `tests.support.server_process`. The fixtures that hand
them out, `serving_jobs` and `servers`, are in tests/conftest.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from collections.abc import Mapping
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

from smvision import algorithms
from smvision.algorithms.base import Algorithm
from smvision.core.artifacts import read_metadata
from smvision.data import images
from smvision.local import cli
from smvision.schema import specs
from tests.support.photos import encode, grey_photo, photo
from tests.support.server_process import RunningServer, running_server
from tests.support.shared_cache import built_once
from tests.support.training_jobs import run_local_train

ALGORITHMS = specs.names()
SERVING_HYPERPARAMETERS: dict[str, dict[str, str]] = {
    "svm": {"image_size": "32"},
    "rf": {"n_estimators": "50"},
    "cnn": {"image_size": "16", "epochs": "8"},
    "resnet50": {"image_size": "32", "epochs": "1", "fine_tune_epochs": "0", "weights": "none"},
}
TRAIN_TIMEOUT_S = 900
PROBABILITY_TOLERANCE = 1e-5
CLASS_NAMES = [str(d) for d in range(10)]  # the digits' classes, in order
ROOT = Path(__file__).resolve().parents[2]


def trained_job_dir(algorithm: str, digits: Path, root: Path) -> Path:
    """A job directory whose model/ holds `algorithm` trained on the digits: trained by
    the first test of the run that asks, in any worker, and read by every other."""

    def train(job_dir: Path) -> None:
        channels = {split: digits / split for split in ("train", "validation", "test")}
        job = run_local_train(
            algorithm,
            channels,
            job_dir,
            SERVING_HYPERPARAMETERS[algorithm],
            timeout=TRAIN_TIMEOUT_S,
            env=job_environment(job_dir),
        )
        assert job.returncode == 0, job.output[-4000:]

    return built_once(root / algorithm, train)


def job_environment(job_dir: Path) -> dict[str, str]:
    """Session fixtures run outside the per-test environment fixture: set the base dir here."""
    return {"SAGEMAKER_BASE_DIR": str(job_dir / "opt" / "ml")}


class JobDirs:
    """serving_jobs('svm') -> the job directory of the run's svm (trained on first use)."""

    def __init__(self, digits: Path, root: Path) -> None:
        self.digits = digits
        self.root = root
        self.trained: dict[str, Path] = {}

    def __call__(self, algorithm: str) -> Path:
        if algorithm not in self.trained:
            self.trained[algorithm] = trained_job_dir(algorithm, self.digits, self.root)
        return self.trained[algorithm]


class ServerPool:
    """One running server per algorithm, started on first use, stopped at the session's end."""

    def __init__(self, jobs: JobDirs, stack: ExitStack) -> None:
        self.jobs = jobs
        self.stack = stack
        self.servers: dict[str, RunningServer] = {}

    def __call__(self, algorithm: str) -> RunningServer:
        if algorithm not in self.servers:
            job_dir = self.jobs(algorithm)
            self.servers[algorithm] = self.stack.enter_context(
                running_server(job_dir, env=job_environment(job_dir))
            )
        return self.servers[algorithm]


@cache
def offline_model(job_dir: Path) -> tuple[Algorithm, list[str]]:
    """The model loaded in this process, as evaluation loads it: the reference for HTTP."""
    model_dir = job_dir / "opt" / "ml" / "model"
    metadata = read_metadata(model_dir)
    return algorithms.get(metadata["algorithm"]).load(model_dir), list(metadata["class_names"])


def offline_probabilities(job_dir: Path, decoded: list[np.ndarray]) -> np.ndarray:
    algorithm, _ = offline_model(job_dir)
    return algorithm.predict_proba(decoded)


def model_input(job_dir: Path) -> images.ModelInput:
    """How the job's model decodes files: its size, channels and JPEG rule, from metadata."""
    metadata = read_metadata(job_dir / "opt" / "ml" / "model")
    return images.ModelInput(
        metadata["image_size"], metadata["channels"], metadata.get("scaled_jpeg_decode") is True
    )


def offline_file_probabilities(job_dir: Path, files: list[bytes]) -> np.ndarray:
    decode = model_input(job_dir).from_file
    return offline_probabilities(job_dir, [decode(data) for data in files])


def assert_predictions_match(
    predictions: list[dict[str, Any]], expected: np.ndarray, class_names: list[str]
) -> None:
    """HTTP predictions against offline probabilities: labels equal, probabilities within 1e-5."""
    assert len(predictions) == len(expected)
    for prediction, row in zip(predictions, expected):
        best = int(np.argmax(row))
        assert prediction["label"] == class_names[best]
        assert abs(prediction["probability"] - float(row[best])) <= PROBABILITY_TOLERANCE
        got = np.array([prediction["probabilities"][name] for name in class_names])
        np.testing.assert_allclose(got, row, rtol=0, atol=PROBABILITY_TOLERANCE)


def invoke(
    client: httpx.Client,
    server: RunningServer,
    body: bytes,
    content_type: str | None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    return client.post(f"{server.url}/invocations", content=body, headers=sent)


def npy(array: np.ndarray) -> bytes:
    """An application/x-npy body: the bytes numpy.save writes."""
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def exported_copy(serving_jobs: JobDirs, tmp_path: Path, fmt: str, quantize: str) -> Path:
    """A copy of the session's cnn job (the shared one stays as trained), exported."""
    job_dir = tmp_path / "job"
    shutil.copytree(serving_jobs("cnn"), job_dir)
    command = ["export", "--job-dir", str(job_dir), "--format", fmt, "--quantize", quantize]
    assert cli.main(command) == 0
    return job_dir


def channel_images(job_dir: Path) -> list[Path]:
    """The job's test channel: digit PNGs the model never trained on."""
    return sorted((job_dir / "opt" / "ml" / "input" / "data" / "test").rglob("*.png"))


def digit_png(job_dir: Path, index: int = 0) -> bytes:
    return channel_images(job_dir)[index].read_bytes()


def content_type_cases(job_dir: Path) -> list[tuple[str, str, bytes, list[np.ndarray]]]:
    """(name, Content-Type, body, the images the body holds) for every supported type."""
    png = digit_png(job_dir, 0)
    digits = [images.decode_image(digit_png(job_dir, i)) for i in (0, 40, 80, 120, 160)]
    china, coffee, camera, astronaut = (
        photo("china"),
        photo("coffee"),
        grey_photo("camera"),
        photo("astronaut"),
    )
    thumbnail = cv2.resize(china, (48, 32), interpolation=cv2.INTER_AREA)
    files = {
        ".jpg": encode(china, ".jpg"),
        ".bmp": encode(coffee, ".bmp"),
        ".tiff": encode(camera, ".tiff"),
        ".webp": encode(astronaut, ".webp"),
    }
    # Files decode straight to the model's input, as training decoded them.
    decoded = {suffix: model_input(job_dir).from_file(data) for suffix, data in files.items()}
    grey16 = (camera.astype(np.uint16) * 257)[:200, :300]
    instances: list[Any] = [
        {"b64": base64.b64encode(png).decode()},
        {"b64": base64.b64encode(files[".jpg"]).decode()},
        digits[1][:, :, 0].tolist(),
        (thumbnail / 255.0).tolist(),
    ]
    instance_images = [
        images.decode_image(png),
        decoded[".jpg"],
        digits[1],
        images.from_array(thumbnail / 255.0),
    ]
    return [
        ("png", "image/png", png, [images.decode_image(png)]),
        ("jpeg", "image/jpeg", files[".jpg"], [decoded[".jpg"]]),
        ("x-image", "application/x-image", png, [images.decode_image(png)]),
        ("bmp", "image/bmp", files[".bmp"], [decoded[".bmp"]]),
        ("tiff", "image/tiff", files[".tiff"], [decoded[".tiff"]]),
        ("webp", "image/webp", files[".webp"], [decoded[".webp"]]),
        ("npy HxW uint8", "application/x-npy", npy(digits[2][:, :, 0]), [digits[2]]),
        ("npy HxWxC uint8", "application/x-npy", npy(china), [china]),
        (
            "npy HxWxC float",
            "application/x-npy",
            npy((coffee / 255.0).astype(np.float32)),
            [images.from_array((coffee / 255.0).astype(np.float32))],
        ),
        ("npy HxW uint16", "application/x-npy", npy(grey16), [images.from_array(grey16)]),
        ("npy NxHxWxC", "application/x-npy", npy(np.stack(digits)), digits),
        ("npy Fortran order", "application/x-npy", npy(np.asfortranarray(thumbnail)), [thumbnail]),
        (
            "json",
            "application/json; charset=utf-8",
            json.dumps({"instances": instances}).encode(),
            instance_images,
        ),
        (
            "jsonlines",
            "application/jsonlines",
            ("\n".join(json.dumps(i) for i in instances) + "\n\n").encode(),
            instance_images,
        ),
    ]


def gated_environment(job_dir: Path, site: Path, **gates: Path) -> dict[str, str]:
    """`serve`'s environment: GatedSVM in the table (an entry point on PYTHONPATH), gates."""
    paths = [str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        **job_environment(job_dir),
        "PYTHONPATH": os.pathsep.join(paths),
        **{name: str(path) for name, path in gates.items()},
    }
