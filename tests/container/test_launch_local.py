"""`python -m launch train --local` and `python -m launch deploy --local`, as a user with
Docker runs them: the real CLI as a subprocess, SDK local mode, the image, real images."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.container.engine import Engine
from tests.support.image_jobs import BuiltImage, launch
from tests.support.server_process import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TRAIN_TIMEOUT_S = 900
READY_TIMEOUT_S = 240
STOP_TIMEOUT_S = 90
PROBABILITY_TOLERANCE = 1e-5


def train_local(
    env: dict[str, str], image: str, output_dir: Path, train: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        launch(
            "train",
            "--local",
            "--algorithm",
            "svm",
            "--train",
            str(train),
            "--image-uri",
            image,
            "--output-dir",
            str(output_dir),
            "--hp",
            "image_size=32",
            *extra,
        ),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=TRAIN_TIMEOUT_S,
    )


def test_train_local_then_deploy_local(
    laptop: dict[str, str], docker_api: Engine, image: BuiltImage, digits: Path, tmp_path: Path
) -> None:
    output_dir = tmp_path / "job"
    trained = train_local(
        laptop,
        image.tag,
        output_dir,
        digits / "train",
        "--validation",
        str(digits / "validation"),
        "--test",
        str(digits / "test"),
    )
    assert trained.returncode == 0, trained.stdout[-4000:] + trained.stderr[-4000:]
    model_data = output_dir / "compressed_artifacts" / "model.tar.gz"
    assert f"Model artifact: {model_data}" in trained.stdout
    evaluation = json.loads(
        (output_dir / "artifacts" / "output" / "data" / "evaluation.json").read_text()
    )
    assert evaluation["test"]["accuracy"] >= 0.95
    assert docker_api.containers_under(output_dir) == []

    port = free_port()
    deploy = subprocess.Popen(
        launch(
            "deploy",
            "--local",
            "--model-data",
            str(model_data),
            "--image-uri",
            image.tag,
            "--port",
            str(port),
            "--endpoint-name",
            "smvision-local-test",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=laptop,
        cwd=ROOT,
    )
    output = LineReader(deploy)
    try:
        printed = output.wait_for("is InService at", READY_TIMEOUT_S)
        url = f"http://localhost:{port}"
        assert f"{url}/invocations" in printed
        with httpx.Client(base_url=url, timeout=60) as client:
            for entry in evaluation["test"]["predictions"][::24]:
                response = client.post(
                    "/invocations",
                    content=(digits / "test" / entry["source"]).read_bytes(),
                    headers={"Content-Type": "image/png"},
                )
                assert response.status_code == 200, response.text
                (prediction,) = response.json()["predictions"]
                assert prediction["label"] == entry["predicted"]
                assert prediction["probability"] == pytest.approx(
                    entry["probability"], abs=PROBABILITY_TOLERANCE
                )
        deploy.send_signal(signal.SIGINT)
        assert deploy.wait(timeout=STOP_TIMEOUT_S) == 0
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.wait(timeout=30)
    everything = output.everything()
    assert "Local endpoint smvision-local-test stopped and removed." in everything, everything[
        -3000:
    ]
    assert docker_api.containers_under(tmp_path) == []
    assert not list((tmp_path / "tmp").iterdir())  # its scratch folder is gone too


def test_train_local_reports_a_job_that_fails_in_the_container(
    laptop: dict[str, str], image: BuiltImage, digits: Path, tmp_path: Path
) -> None:
    one_class = tmp_path / "one-class"
    shutil.copytree(digits / "train" / "3", one_class / "3")
    failed = train_local(laptop, image.tag, tmp_path / "job", one_class)
    assert failed.returncode == 1, failed.stdout[-3000:]
    assert (
        "error: The local training job failed. Its reason: Channel 'train' has a single "
        "class ('3')" in failed.stderr
    ), failed.stderr[-3000:]


class LineReader:
    """Every line a process prints, collected by a thread as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.process.poll() is not None and not self.thread.is_alive():
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        pytest.fail(
            f"'{text}' never printed (exit status {self.process.poll()}):\n"
            f"{''.join(self.seen)[-6000:]}"
        )

    def everything(self) -> str:
        """All output, once the process has exited and its output is read to the end."""
        self.thread.join(timeout=30)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)
