"""`docker run -v JOBDIR/opt/ml:/opt/ml IMAGE train`, the tree laid out by smvision.local,
on scikit-learn's digits: a model, its evaluation, metric lines; a failure that says why."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from smvision.core.metrics import METRIC_DEFINITIONS
from tests.container.engine import Engine
from tests.support.image_jobs import BuiltImage, ContainerJobs, train_in_container

pytestmark = pytest.mark.slow

MODEL_FILES = {"svm": "model.joblib", "cnn": "model.keras"}
MINIMUM_TEST_ACCURACY = {"svm": 0.95, "cnn": 0.5}


@pytest.mark.parametrize("algorithm", ["svm", "cnn"])
def test_train_in_the_image(container_jobs: ContainerJobs, algorithm: str) -> None:
    job, seconds = container_jobs.timed(algorithm)
    print(f"\n{algorithm} trained in the image in {seconds:.1f} s")
    assert job.returncode == 0, job.output[-4000:]
    assert job.failure == ""
    assert job.metadata["algorithm"] == algorithm
    assert job.metadata["class_names"] == [str(d) for d in range(10)]
    assert (job.ml / "model" / MODEL_FILES[algorithm]).is_file()
    evaluation = job.evaluation
    assert evaluation["test"]["count"] == 360
    assert evaluation["test"]["accuracy"] >= MINIMUM_TEST_ACCURACY[algorithm]
    # The toolkit ran our script with the hyperparameters as arguments, and SageMaker's
    # metric regexes find the job's metric lines in its log.
    assert f"train.py --algorithm {algorithm}" in job.output
    metrics = job.metrics()
    assert metrics["test:accuracy"][-1] == pytest.approx(evaluation["test"]["accuracy"], abs=1e-6)
    regexes = {d["Name"]: re.compile(d["Regex"]) for d in METRIC_DEFINITIONS}
    assert regexes["validation:accuracy"].search(job.output)


def test_a_failing_job_leaves_its_reason_and_a_non_zero_exit(
    engine: Engine, image: BuiltImage, digits: Path, tmp_path: Path
) -> None:
    job, _ = train_in_container(
        engine,
        image.tag,
        tmp_path / "job",
        {"train": digits / "train"},
        {"algorithm": "svm", "C": "-3"},
    )
    assert job.returncode != 0, job.output[-3000:]
    failure = job.failure.strip()
    assert failure.startswith("Hyperparameter 'C' has value '-3'; use a number >= "), failure
    assert failure in job.output
    assert not (job.ml / "model" / "metadata.json").exists()


def test_a_bare_run_trains(engine: Engine, image: BuiltImage, digits: Path, tmp_path: Path) -> None:
    """SDK local mode starts the image with no command: its default must be `train`."""
    job, _ = train_in_container(
        engine,
        image.tag,
        tmp_path / "job",
        {"train": digits / "train"},
        {"algorithm": "svm", "image_size": "16", "features": "pixels"},
        command=(),
    )
    assert job.returncode == 0, job.output[-4000:]
    assert json.loads((job.ml / "model" / "metadata.json").read_text())["algorithm"] == "svm"
