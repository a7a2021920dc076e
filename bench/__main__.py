"""`make bench`: train the jobs, measure serving and training, write RESULTS.md and plots.

python -m bench [--work build/bench] [--out bench] [--rounds 3] [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from bench import (
    accuracy,
    charts,
    inprocess,
    results_page,
    serving,
    training,
    training_runs,
    transfer,
)
from bench.common import ROOT, Store, load_average, machine_description

SERVING_ALGORITHMS = ("svm", "cnn")
STARTUP_ALGORITHMS = ("svm", "rf", "cnn", "resnet50")
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
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one load run")
    args = parser.parse_args(argv)

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
        serving.measure_algorithm(algorithm, job_dirs[algorithm], args.rounds, args.seconds, store)
        loads.append((f"after serving {algorithm}", load_average()))
    phase("in-process CPU per image: the classic pipeline, serve's, int8")
    for algorithm in SERVING_ALGORITHMS:
        inprocess.measure(algorithm, job_dirs[algorithm], serving.payloads(), args.work, store)
    phase("start-up times")
    startups = startup_names()
    for name in startups:
        algorithm, _, runtime = name.partition(" ")
        env = {"SMVISION_KERAS_RUNTIME": runtime} if runtime else None
        serving.measure_startup(name, job_dirs[algorithm], STARTUP_REPEATS, store, env)
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
        serving_algorithms=SERVING_ALGORITHMS,
        startup_algorithms=startups,
        payloads=payloads,
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
    """'svm', 'rf', then the Keras algorithms by runtime: 'cnn tflite', ... (the first
    start on tflite converts the model; later ones read the compile cache in /tmp)."""
    names = ["svm", "rf"]
    names += [
        f"{algorithm} {runtime}" for algorithm in ("cnn", "resnet50") for runtime in KERAS_RUNTIMES
    ]
    return names


if __name__ == "__main__":
    raise SystemExit(main())
