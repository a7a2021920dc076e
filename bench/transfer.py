"""Transfer learning on real photos with genuine ImageNet weights (issue 21).

    python -m bench.transfer [--work build/bench-transfer] [--part training|serving|all]

The photos: scikit-image's subset of Labeled Faces in the Wild (smvision.local.samples
faces: 100 faces and 100 non-faces, two classes, split 60/20/20), the one two-class set of
real photographs that a PyPI package ships. The weights: Keras' ResNet50 ImageNet file
(`make weights`), given to every job in its 'pretrained' channel. Each job is
`smvision.local train` with its defaults but for the named hyperparameters, timed from
start to exit with the process tree's peak memory (local compare's runs.run_job).

training: resnet50 with frozen_cache false (every epoch pushes every image through the
frozen base: the path before) and true (the frozen layers once per image), alternating;
the head phase's time from the log; resnet50 with 1 and 4 augmented views (2, the
default, is the frozen_cache true job's); svm on
deep features at image_size auto (224) and at 64 (what auto chose before).
serving: the resnet50 model as serve runs it, one image (p50) and batches of 32, on
TensorFlow (Keras), compiled (TFLite, ONNX Runtime) and as an int8 export, with the int8
export's test accuracy against the Keras model's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from bench.common import ROOT, Store, key, load_average
from smvision.comparison.stats import wilson_interval
from smvision.local.compare.runs import run_job
from smvision.local.samples import SETS, export

ROUNDS = 2
# Besides the default (2), which the frozen_cache true jobs run.
VIEWS = (1, 4)
KERAS_RUNTIMES = ("tensorflow", "tflite", "onnx")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*", re.M)


def photos(work: Path) -> dict[str, Path]:
    """The faces as class folders, and the pretrained channel holding the ImageNet file."""
    from scripts import imagenet_weights

    data = work / "faces"
    if not data.exists():
        export(SETS["faces"](), data)
    pretrained = work / "pretrained"
    pretrained.mkdir(parents=True, exist_ok=True)
    weights = imagenet_weights.ensure("notop")
    link = pretrained / weights.name
    if not link.exists():
        link.symlink_to(weights)
    return {
        "train": data / "train",
        "validation": data / "validation",
        "test": data / "test",
        "pretrained": pretrained,
    }


def train(
    name: str,
    algorithm: str,
    channels: Mapping[str, Path],
    hps: Mapping[str, str],
    job_dir: Path,
    store: Store,
) -> Path:
    """One job: wall time, peak memory, test accuracy and its interval, into the store."""
    if job_dir.exists():
        shutil.rmtree(job_dir)
    outcome = run_job(algorithm, channels, hps, job_dir)
    if outcome.returncode != 0:
        tail = outcome.log_file.read_text()[-3000:]
        raise RuntimeError(f"{name}: the job failed ({outcome.returncode}):\n{tail}")
    evaluation = json.loads((outcome.output_data_dir / "evaluation.json").read_text())
    test = evaluation["test"]
    correct = round(test["accuracy"] * test["count"])
    low, high = wilson_interval(correct, test["count"])
    store.add(key("transfer", name, "wall"), "s", outcome.wall_seconds)
    store.add(key("transfer", name, "peak memory"), "MB", outcome.peak_memory_bytes / 1e6)
    store.add(key("transfer", name, "accuracy"), "test accuracy", test["accuracy"])
    store.add(key("transfer", name, "accuracy low"), "test accuracy", low)
    store.add(key("transfer", name, "accuracy high"), "test accuracy", high)
    store.add(key("transfer", name, "test images"), "images", test["count"])
    head = head_phase_seconds(outcome.log_file.read_text())
    if head is not None:
        store.add(key("transfer", name, "head phase"), "s", head)
    return job_dir


def head_phase_seconds(log: str) -> float | None:
    """From the starting weights' line to the head phase's last epoch line."""
    start = end = None
    for match in _TIME.finditer(log):
        line = match.group(0)
        if "ResNet50 starting weights" in line:
            start = _seconds(match.group(1))
        elif "(head " in line:
            end = _seconds(match.group(1))
    return None if start is None or end is None else end - start


def _seconds(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def measure_training(work: Path, store: Store, rounds: int = ROUNDS) -> None:
    channels = photos(work)
    jobs = work / "jobs"
    for index in range(rounds):
        for cached in ("false", "true"):
            name = f"resnet50 frozen_cache {cached}"
            train(
                name,
                "resnet50",
                channels,
                {"frozen_cache": cached},
                jobs / f"{name}-{index}",
                store,
            )
    for name in ("wall", "head phase"):
        before = store[key("transfer", "resnet50 frozen_cache false", name)].values
        after = store[key("transfer", "resnet50 frozen_cache true", name)].values
        for b, a in zip(before, after):
            store.add(key("transfer", "speed-up", name), "before / after", b / a)
    for views in VIEWS:
        name = f"resnet50 augmented_views {views}"
        train(name, "resnet50", channels, {"augmented_views": str(views)}, jobs / name, store)
    for size in ("auto", "64"):
        name = f"svm features=deep image_size {size}"
        hps = {"features": "deep", "image_size": size}
        train(name, "svm", channels, hps, jobs / name, store)


def keras_job(work: Path) -> Path:
    """The last resnet50 job trained with the cache (the model the serving figures use)."""
    found = sorted((work / "jobs").glob("resnet50 frozen_cache true-*"))
    if not found:
        raise RuntimeError(f"No resnet50 job in {work / 'jobs'}: run the training part first.")
    return found[-1]


def latency(job_dir: Path, runtime: str | None, images: Path) -> dict[str, float]:
    """p50 of one image and images/s in batches of 32, as a serve worker answers them."""
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(job_dir / "opt" / "ml")}
    if runtime is not None:
        env["SMVISION_KERAS_RUNTIME"] = runtime
    model_dir = job_dir / "opt" / "ml" / "model"
    command = [sys.executable, "-m", "smvision.local.compare.latency", str(model_dir), str(images)]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if completed.returncode != 0:
        raise RuntimeError(f"latency ({runtime}) failed:\n{completed.stderr[-3000:]}")
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def int8_export(job_dir: Path, fmt: str) -> tuple[Path, dict[str, object]]:
    """A copy of the job with its model exported as int8 `fmt`; export.json's record."""
    from smvision.local import cli

    copy = job_dir.with_name(f"{job_dir.name}-int8-{fmt}")
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(job_dir, copy, symlinks=True)
    command = ["export", "--job-dir", str(copy), "--format", fmt, "--quantize", "int8"]
    if cli.main(command) != 0:
        raise RuntimeError(f"exporting {copy} as int8 {fmt} failed")
    record: dict[str, object] = json.loads((copy / "opt/ml/model/export.json").read_text())
    return copy, record


