"""Adding an algorithm is one module and one table entry: a toy algorithm that lives in
tests/support/toy_algorithm, published through the `smvision.algorithms` entry-point group of a
distribution on PYTHONPATH, trains through `smvision.local train`, serves through `serve`
and is submitted through `python -m launch train` with nothing in src/ or launch/ changed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest

from tests.support.moto_server import (
    BUCKET,
    REGION,
    MotoServer,
    clean_aws,
    settings_flags,
)
from tests.support.server_process import running_server
from tests.support.toy_algorithm.spec import SPEC
from tests.support.training_jobs import run_local_train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PYTHONPATH with an installed-looking distribution whose entry point adds `toy`."""
    site = tmp_path_factory.mktemp("plugin-site")
    info = site / "smvision_toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: smvision-toy-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[smvision.algorithms]\ntoy = tests.support.toy_algorithm.spec:SPEC\n"
    )
    paths = [str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


def table_names(env: dict[str, str]) -> list[str]:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from smvision.schema import specs; print(json.dumps(specs.names()))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=True,
    )
    return list(json.loads(completed.stdout))


def test_nothing_in_the_package_or_the_launchers_names_the_toy() -> None:
    for folder in ("src", "launch"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not re.search(r"\btoy\b", path.read_text(), re.IGNORECASE), path


def test_the_entry_point_adds_a_row_to_the_table(plugin_env: dict[str, str]) -> None:
    assert table_names({}) == ["svm", "rf", "cnn", "resnet50"]
    assert table_names(plugin_env) == ["svm", "rf", "cnn", "resnet50", "toy"]


def test_the_toy_trains_and_serves_like_any_algorithm(
    digits: Path, tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    job_dir = tmp_path / "job"
    channels = {"train": digits / "train", "test": digits / "test"}
    job = run_local_train("toy", channels, job_dir, {"temperature": "0.1"}, env=plugin_env)

    assert job.returncode == 0, job.output[-3000:]
    assert job.metadata["algorithm"] == "toy"
    assert job.metadata["image_size"] == SPEC.image_size
    assert job.metadata["channels"] == 1  # the digits are grey and the spec says "auto"
    assert job.metadata["hyperparameters"]["temperature"] == "0.1"
    test = job.evaluation["test"]
    assert test["accuracy"] > 0.85, test["accuracy"]  # nearest centroid on the digits
    assert job.metrics()["test:accuracy"] == [pytest.approx(test["accuracy"], abs=1e-6)]

    expected = {p["source"]: p["predicted"] for p in test["predictions"]}
    sample = sorted(expected)[::36]
    with running_server(job_dir, env=plugin_env) as server:
        for source in sample:
            request = urllib.request.Request(
                f"{server.url}/invocations",
                data=(digits / "test" / source).read_bytes(),
                headers={"Content-Type": "image/png"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
            assert answer["predictions"][0]["label"] == expected[source], source
        assert "Serving the toy model" in server.log()
        assert f"{SPEC.serve_workers} worker(s)" in server.log()


def test_the_launcher_submits_the_toy_with_its_table_facts(
    moto_server: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plugin_env: dict[str, str],
) -> None:
    aws = clean_aws(moto_server, tmp_path, monkeypatch)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch",
            "train",
            *settings_flags(),
            "--algorithm",
            "toy",
            "--train",
            f"s3://{BUCKET}/digits/train",
            "--hp",
            "temperature=-1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **plugin_env},
    )
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "Hyperparameter 'temperature' has value '-1'" in bad.stderr
    assert aws.operations() == []

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch",
            "train",
            *settings_flags(),
            "--algorithm",
            "toy",
            "--train",
            f"s3://{BUCKET}/digits/train",
            "--hp",
            "temperature=0.1",
            "--job-name",
            "toy-1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        env={**os.environ, **plugin_env},
    )

    assert run.returncode == 0, run.stdout
    described = (
        boto3.session.Session(region_name=REGION)
        .client("sagemaker")
        .describe_training_job(TrainingJobName="toy-1")
    )
    assert described["HyperParameters"] == {"algorithm": "toy", "temperature": "0.1"}
    assert described["ResourceConfig"]["InstanceType"] == SPEC.training_instance_type
