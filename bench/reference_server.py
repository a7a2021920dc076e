"""The classic AWS bring-your-own server, for comparison only: Flask under gunicorn sync workers.

Shaped after AWS's scikit_bring_your_own example (predictor.py + serve): one gunicorn
sync worker per CPU, each loading the model and answering one request at a time, with
no keep-alive. It does what such a server does with an image: decode it whole
(`smvision.data.images.decode_image`), then predict with the model as trained (the
algorithm's `predict_proba`: scikit-learn, or the Keras model on TensorFlow's graph),
and writes the same JSON as `serve`. `serve` differs in how it serves (event loop,
micro-batching), in what it decodes (a large JPEG at a reduced scale) and in how a Keras
model runs (compiled at start). The nginx that the example puts in front is left out,
which can only make this server faster.

    SMVISION_REFERENCE_MODEL_DIR=JOBDIR/opt/ml/model \\
        python -m gunicorn -k sync -w 2 -b 127.0.0.1:PORT 'bench.reference_server:create_app()'
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import flask

MODEL_DIR_ENV = "SMVISION_REFERENCE_MODEL_DIR"


def create_app() -> flask.Flask:
    """The WSGI app; gunicorn calls this in every worker, which loads its own model."""
    from smvision.core.media import JSON
    from smvision.data.images import ImageError, decode_image
    from smvision.serving.codecs import encode_predictions
    from smvision.serving.inference import Predictor

    predictor = Predictor.load(
        Path(os.environ[MODEL_DIR_ENV]), serve_format="trained", keras_runtime="tensorflow"
    )
    app = flask.Flask("smvision-reference")

    @app.get("/ping")
    def ping() -> flask.Response:
        return flask.Response("{}", status=200, mimetype="application/json")

    @app.post("/invocations")
    def invocations() -> flask.Response:
        try:
            image = decode_image(flask.request.get_data(), "The body")
        except ImageError as error:
            return flask.Response(str(error), status=400, mimetype="text/plain")
        probabilities = predictor.algorithm.predict_proba([image])
        body = encode_predictions(probabilities, predictor.class_names, JSON, None)
        return flask.Response(body, status=200, mimetype="application/json")

    return app


def start(model_dir: Path, port: int, workers: int, log_path: Path) -> subprocess.Popen[bytes]:
    """gunicorn with `workers` sync workers on 127.0.0.1:port, its output going to log_path."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "sync",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "60",
        "--log-level",
        "warning",
        "bench.reference_server:create_app()",
    ]
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, MODEL_DIR_ENV: str(model_dir), "PYTHONUNBUFFERED": "1"},
        )
