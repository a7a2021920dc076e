"""The rf's forest on four engines: scikit-learn, ONNX Runtime (skl2onnx, what `train`
writes and `serve` runs), Treelite's interpreter (GTIL) and Treelite compiled to C by
TL2cgen.

Each engine predicts the job's test split, else its validation split (agreement: the
largest difference from scikit-learn's probabilities) and then one digit PNG at a time,
decoded and its features extracted as serve does, in a loop: wall-clock p50 and CPU per
image, on one thread.
TL2cgen compiles the forest with gcc first, which took 22 minutes for 300 trees on the
bench machine (bench/NOTES.md): it runs only with --tl2cgen or SMVISION_BENCH_TL2CGEN=1.

    python -m bench.tree_engines JOBDIR [--tl2cgen]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.common import Store, key
from smvision.algorithms.classical import ClassicalAlgorithm
from smvision.algorithms.rf import RandomForestAlgorithm
from smvision.core.artifacts import read_metadata
from smvision.data import dataset, images
from smvision.model import runtimes

SECONDS = 2.0
Predict = Callable[[np.ndarray], np.ndarray]


def engines(model: ClassicalAlgorithm, tl2cgen: bool, scratch: Path) -> dict[str, Predict]:
    """Feature rows (float32) -> probabilities, by engine; each on one thread."""
    import treelite

    pipeline = model.pipeline
    assert pipeline is not None
    forest = pipeline[-1]
    content, _ = model.to_onnx()
    onnx = runtimes.OnnxRuntime(content, threads=1)
    trees = treelite.sklearn.import_model(forest)
    found: dict[str, Predict] = {
        "scikit-learn": pipeline.predict_proba,
        "ONNX Runtime": onnx.predict,
        "Treelite GTIL": lambda x: treelite.gtil.predict(trees, x, nthread=1).reshape(len(x), -1),
    }
    if tl2cgen:
        import tl2cgen as compiler

        library = scratch / "forest.so"
        started = time.perf_counter()
        compiler.export_lib(trees, toolchain="gcc", libpath=str(library), nthread=os.cpu_count())
        print(f"TL2cgen compiled the forest in {time.perf_counter() - started:.0f} s", flush=True)
        predictor = compiler.Predictor(str(library), nthread=1)
        found["TL2cgen"] = lambda x: predictor.predict(compiler.DMatrix(x)).reshape(len(x), -1)
    return found


def measure(job_dir: Path, store: Store, tl2cgen: bool = False) -> None:
    model_dir = job_dir / "opt" / "ml" / "model"
    model = RandomForestAlgorithm.load(model_dir)
    metadata = read_metadata(model_dir)
    decode = images.ModelInput(model.image_size, model.channels, True)
    data = job_dir / "opt" / "ml" / "input" / "data"
    split = "test" if (data / "test").is_dir() else "validation"
    test_dir = data / split
    test = dataset.load(
        dataset.list_channel(test_dir, split),
        metadata["class_names"],
        model.image_size,
        model.channels,
        split,
        None,
    )
    rows = model.features_of(test.all_images())
    digit = sorted(test_dir.rglob("*.png"))[0].read_bytes()
    with tempfile.TemporaryDirectory(prefix="smvision-trees-") as scratch:
        found = engines(model, tl2cgen, Path(scratch))
        expected = found["scikit-learn"](rows)
        for name, predict in found.items():
            difference = float(np.abs(predict(rows) - expected).max())
            store.add(key("rf engines", name, "max difference"), "probability", difference)

            def one(predict: Predict = predict) -> object:
                return predict(model.features_of([decode.from_file(digit)]))

            p50, cpu = _one_at_a_time(one)
            store.add(key("rf engines", name, "p50"), "ms", p50)
            store.add(key("rf engines", name, "cpu"), "ms per image", cpu)


def _one_at_a_time(run: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock p50 (ms) and CPU ms per call of `run`, called for SECONDS."""
    for _ in range(3):
        run()
    latencies = []
    cpu_started = time.process_time()
    deadline = time.perf_counter() + SECONDS
    while (started := time.perf_counter()) < deadline:
        run()
        latencies.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_started) / len(latencies)
    return float(np.percentile(latencies, 50)) * 1000, cpu * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tree_engines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--tl2cgen", action="store_true", help="also compile with TL2cgen")
    args = parser.parse_args(argv)
    store = Store()
    measure(args.job_dir, store, args.tl2cgen)
    for name, figure in store.items():
        print(f"{name}: {figure.median:.4g} {figure.unit}")


if __name__ == "__main__":
    main()
