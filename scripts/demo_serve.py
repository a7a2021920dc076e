"""`make demo`, step 3: serve the demo job's model and classify its test images over HTTP.

    .venv/bin/python -m scripts.demo_serve JOBDIR LOG

Starts `python -m smvision.local serve` on the job directory (its whole output goes to
LOG), POSTs every test image as image/png to /invocations and three of them as one JSON
request with top_k=3, prints a few answers and the accuracy over HTTP next to the one
training reported, then stops the server with SIGTERM. Exits non-zero if anything fails
or the two accuracies differ.
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
from pathlib import Path
from typing import Any

from scripts.show_evaluation import own_lines
from tests.support.server_process import RunningServer, start_server

READY_TIMEOUT_S = 180.0
SHOWN_ANSWERS = 5


def post(
    connection: http.client.HTTPConnection,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    connection.request(
        "POST", "/invocations", body, {"Content-Type": content_type, **(headers or {})}
    )
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        raise SystemExit(f"/invocations answered {response.status}: {answer.decode()}")
    predictions: list[dict[str, Any]] = json.loads(answer)["predictions"]
    return predictions


Answer = dict[str, Any]


def classify(server: RunningServer, files: list[Path]) -> tuple[list[Answer], list[Answer]]:
    """Every file as image/png, then the first three as one JSON request with top_k=3."""
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=60)
    answers = [post(connection, path.read_bytes(), "image/png")[0] for path in files]
    batch = {"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in files[:3]]}
    top3 = post(
        connection,
        json.dumps(batch).encode(),
        "application/json",
        {"X-Amzn-SageMaker-Custom-Attributes": "top_k=3"},
    )
    connection.close()
    return answers, top3


def show_answers(
    files: list[Path], answers: list[Answer], top3: list[Answer], trained: float
) -> float:
    """Print some answers of each kind and the accuracy over HTTP; return it."""
    print(f"Posted the {len(files)} test images one by one as image/png; some answers:")
    step = max(1, len(files) // SHOWN_ANSWERS)
    for path, answer in list(zip(files, answers))[::step]:
        print(f"  {path.parent.name}/{path.name}: {answer['label']} ({answer['probability']:.3f})")
    print("One application/json request of 3 images with top_k=3 (the 3 likeliest classes):")
    for path, answer in zip(files, top3):
        likeliest = ", ".join(f"{label} {p:.3f}" for label, p in answer["probabilities"].items())
        print(f"  {path.parent.name}/{path.name}: {likeliest}")
    correct = sum(1 for path, answer in zip(files, answers) if answer["label"] == path.parent.name)
    accuracy = correct / len(files)
    print(
        f"Accuracy over HTTP: {accuracy:.4f} ({correct}/{len(files)}); "
        f"evaluation.json from training: {trained:.4f}"
    )
    return accuracy


def main(job_dir: Path, log: Path) -> int:
    ml = job_dir / "opt" / "ml"
    files = sorted((ml / "input" / "data" / "test").rglob("*.png"))
    evaluation = json.loads((ml / "output" / "data" / "evaluation.json").read_text())
    trained = evaluation["test"]["accuracy"]

    print(f"\nServing it as an endpoint runs the image (the server's whole output is in {log}):")
    server = start_server(job_dir, log)
    try:
        server.wait_ready(READY_TIMEOUT_S)
        answers, top3 = classify(server, files)
        for line in own_lines(server.log().splitlines()):
            print(f"  {line}")
        accuracy = show_answers(files, answers, top3, trained)
    finally:
        status = server.stop()
    print(f"serve stopped on SIGTERM with exit status {status}")
    return 0 if status == 0 and abs(accuracy - trained) <= 1e-9 else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
