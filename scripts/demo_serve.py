"""`make demo`, serving step: serve the demo job's model and classify its test images over HTTP.

    .venv/bin/python -m scripts.demo_serve build/demo/job

Starts `python -m smvision.local serve` on the job directory, POSTs every test image as
image/png to /invocations, prints a few answers and the accuracy over HTTP next to the
one training reported, then stops the server with SIGTERM. Exits non-zero if anything
fails or the two accuracies differ.
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
from pathlib import Path
from typing import Any

from tests.server_process import running_server


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


def main(job_dir: Path) -> int:
    ml = job_dir / "opt" / "ml"
    files = sorted((ml / "input" / "data" / "test").rglob("*.png"))
    trained = json.loads((ml / "output" / "data" / "evaluation.json").read_text())["test"][
        "accuracy"
    ]
    with running_server(job_dir) as server:
        print(
            f"\nserve is up at {server.url} with {len(server.worker_pids())} worker(s); "
            f"posting {len(files)} test images as image/png"
        )
        connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=60)
        answers = [post(connection, path.read_bytes(), "image/png")[0] for path in files]
        batch = {
            "instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in files[:3]]
        }
        top3 = post(
            connection,
            json.dumps(batch).encode(),
            "application/json",
            {"X-Amzn-SageMaker-Custom-Attributes": "top_k=3"},
        )
        connection.close()
        server.stop()
    print(f"serve stopped on SIGTERM with exit status {server.process.returncode}")

    for path, answer in list(zip(files, answers))[::72]:
        print(f"  {path.parent.name}/{path.name}: {answer['label']} ({answer['probability']:.3f})")
    print(
        f"  one JSON request of 3 images with top_k=3: "
        f"{json.dumps([p['probabilities'] for p in top3])[:160]}..."
    )
    correct = sum(answer["label"] == path.parent.name for path, answer in zip(files, answers))
    accuracy = correct / len(files)
    print(
        f"Accuracy over HTTP: {accuracy:.4f} ({correct}/{len(files)}); "
        f"evaluation.json from training: {trained:.4f}"
    )
    if server.process.returncode != 0 or abs(accuracy - trained) > 1e-9:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
