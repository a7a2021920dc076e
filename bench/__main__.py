"""`make bench`: train the jobs, measure serving and training, write RESULTS.md and plots.

python -m bench [--work build/bench] [--out bench] [--rounds 3] [--seconds 2] [--no-image]

Needs wrk (`apt-get install -y wrk`), the load generator; and for the lite image's size,
podman (scripts/podman.sh), unless --no-image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import (
    accuracy,
    charts,
    inprocess,
    lite_image,
    loadgen,
    results_page,
    serving,
    training,
    training_runs,
    transfer,
    tree_engines,
)
from bench.common import ROOT, Store, load_average, machine_description
from smvision.schema import specs
from smvision.serving import models

SERVING_ALGORITHMS = ("svm", "rf", "cnn", "resnet50")
STARTUP_ALGORITHMS = ("svm", "rf", "cnn", "resnet50")
# resnet50 answers a batch of 32 in seconds: its load runs are this many times longer, so
# that each holds many answers.
LONGER_RUNS = {"resnet50": 5}
# The classic pipeline against serve's, in-process (resnet50's int8 export would take long).
INPROCESS_ALGORITHMS = ("svm", "rf", "cnn")
# How serve runs a Keras model (SMVISION_KERAS_RUNTIME): tflite is the default of both;
# tensorflow is what serve did before (the "before" start-up).
KERAS_RUNTIMES = ("tflite", "xla", "tensorflow")
STARTUP_REPEATS = 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "build" / "bench",
        help="scratch directory, emptied first",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench",
        help="where RESULTS.md, results.json and the plots go",
    )
    parser.add_argument("--rounds", type=int, default=3, help="repeats of every serving figure")
    parser.add_argument(
        "--seconds", type=int, default=2, help="length of one load run (whole seconds: wrk's)"
    )
    parser.add_argument(
        "--no-image", action="store_true", help="do not build the lite image to measure it"
    )
    args = parser.parse_args(argv)
    try:
        loadgen.wrk_path()
    except loadgen.LoadError as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2

    started = time.monotonic()
    loads = [("at start", load_average())]
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    store = Store()

    def phase(name: str) -> None:
        store.save(args.work / "results-so-far.json")  # a later failure keeps what ran
        print(
            f"[{time.monotonic() - started:6.0f} s] {name} (load average {load_average()})",
            flush=True,
        )

    phase("exporting the digits and training svm, rf, cnn, resnet50")
    digits = training_runs.digits(args.work / "digits")
    small = training_runs.subset(digits, args.work / "digits-small")
    job_dirs: dict[str, Path] = {}
    for algorithm in STARTUP_ALGORITHMS:
        data = small if algorithm == "resnet50" else digits
        job_dirs[algorithm] = args.work / f"job-{algorithm}"
        _, seconds = training_runs.train(
            algorithm, training_runs.channels(data), job_dirs[algorithm]
        )
        store.add(f"{algorithm}/training job", "s", seconds)

    for algorithm in SERVING_ALGORITHMS:
        phase(f"serving {algorithm}: floor, serve and reference at c={serving.CONCURRENCIES}")
        seconds = args.seconds * LONGER_RUNS.get(algorithm, 1)
        serving.measure_algorithm(algorithm, job_dirs[algorithm], args.rounds, seconds, store)
        loads.append((f"after serving {algorithm}", load_average()))
    phase("the rf's forest on scikit-learn, ONNX Runtime and Treelite")
    tree_engines.measure(job_dirs["rf"], store, os.environ.get("SMVISION_BENCH_TL2CGEN") == "1")
    phase("in-process CPU per image: the classic pipeline, serve's, int8")
    for algorithm in INPROCESS_ALGORITHMS:
        inprocess.measure(algorithm, job_dirs[algorithm], serving.payloads(), args.work, store)
    phase("start-up times")
    startups = startup_names()
    for name in startups:
        algorithm, _, variant = name.partition(" ")
        job_dir, env = startup_job(job_dirs[algorithm], variant, args.work)
        serving.measure_startup(name, job_dir, STARTUP_REPEATS, store, env)
    if not args.no_image:
        phase("the lite image (RUNTIME=lite): built if missing, its size")
        lite_image.measure(store, args.work)
    phase("accuracy on photos: the JPEG decode rule on and off, int8 against float32")
    accuracy.measure(args.work, store)
    phase("transfer learning on photos: resnet50 with and without the frozen cache, served")
    transfer.measure(args.work / "transfer", store)
    phase("HOG feature extraction")
    store.merge(training.feature_extraction(digits))
    phase("the cost of each feature kind")
    store.merge(training.feature_costs())
    phase("cnn input pipeline against model.fit")
    store.merge(training.cnn_pipeline(digits, args.work))
    phase("cnn input pipeline against model.fit, augmentation on")
    store.merge(training.cnn_pipeline(digits, args.work, augment=True))
    phase("cnn streaming its images (decoded cache, decoded as read) against in memory")
    store.merge(training.cnn_streaming(args.work))
    loads.append(("at end", load_average()))

    payloads = [payload.name for payload in serving.payloads()]
    run = results_page.RunContext(
        machine=machine_description(),
        load_averages=loads,
        wall_s=time.monotonic() - started,
        cores=len(os.sched_getaffinity(0)),
        rounds=args.rounds,
        seconds=args.seconds,
        resnet50_seconds=args.seconds * LONGER_RUNS["resnet50"],
        serving_algorithms=SERVING_ALGORITHMS,
        inprocess_algorithms=INPROCESS_ALGORITHMS,
        startup_algorithms=startups,
        payloads=payloads,
        resnet50_runtime=models.resolved_keras_runtime(specs.get("resnet50"), "auto"),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    store.save(args.out / "results.json")
    for algorithm in SERVING_ALGORITHMS:
        charts.serving(store, algorithm, payloads, args.out / f"serving_{algorithm}.png")
    charts.ratios(store, SERVING_ALGORITHMS, payloads, args.out / "ratios.png")
    charts.training(store, args.out / "training.png")
    (args.out / "RESULTS.md").write_text(results_page.render(store, run))
    phase(f"wrote {args.out / 'RESULTS.md'}")
    return 0


def startup_names() -> list[str]:
    """'svm', 'rf' (their ONNX, as train compiled them) and 'svm scikit-learn', 'rf
    scikit-learn' (the trained pipeline, as before); then the Keras algorithms by runtime:
    'cnn tflite', ..., 'resnet50 tflite', ... (the first start on tflite converts the model;
    later ones read the compile cache in /tmp), and 'cnn lite' (its TFLite export, what
    the lite image runs)."""
    names = ["svm", "rf", "svm scikit-learn", "rf scikit-learn", "cnn lite"]
    names += [f"cnn {runtime}" for runtime in KERAS_RUNTIMES]
    names += [f"resnet50 {runtime}" for runtime in KERAS_RUNTIMES]
    return names


def startup_job(job_dir: Path, variant: str, work: Path) -> tuple[Path, dict[str, str] | None]:
    """The job and the environment `serve` starts with for one start-up variant."""
    if variant == "scikit-learn":
        return job_dir, {"SMVISION_SERVE_FORMAT": "trained"}
    if variant == "lite":
        return inprocess.exported_copy(job_dir, work, "tflite", "float32"), None
    if variant:
        return job_dir, {"SMVISION_KERAS_RUNTIME": variant}
    return job_dir, None


if __name__ == "__main__":
    raise SystemExit(main())
