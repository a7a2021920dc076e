"""CPU per image in this process, no HTTP: the classic pipeline against serve's, and decoding.

classic: `images.decode_image` (the whole JPEG) and the trained model as training's
evaluation runs it (TensorFlow's graph, or scikit-learn): what every request cost before
issue 17, and what the reference server does. serve: `ModelInput.from_file` (a large
JPEG at a reduced scale) and the model as `serve` loads it (a Keras model compiled to
TFLite at start). int8: serve's decode and the job's model exported as int8 TFLite. Each
pipeline runs one image at a time and in batches of 8, variants alternating, CPU time
(every thread of this process) over wall-clock repeats; the median of REPEATS.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Store, key
from bench.serving import Payload, classic_model, serve_model
from smvision.data import images
from smvision.local import cli
from smvision.serving.inference import Predictor

REPEATS = 7
MIN_CPU_S = 0.3  # per measurement: enough calls that the clock's grain does not matter
BATCH = 8


def cpu_ms_per_image(run: Callable[[], object], images_per_call: int) -> float:
    """CPU milliseconds per image of `run`, called until it has used MIN_CPU_S."""
    run()
    calls, started = 0, time.process_time()
    while (used := time.process_time() - started) < MIN_CPU_S:
        run()
        calls += 1
    return used / calls / images_per_call * 1000


def int8_copy(job_dir: Path, work: Path) -> Path:
    """The job with its Keras model exported as int8 TFLite beside it."""
    return exported_copy(job_dir, work, "tflite", "int8")


def exported_copy(job_dir: Path, work: Path, fmt: str, quantize: str) -> Path:
    """A copy of the job with its Keras model exported beside it (made once per run)."""
    copy = work / f"{job_dir.name}-{fmt}-{quantize}"
    if (copy / "opt" / "ml" / "model" / "export.json").is_file():
        return copy
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(job_dir, copy)
    command = ["export", "--job-dir", str(copy), "--format", fmt, "--quantize", quantize]
    if cli.main(command) != 0:
        raise RuntimeError(f"exporting {copy} as {quantize} {fmt} failed")
    return copy


def pipelines(
    job_dir: Path, body: bytes, int8_job: Path | None
) -> dict[str, dict[int, Callable[[], object]]]:
    """variant -> images per call -> a call that decodes and predicts that many."""
    classic = classic_model(job_dir)
    serve = serve_model(job_dir)
    variants = {
        "classic": (images.decode_image, classic.predict_proba),
        "serve": (serve.model_input.from_file, serve.algorithm.predict_proba),
    }
    if int8_job is not None:
        int8 = Predictor.load(int8_job / "opt" / "ml" / "model")
        variants["int8"] = (int8.model_input.from_file, int8.algorithm.predict_proba)

    def call(
        decode: Callable[[bytes], object], predict: Callable[..., object], n: int
    ) -> Callable[[], object]:
        return lambda: predict([decode(body) for _ in range(n)])

    return {
        name: {n: call(decode, predict, n) for n in (1, BATCH)}
        for name, (decode, predict) in variants.items()
    }


def decoding(serve: Predictor, body: bytes) -> dict[str, Callable[[], object]]:
    """Body -> the model's input: decoded whole then resized, and serve's way."""
    model_input = serve.model_input
    return {
        "classic": lambda: model_input.from_image(images.decode_image(body)),
        "serve": lambda: model_input.from_file(body),
    }


def measure(algorithm: str, job_dir: Path, bodies: list[Payload], work: Path, store: Store) -> None:
    """CPU ms per image of each pipeline, and of decoding alone, for every payload."""
    int8_job = int8_copy(job_dir, work) if algorithm == "cnn" else None
    serve = serve_model(job_dir)
    for payload in bodies:
        runs = pipelines(job_dir, payload.body, int8_job)
        decoders = decoding(serve, payload.body)
        for _ in range(REPEATS):
            for name, by_size in runs.items():
                for n, run in by_size.items():
                    store.add(
                        key(algorithm, payload.name, "cpu", name, f"batch {n}"),
                        "CPU ms per image",
                        cpu_ms_per_image(run, n),
                    )
            for name, decode in decoders.items():
                store.add(
                    key(algorithm, payload.name, "decode", name),
                    "CPU ms per image",
                    cpu_ms_per_image(decode, 1),
                )
        for n in (1, BATCH):
            classic = store[key(algorithm, payload.name, "cpu", "classic", f"batch {n}")]
            ours = store[key(algorithm, payload.name, "cpu", "serve", f"batch {n}")]
            for a, b in zip(classic.values[-REPEATS:], ours.values[-REPEATS:]):
                store.add(
                    key(algorithm, payload.name, "cpu ratio", f"batch {n}"),
                    "classic / serve",
                    a / b,
                )
