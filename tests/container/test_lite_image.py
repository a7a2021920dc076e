"""The lite serving image (RUNTIME=lite: no TensorFlow, no scikit-learn) serves an svm from
the ONNX that train compiled it to, with the answers the job's evaluation wrote."""

from __future__ import annotations

import httpx
import pytest

from tests.container.engine import Engine
from tests.support.image_jobs import BuiltImage, ContainerJobs, run_in_image, served_model
from tests.support.serving import PROBABILITY_TOLERANCE

pytestmark = [pytest.mark.container, pytest.mark.slow]


def test_the_lite_image_has_neither_tensorflow_nor_scikit_learn(
    engine: Engine, lite_image: BuiltImage
) -> None:
    script = (
        "for module in tensorflow keras sklearn; do "
        'python -c "import $module" 2>/dev/null && echo "$module is there"; done; '
        "python -c 'import onnxruntime, cv2, smvision.serving.main' && echo runtimes ok; "
        "command -v train || echo no train"
    )
    completed = run_in_image(engine, lite_image.tag, script)
    assert completed.stdout.splitlines() == ["runtimes ok", "no train"], completed


def test_the_lite_image_serves_an_svm_as_the_job_evaluated_it(
    engine: Engine, lite_image: BuiltImage, container_jobs: ContainerJobs
) -> None:
    job = container_jobs("svm")  # trained in the full image, which compiled it to ONNX
    assert job.returncode == 0, job.output[-3000:]
    assert (job.ml / "model" / "model.onnx").is_file()
    with served_model(engine, lite_image.tag, job.ml / "model") as served:
        assert "its onnx export, float32" in engine.logs(served.name)
        test_dir = job.ml / "input" / "data" / "test"
        with httpx.Client(base_url=served.url, timeout=60) as client:
            for entry in job.evaluation["test"]["predictions"]:
                body = (test_dir / entry["source"]).read_bytes()
                response = client.post(
                    "/invocations", content=body, headers={"Content-Type": "image/png"}
                )
                assert response.status_code == 200, response.text
                (prediction,) = response.json()["predictions"]
                assert prediction["label"] == entry["predicted"], entry["source"]
                assert prediction["probability"] == pytest.approx(
                    entry["probability"], abs=PROBABILITY_TOLERANCE
                ), entry["source"]
