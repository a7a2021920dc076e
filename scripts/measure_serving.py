"""Latency, throughput and memory of the real `serve` over a trained job directory.

    .venv/bin/python scripts/measure_serving.py JOBDIR [JOBDIR ...] [--requests 400]

For each job: starts `serve` (python -m smvision.local serve), posts a digit PNG from the
job's test channel and a photo JPEG (scikit-learn's china.jpg) at concurrency 1 and 8 over
keep-alive connections, and prints p50/p99 latency, requests/s, the in-process
decode+predict time of the same payload (the floor any server adds to), and each
worker's resident memory from /proc. The client runs on the same machine and its
threads compete with the server for the cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from smvision import algorithms
from smvision.core.artifacts import read_metadata
from smvision.data import images
from tests.support.server_process import resident_mib, running_server

WARM_UP_REQUESTS = 20


def payloads(job_dir: Path) -> dict[str, tuple[bytes, str]]:
    from sklearn.datasets import load_sample_image

    ml = job_dir / "opt" / "ml"
    digit = sorted((ml / "input" / "data" / "test").rglob("*.png"))[0]
    photo = cv2.cvtColor(load_sample_image("china.jpg"), cv2.COLOR_RGB2BGR)
    ok, jpeg = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return {
        f"digit PNG ({digit.stat().st_size} B)": (digit.read_bytes(), "image/png"),
        f"photo JPEG 640x427 ({len(jpeg)} B)": (jpeg.tobytes(), "image/jpeg"),
    }


def in_process_ms(job_dir: Path, body: bytes, repeats: int = 200) -> float:
    """Median time of decode_image + predict_proba for one payload, in this process."""
    model_dir = job_dir / "opt" / "ml" / "model"
    algorithm = algorithms.get(read_metadata(model_dir)["algorithm"]).load(model_dir)
    for _ in range(5):
        algorithm.predict_proba([images.decode_image(body)])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        algorithm.predict_proba([images.decode_image(body)])
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def load(
    port: int, body: bytes, content_type: str, concurrency: int, total: int
) -> dict[str, float]:
    """`total` POSTs spread over `concurrency` threads, each with its own connection."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_thread = total // concurrency
    headers = {"Content-Type": content_type}

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for _ in range(WARM_UP_REQUESTS // concurrency + 1):
            connection.request("POST", "/invocations", body, headers)
            connection.getresponse().read()
        barrier.wait()
        for _ in range(per_thread):
            started = time.perf_counter()
            connection.request("POST", "/invocations", body, headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                with lock:
                    errors.append(str(response.status))
        connection.close()
        with lock:
            latencies.extend(mine)

    barrier = threading.Barrier(concurrency + 1)
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {sorted(set(errors))}")
    ordered = np.sort(np.array(latencies)) * 1000
    return {
        "p50_ms": float(np.percentile(ordered, 50)),
        "p99_ms": float(np.percentile(ordered, 99)),
        "requests_per_s": len(latencies) / elapsed,
    }


def measure(job_dir: Path, total: int) -> dict[str, Any]:
    metadata = read_metadata(job_dir / "opt" / "ml" / "model")
    results: dict[str, Any] = {"algorithm": metadata["algorithm"], "payloads": {}}
    bodies = payloads(job_dir)
    for name, (body, _) in bodies.items():
        results["payloads"][name] = {"in_process_ms": in_process_ms(job_dir, body)}
    with running_server(job_dir) as server:
        port = int(server.url.rsplit(":", 1)[1])
        for name, (body, content_type) in bodies.items():
            for concurrency in (1, 8):
                results["payloads"][name][f"concurrency_{concurrency}"] = load(
                    port, body, content_type, concurrency, total
                )
        results["worker_rss_mib"] = [round(resident_mib(pid), 1) for pid in server.worker_pids()]
        results["master_rss_mib"] = round(resident_mib(server.server_pids()[0]), 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job_dirs", type=Path, nargs="+")
    parser.add_argument("--requests", type=int, default=400, help="per payload and concurrency")
    args = parser.parse_args()
    for job_dir in args.job_dirs:
        result = measure(job_dir, args.requests)
        print(
            f"\n{result['algorithm']} ({job_dir}): workers' RSS {result['worker_rss_mib']} MiB, "
            f"master {result['master_rss_mib']} MiB"
        )
        header = ("payload", "in-process", "c", "p50 ms", "p99 ms", "req/s")
        print("  {:<32} {:>10} {:>2} {:>8} {:>8} {:>8}".format(*header))
        for name, figures in result["payloads"].items():
            for concurrency in (1, 8):
                row = figures[f"concurrency_{concurrency}"]
                print(
                    f"  {name:<32} {figures['in_process_ms']:>8.2f}ms {concurrency:>2} "
                    f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['requests_per_s']:>8.0f}"
                )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