def measure_serving(work: Path, store: Store, runtimes: Sequence[str] = KERAS_RUNTIMES) -> None:
    job_dir = keras_job(work)
    images = photos(work)["test"]
    for runtime in runtimes:
        store.save(work / "results-so-far.json")  # a later failure keeps what ran
        found = latency(job_dir, runtime, images)
        store.add(key("transfer", "serving", runtime, "p50"), "ms", found["p50_ms"])
        store.add(
            key("transfer", "serving", runtime, "batch32"),
            "images/s",
            found["batch32_images_per_second"],
        )
    for fmt in ("tflite", "onnx"):
        copy, record = int8_export(job_dir, fmt)
        evaluation = record["evaluation"]
        assert isinstance(evaluation, dict)
        name = f"int8 {fmt}"
        store.add(
            key("transfer", name, "float32 accuracy"),
            "test accuracy",
            evaluation["original_accuracy"],
        )
        store.add(
            key("transfer", name, "int8 accuracy"), "test accuracy", evaluation["export_accuracy"]
        )
        store.add(
            key("transfer", name, "kept"),
            "1 kept, 0 refused",
            float(record.get("kept", True) is True),
        )
        found = latency(copy, None, images)
        store.add(key("transfer", "serving", name, "p50"), "ms", found["p50_ms"])
        store.add(
            key("transfer", "serving", name, "batch32"),
            "images/s",
            found["batch32_images_per_second"],
        )


def measure(work: Path, store: Store) -> None:
    measure_training(work, store)
    measure_serving(work, store)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transfer", description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench-transfer")
    parser.add_argument("--part", choices=("training", "serving", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="resnet50 before/after pairs")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = args.work / "results.json"
    store = Store.load(results) if results.exists() else Store()
    print(f"load average at start {load_average()}", flush=True)
    if args.part in ("training", "all"):
        measure_training(args.work, store, args.rounds)
        store.save(results)
    if args.part in ("serving", "all"):
        measure_serving(args.work, store)
        store.save(results)
    print(f"load average at end {load_average()}", flush=True)
    from bench.results_page import transfer_tables

    print("\n".join(transfer_tables(store)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
