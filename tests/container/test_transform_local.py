"""`python -m launch transform --local`, as a user with Docker runs it: the SDK's local
batch transform (LocalSession.create_transform_job) against the image, on a folder of
image files and on a JSON Lines file, its container removed afterwards.

The SDK alone, without a BatchStrategy, fails on the image with "Invalid Batch Strategy"
(it takes the container's MULTI_RECORD, SageMaker's spelling, from /execution-parameters)
and leaves the container running; the launcher names the strategy as SageMaker's
`transform` does.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from tests.container.engine import Engine
from tests.support.archives import tar_gz
from tests.support.image_jobs import ROOT, BuiltImage, ContainerJobs, launch
from tests.support.photos import encode, photo

pytestmark = pytest.mark.slow

TRANSFORM_TIMEOUT_S = 600
PROBABILITY_TOLERANCE = 1e-5
IMAGES = 6


def transform_local(
    env: dict[str, str], image: str, model: Path, input_dir: Path, output_dir: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        launch(
            "transform",
            "--local",
            "--image-uri",
            image,
            "--model-data",
            str(model),
            "--input",
            str(input_dir),
            "--output",
            str(output_dir),
        ),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=TRANSFORM_TIMEOUT_S,
    )


def test_transform_local_on_image_files_and_on_json_lines(
    laptop: dict[str, str],
    docker_api: Engine,
    image: BuiltImage,
    container_jobs: ContainerJobs,
    tmp_path: Path,
) -> None:
    job = container_jobs("svm")
    assert job.returncode == 0, job.output[-3000:]
    model = tmp_path / "model.tar.gz"
    model.write_bytes(tar_gz(job.ml / "model"))
    test_dir = job.ml / "input" / "data" / "test"
    expected = job.evaluation["test"]["predictions"][::40][:IMAGES]
    images = tmp_path / "images"
    images.mkdir()
    for entry in expected:
        (images / Path(entry["source"]).name).write_bytes((test_dir / entry["source"]).read_bytes())

    run = transform_local(laptop, image.tag, model, images, tmp_path / "image-results")

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "(application/x-image, SingleRecord)" in run.stdout
    for entry in expected:
        result = tmp_path / "image-results" / (Path(entry["source"]).name + ".out")
        (prediction,) = json.loads(result.read_text())["predictions"]
        assert prediction["label"] == entry["predicted"], entry["source"]
        assert prediction["probability"] == pytest.approx(
            entry["probability"], abs=PROBABILITY_TOLERANCE
        )

    lines = tmp_path / "lines"
    lines.mkdir()
    bodies = [(test_dir / entry["source"]).read_bytes() for entry in expected]
    bodies.append(encode(photo("china"), ".jpg"))
    (lines / "batch.jsonl").write_text(
        "".join(json.dumps({"b64": base64.b64encode(body).decode()}) + "\n" for body in bodies)
    )

    run = transform_local(laptop, image.tag, model, lines, tmp_path / "line-results")

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "(application/jsonlines, MultiRecord)" in run.stdout
    answers = [
        json.loads(line)
        for line in (tmp_path / "line-results" / "batch.jsonl.out").read_text().splitlines()
        if line.strip()
    ]
    assert [a["label"] for a in answers[:IMAGES]] == [e["predicted"] for e in expected]
    assert len(answers) == len(bodies)
    assert docker_api.containers_under(tmp_path) == []
