"""serve with compiled and compressed models.

A trained Keras model is compiled when serve starts (TFLite on LiteRT by default, or XLA);
an export in model/ (python -m smvision.local export, or the ONNX that train compiles an
svm or rf to) is served in its place, chosen there or by SMVISION_SERVE_FORMAT, on LiteRT
or ONNX Runtime without TensorFlow or scikit-learn.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest

from smvision import algorithms
from smvision.algorithms.exported import ExportedModel
from smvision.algorithms.keras_base import KerasAlgorithm
from smvision.core.artifacts import read_metadata
from smvision.model import runtimes
from smvision.serving import models
from tests.support.photos import encode, photo
from tests.support.server_process import running_server
from tests.support.serving import (
    JobDirs,
    assert_predictions_match,
    exported_copy,
    job_environment,
    model_input,
    offline_model,
)

# Serving's own runtime against TensorFlow's graph: float32 either way, summed in
# another order (XNNPACK or XLA against oneDNN).
COMPILED_TOLERANCE = 1e-5


def request_bodies(job_dir: Path) -> list[bytes]:
    """Every 40th digit of the test channel and a JPEG photo (decoded at a reduced scale)."""
    test = job_dir / "opt" / "ml" / "input" / "data" / "test"
    digits = [path.read_bytes() for path in sorted(test.rglob("*.png"))[::40]]
    return digits + [encode(photo("china"), ".jpg")]


def served_predictions(server_url: str, bodies: list[bytes]) -> list[dict[str, object]]:
    answers = []
    with httpx.Client(timeout=120.0) as client:
        for body in bodies:
            content_type = "image/jpeg" if body[:2] == b"\xff\xd8" else "image/png"
            response = client.post(
                f"{server_url}/invocations", content=body, headers={"Content-Type": content_type}
            )
            assert response.status_code == 200, response.text
            answers.extend(response.json()["predictions"])
    return answers


@pytest.mark.slow
@pytest.mark.parametrize("fmt, quantize", [("tflite", "int8"), ("onnx", "float32")])
def test_serve_answers_with_the_export_in_the_model_directory(
    serving_jobs: JobDirs, tmp_path: Path, fmt: str, quantize: str
) -> None:
    job_dir = exported_copy(serving_jobs, tmp_path, fmt, quantize)
    model_dir = job_dir / "opt" / "ml" / "model"
    record = json.loads((model_dir / "export.json").read_text())
    bodies = request_bodies(job_dir)
    with running_server(job_dir, env=job_environment(job_dir)) as server:
        answers = served_predictions(server.url, bodies)
        assert f"its {fmt} export, {quantize}" in server.log()
    decode = model_input(job_dir)
    pixels = np.stack([decode.from_file(body) for body in bodies])
    expected = runtimes.load(model_dir / record["file"], threads=1).predict(pixels)
    _, class_names = offline_model(serving_jobs("cnn"))
    assert_predictions_match(answers, expected, class_names)


@pytest.mark.slow
def test_serve_format_trained_serves_the_keras_model_beside_an_export(
    serving_jobs: JobDirs, tmp_path: Path
) -> None:
    job_dir = exported_copy(serving_jobs, tmp_path, "tflite", "int8")
    bodies = request_bodies(job_dir)
    env = {**job_environment(job_dir), "SMVISION_SERVE_FORMAT": "trained"}
    with running_server(job_dir, env=env) as server:
        answers = served_predictions(server.url, bodies)
        assert "(the trained model)" in server.log()
    keras_model, class_names = offline_model(serving_jobs("cnn"))
    decode = model_input(job_dir)
    expected = keras_model.predict_proba([decode.from_file(body) for body in bodies])
    assert_predictions_match(answers, expected, class_names)


@pytest.mark.parametrize(
    "value, words",
    [
        ("tflite", "SMVISION_SERVE_FORMAT is 'tflite' but"),  # the svm holds its ONNX
        ("keras", "SMVISION_SERVE_FORMAT has value 'keras'; use one of auto, trained, tflite"),
    ],
)
def test_serve_refuses_a_format_the_model_directory_lacks(
    serving_jobs: JobDirs, value: str, words: str
) -> None:
    job_dir = serving_jobs("svm")
    env = {**job_environment(job_dir), "SMVISION_SERVE_FORMAT": value, "PATH": "/usr/bin:/bin"}
    serve = str(Path(sys.executable).parent / "serve")
    completed = subprocess.run([serve], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert words in completed.stdout + completed.stderr


# What the image built with RUNTIME=lite lacks: importing any of it fails in the child.
BLOCKED_MODULES = ("tensorflow", "keras", "sklearn", "joblib", "matplotlib", "tf2onnx")
_WITHOUT_TENSORFLOW = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
            return None

    sys.meta_path.insert(0, Blocker())
    from smvision.serving.inference import Predictor, Request

    model_dir = Path(sys.argv[1])
    predictor = Predictor.load(model_dir)
    [answer] = predictor.respond([Request(Path(sys.argv[2]).read_bytes(), "image/png")])
    print(json.loads(answer)["predictions"][0]["label"])
    try:
        Predictor.load(model_dir, serve_format="trained")
    except Exception as error:
        print(error)
    """
).format(blocked=BLOCKED_MODULES)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["cnn", "svm", "rf"])
def test_an_export_is_served_without_tensorflow_or_scikit_learn(
    serving_jobs: JobDirs, tmp_path: Path, algorithm: str
) -> None:
    """The cnn exported as int8 ONNX; svm and rf as train compiled them to ONNX."""
    if algorithm == "cnn":
        job_dir = exported_copy(serving_jobs, tmp_path, "onnx", "int8")
    else:
        job_dir = serving_jobs(algorithm)
    digit = sorted((job_dir / "opt" / "ml" / "input" / "data" / "test").rglob("*.png"))[0]
    completed = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TENSORFLOW, str(job_dir / "opt/ml/model"), str(digit)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    label, refusal = completed.stdout.splitlines()[-2:]
    assert label in offline_model(serving_jobs(algorithm))[1]
    assert "an image built with RUNTIME=lite serves exported models only" in refusal


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["tflite", "onnx", "xla"])
def test_a_compiled_keras_model_predicts_like_tensorflow(
    serving_jobs: JobDirs, runtime: str
) -> None:
    model_dir = serving_jobs("cnn") / "opt" / "ml" / "model"
    compiled: models.ServableModel
    if runtime in ("tflite", "onnx"):  # as serve runs it: compiled in a child process
        metadata = read_metadata(model_dir)
        compiled = models.load(model_dir, metadata, models.Choice(None), runtime, threads=1)
        assert isinstance(compiled, ExportedModel)
    else:
        compiled = algorithms.get("cnn").load(model_dir)
        assert isinstance(compiled, KerasAlgorithm)
        compiled.compile_for_serving(runtime, threads=1)
    reference, _ = offline_model(serving_jobs("cnn"))
    test = sorted((model_dir.parent / "input" / "data" / "test").rglob("*.png"))
    decode = model_input(serving_jobs("cnn"))
    pixels = np.stack([decode.from_file(path.read_bytes()) for path in test[:45]])
    for count in (1, 5, 8, 45):  # a padded size, one exactly, and more than the largest
        np.testing.assert_allclose(
            compiled.predict_proba(pixels[:count]),
            reference.predict_proba(pixels[:count]),
            rtol=0,
            atol=COMPILED_TOLERANCE,
        )
