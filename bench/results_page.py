"""bench/RESULTS.md from the figures of one run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import Figure, Store, key
from bench.serving import CONCURRENCIES, SERVERS

FLOOR_TARGET = 1.15
BUSY_TARGET = 1.8  # of the machine's 2 cores, at c=8
LIMIT_TARGET = 0.9  # serve's req/s over (busy cores / in-process CPU s per request), at c=8
RF_P50_MS = 2.0  # rf, one digit PNG, c=1
AGREEMENT = 1e-5  # compiled trees against scikit-learn
# Judged on the slowest start: a new instance's (resnet50 tflite's first start converts the
# network; the next ones read the compile cache in /tmp).
RUNTIME_NAMES = {
    "tflite": "TFLite, compiled at start",
    "onnx": "ONNX Runtime, compiled at start",
    "tensorflow": "TensorFlow",
    "xla": "XLA",
}
STARTUP_TARGETS_S = {"svm": 2.0, "rf": 2.0, "cnn lite": 1.0, "resnet50 tflite": 8.0}
INT8_POINTS = 1.0
PIPELINE_TARGET = 0.9
BUSY_LOAD = 1.0
TRANSFER_SPEED_UP = 3.0


@dataclass(frozen=True)
class RunContext:
    machine: list[str]
    load_averages: list[tuple[str, str]]  # (phase, "1 / 5 / 15 min")
    wall_s: float
    cores: int
    rounds: int
    seconds: float
    resnet50_seconds: float
    serving_algorithms: Sequence[str]
    inprocess_algorithms: Sequence[str]
    startup_algorithms: Sequence[str]
    payloads: Sequence[str]
    # What serve ran resnet50 on in this run (the algorithm table's default then).
    resnet50_runtime: str = "tflite"


def spread(figure: Figure, digits: int = 3) -> str:
    """'median (min-max)', or the value alone when there is one."""
    if len(figure.values) == 1:
        return f"{figure.median:.{digits}g}"
    return f"{figure.median:.{digits}g} ({figure.low:.{digits}g}-{figure.high:.{digits}g})"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def targets(store: Store, run: RunContext) -> list[str]:
    lines = ["| target | case | median (min-max) over rounds | |", "|---|---|---|---|"]

    def row(target: str, case: str, figure: Figure, ok: bool, digits: int = 3) -> None:
        lines.append(f"| {target} | {case} | {spread(figure, digits)} | {_met(ok)} |")

    # The serving targets are on photos; the digit PNG (nearly free to decode, and 0.3 ms
    # for an rf) shows what HTTP itself costs a request (bench/NOTES.md).
    photos = [payload for payload in run.payloads if payload.endswith(".jpg")]
    for algorithm in run.serving_algorithms:
        for payload in photos:
            case = f"{algorithm}, {payload}"
            busy = store[key(algorithm, payload, "serve", "c8", "busy")]
            row(
                f"c=8: serve keeps >= {BUSY_TARGET} cores busy",
                case,
                busy,
                busy.median >= BUSY_TARGET,
            )
            limit = store[key(algorithm, payload, "c8", "limit ratio")]
            row(
                f"c=8: serve req/s >= {LIMIT_TARGET} x busy cores / in-process CPU s per request",
                case,
                limit,
                limit.median >= LIMIT_TARGET,
            )
            ratio = store[key(algorithm, payload, "c1", "floor ratio")]
            row(
                f"c=1: serve p50 <= {FLOOR_TARGET}x the in-process floor",
                case,
                ratio,
                ratio.median <= FLOOR_TARGET,
            )
    rf = store.get(key("rf", "digit.png", "serve", "c1", "p50"))
    if rf is not None:
        row(
            f"rf answers one image at p50 <= {RF_P50_MS:g} ms",
            "digit.png, c=1, ms",
            rf,
            rf.median <= RF_P50_MS,
        )
    onnx = store.get(key("rf engines", "ONNX Runtime", "max difference"))
    if onnx is not None:
        row(
            f"compiled trees agree with scikit-learn within {AGREEMENT:g}",
            "rf on ONNX Runtime, largest probability difference",
            onnx,
            onnx.median <= AGREEMENT,
        )
    for name, limit_s in STARTUP_TARGETS_S.items():
        startup = store.get(key(name, "startup"))
        if startup is not None:
            row(
                f"cold start to the first 200 on /ping <= {limit_s:g} s (the slowest start)",
                name,
                startup,
                max(startup.values) <= limit_s,
            )
    for name, figure in sorted(store.items()):
        if name.startswith("int8/") and name.endswith("/change"):
            case, fmt = name.split("/")[1:3]
            lines.append(
                f"| int8 test accuracy within {INT8_POINTS:g} point of float32 | {case}, {fmt} "
                f"| {figure.median:+.2f} points | {_met(abs(figure.median) <= INT8_POINTS)} |"
            )
    speed_up = store.get(key("transfer", "speed-up", "wall"))
    if speed_up:
        before = key("transfer", "resnet50 frozen_cache false")
        after = store[key("transfer", "resnet50 frozen_cache true", "accuracy")].median
        low = store[key(before, "accuracy low")].median
        high = store[key(before, "accuracy high")].median
        lines.append(
            f"| resnet50 on photos: wall time <= 1/{TRANSFER_SPEED_UP:g} of before, accuracy "
            f"within before's 95% interval | faces, defaults, ImageNet weights | "
            f"{spread(speed_up)}x; {after:.3f} in {low:.3f}-{high:.3f} | "
            f"{_met(speed_up.median >= TRANSFER_SPEED_UP and low <= after <= high)} |"
        )
    for name, case in (("cnn_ratio", "no augmentation"), ("cnn_aug_ratio", "augmentation on")):
        pipeline = store[name]
        lines.append(
            f"| cnn input pipeline >= {PIPELINE_TARGET}x model.fit on an in-memory array | "
            f"images/s, epochs 2+, {case} | {spread(pipeline)} | "
            f"{_met(pipeline.median >= PIPELINE_TARGET)} |"
        )
    return lines


def limit_table(store: Store, algorithm: str, run: RunContext) -> list[str]:
    """serve against the machine: busy cores and the requests/s they could give at the
    floor's CPU cost per request."""
    lines = [
        "| payload | floor p50 ms | floor CPU ms per request | c | serve p50 / floor | serve "
        "req/s | busy cores | limit req/s (busy / floor CPU) | serve / limit | serve CPU ms per "
        "request |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for payload in run.payloads:
        floor = spread(store[key(algorithm, payload, "floor", "p50")])
        floor_cpu = spread(store[key(algorithm, payload, "floor", "cpu")])
        for concurrency in CONCURRENCIES:
            pair = key(algorithm, payload, f"c{concurrency}")
            serve = key(algorithm, payload, "serve", f"c{concurrency}")
            ratio = store.get(key(pair, "floor ratio"))
            cells = [
                spread(ratio, 3) if ratio else "-",
                spread(store[key(serve, "rps")]),
                spread(store[key(serve, "busy")], 2),
                spread(store[key(pair, "limit")]),
                spread(store[key(pair, "limit ratio")], 2),
                spread(store[key(serve, "cpu")]),
            ]
            lines.append(
                f"| {payload} | {floor} | {floor_cpu} | {concurrency} | {' | '.join(cells)} |"
            )
    return lines


def tree_engine_table(store: Store) -> list[str]:
    lines = [
        "| engine | one digit PNG: p50 ms | CPU ms per image | largest difference from "
        "scikit-learn's probabilities |",
        "|---|---|---|---|",
    ]
    engines = sorted({name.split("/")[1] for name in store if name.startswith("rf engines/")})
    for engine in engines:
        base = key("rf engines", engine)
        lines.append(
            f"| {engine} | {spread(store[key(base, 'p50')])} | {spread(store[key(base, 'cpu')])} "
            f"| {store[key(base, 'max difference')].median:.2g} |"
        )
    return lines


def serving_table(store: Store, algorithm: str, run: RunContext) -> list[str]:
    lines = [
        "| payload | floor p50 ms | c | serve p50 ms | serve p99 ms | serve req/s | "
        "reference p50 ms | reference p99 ms | reference req/s | req/s serve / reference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for payload in run.payloads:
        floor = spread(store[key(algorithm, payload, "floor", "p50")])
        for concurrency in CONCURRENCIES:
            cells = []
            for server in SERVERS:
                base = key(algorithm, payload, server, f"c{concurrency}")
                cells += [spread(store[key(base, name)]) for name in ("p50", "p99", "rps")]
            ratio = spread(store[key(algorithm, payload, f"c{concurrency}", "rps ratio")], 2)
            lines.append(f"| {payload} | {floor} | {concurrency} | {' | '.join(cells)} | {ratio} |")
    return lines


def client_table(store: Store, algorithm: str, run: RunContext) -> list[str]:
    lines = [
        "| payload | c | client CPU ms per request, serve | client CPU ms per request, reference |",
        "|---|---|---|---|",
    ]
    for payload in run.payloads:
        for concurrency in CONCURRENCIES:
            cells = [
                spread(store[key(algorithm, payload, server, f"c{concurrency}", "client cpu")], 2)
                for server in SERVERS
            ]
            lines.append(f"| {payload} | {concurrency} | {' | '.join(cells)} |")
    return lines


def balance_table(store: Store, algorithm: str, run: RunContext) -> list[str]:
    lines = [
        "| payload | c | serve: busiest worker's share | reference: busiest worker's share |",
        "|---|---|---|---|",
    ]
    for payload in run.payloads:
        for concurrency in CONCURRENCIES[1:]:
            cells = []
            for server in SERVERS:
                figure = store.get(key(algorithm, payload, server, f"c{concurrency}", "busiest"))
                cells.append(spread(figure, 2) if figure else "one worker")
            lines.append(f"| {payload} | {concurrency} | {' | '.join(cells)} |")
    return lines


def memory_table(store: Store, run: RunContext) -> list[str]:
    lines = [
        "| algorithm | server | when | workers | RSS per worker, MiB | PSS per worker, MiB |",
        "|---|---|---|---|---|---|",
    ]
    for algorithm in run.startup_algorithms:
        lines.append(
            _memory_row(
                store,
                algorithm,
                "serve",
                "ready (before any request)",
                key(algorithm, "ready memory"),
            )
        )
    for algorithm in run.serving_algorithms:
        for server in SERVERS:
            lines.append(
                _memory_row(
                    store,
                    algorithm,
                    server,
                    "after the load runs",
                    key(algorithm, "memory", server),
                )
            )
    return lines


def _memory_row(store: Store, algorithm: str, server: str, when: str, prefix: str) -> str:
    figures = {
        name: [
            f
            for k, f in store.items()
            if k.startswith(prefix + "/worker") and k.endswith("/" + name)
        ]
        for name in ("rss", "pss")
    }
    workers = len(figures["rss"])
    cells = [", ".join(f"{f.median:.0f}" for f in figures[name]) for name in ("rss", "pss")]
    return f"| {algorithm} | {server} | {when} | {workers} | {cells[0]} | {cells[1]} |"


def cpu_table(store: Store, run: RunContext) -> list[str]:
    lines = [
        "| model | payload | images per call | classic | serve | serve int8 | classic / serve |",
        "|---|---|---|---|---|---|---|",
    ]
    for algorithm in run.inprocess_algorithms:
        for payload in run.payloads:
            for batch in ("batch 1", "batch 8"):
                cells = []
                for variant in ("classic", "serve", "int8"):
                    figure = store.get(key(algorithm, payload, "cpu", variant, batch))
                    cells.append(spread(figure) if figure else "-")
                ratio = spread(store[key(algorithm, payload, "cpu ratio", batch)])
                lines.append(
                    f"| {algorithm} | {payload} | {batch.split()[1]} | {' | '.join(cells)} | "
                    f"{ratio} |"
                )
    return lines


def decode_table(store: Store, run: RunContext) -> list[str]:
    lines = [
        "| payload | model input | decode whole, then resize: ms | decode at the reduced scale, "
        "then resize: ms | ratio |",
        "|---|---|---|---|---|",
    ]
    for algorithm in run.serving_algorithms[:1]:
        for payload in run.payloads:
            whole = store[key(algorithm, payload, "decode", "classic")]
            scaled = store[key(algorithm, payload, "decode", "serve")]
            lines.append(
                f"| {payload} | 64x64x1 | {spread(whole)} | {spread(scaled)} | "
                f"{whole.median / scaled.median:.2f} |"
            )
    return lines


def accuracy_table(store: Store) -> list[str]:
    lines = [
        "| set, model, input | JPEG decoded at | test accuracy, rule on | rule off | change, "
        "points |",
        "|---|---|---|---|---|",
    ]
    cases = sorted({name.split("/")[1] for name in store if name.startswith("accuracy/")})
    for case in cases:
        scale = int(store[key("accuracy", case, "scale")].median)
        on = store[key("accuracy", case, "scaled true")].median
        off = store[key("accuracy", case, "scaled false")].median
        where = "full size (a PNG)" if case.startswith("digits") else f"1/{scale}"
        lines.append(f"| {case} | {where} | {on:.4f} | {off:.4f} | {100 * (on - off):+.2f} |")
    return lines


def int8_table(store: Store) -> list[str]:
    lines = [
        "| model | format | float32 (Keras) accuracy | int8 accuracy | change, points | "
        "size: Keras -> int8, MB |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(store):
        if name.startswith("int8/") and name.endswith("/change"):
            case, fmt = name.split("/")[1:3]
            base = key("int8", case, fmt)
            lines.append(
                f"| {case} | {fmt} | {store[key(base, 'float32')].median:.4f} | "
                f"{store[key(base, 'int8')].median:.4f} | {store[name].median:+.2f} | "
                f"{store[key(base, 'original bytes')].median:.2f} -> "
                f"{store[key(base, 'bytes')].median:.2f} |"
            )
    return lines


def _transfer_row(store: Store, name: str) -> str | None:
    base = key("transfer", name)
    if key(base, "accuracy") not in store:
        return None
    accuracy = store[key(base, "accuracy")]
    low, high = store[key(base, "accuracy low")].median, store[key(base, "accuracy high")].median
    head = store.get(key(base, "head phase"))
    return (
        f"| {name} | {accuracy.median:.3f} ({low:.3f}-{high:.3f}) on "
        f"{store[key(base, 'test images')].median:.0f} | {_whole(store[key(base, 'wall')])} | "
        f"{_whole(head) if head else 'n/a'} | {_whole(store[key(base, 'peak memory')])} |"
    )


def _whole(figure: Figure) -> str:
    """'median (min-max)' in whole units, or the value alone when there is one."""
    if len(figure.values) == 1:
        return f"{figure.median:.0f}"
    return f"{figure.median:.0f} ({figure.low:.0f}-{figure.high:.0f})"


def transfer_tables(store: Store) -> list[str]:
    """resnet50 with and without the frozen cache, views, svm on deep features; serving."""
    names = sorted({name.split("/")[1] for name in store if name.startswith("transfer/")})
    lines = [
        "| job | test accuracy (95% interval) on images | wall s | head phase s | peak memory MB |",
        "|---|---|---|---|---|",
    ]
    lines += [row for name in names if (row := _transfer_row(store, name))]
    for name, what in (("wall", "whole job"), ("head phase", "head phase")):
        ratio = store.get(key("transfer", "speed-up", name))
        if ratio:
            lines.append(f"\nSpeed-up of the {what}, frozen_cache false / true: {spread(ratio)}")
    serving = sorted(
        {n.split("/")[2] for n in store if n.startswith("transfer/serving/")},
    )
    if serving:
        lines += [
            "",
            "| resnet50 served on | p50, one image, ms | images/s, batches of 32 |",
            "|---|---|---|",
        ]
        for runtime in serving:
            base = key("transfer", "serving", runtime)
            lines.append(
                f"| {runtime} | {spread(store[key(base, 'p50')])} | "
                f"{spread(store[key(base, 'batch32')])} |"
            )
    for fmt in ("tflite", "onnx"):
        base = key("transfer", f"int8 {fmt}")
        if key(base, "int8 accuracy") in store:
            lines.append(
                f"\nint8 {fmt}: test accuracy {store[key(base, 'int8 accuracy')].median:.3f} "
                f"against the Keras model's {store[key(base, 'float32 accuracy')].median:.3f}"
                f"{'' if store[key(base, 'kept')].median else ' (refused by the gate)'}"
            )
    return lines


def startup_table(store: Store, run: RunContext) -> list[str]:
    lines = [
        "| algorithm | seconds to the first 200 on /ping: median (min-max) | starts | target |",
        "|---|---|---|---|",
    ]
    for algorithm in run.startup_algorithms:
        figure = store[key(algorithm, "startup")]
        limit = STARTUP_TARGETS_S.get(algorithm)
        target = f"<= {limit:g} s" if limit else ""
        lines.append(f"| {algorithm} | {spread(figure)} | {len(figure.values)} | {target} |")
    return lines


def training_table(store: Store) -> list[str]:
    lines = ["| measure | median | min | max | unit | runs |", "|---|---|---|---|---|---|"]
    for name in (
        "cnn_ours",
        "cnn_fit",
        "cnn_ratio",
        "cnn_aug_ours",
        "cnn_aug_fit",
        "cnn_aug_ratio",
        "hog_one",
        "hog_two",
        "hog_skimage",
        "hog_vs_skimage",
        "hog_scaling",
        "stream_memory",
        "stream_cache",
        "stream_decode",
        "stream_cache_ratio",
        "stream_decode_ratio",
    ):
        f = store[name]
        lines.append(
            f"| {f.name} | {f.median:.4g} | {f.low:.4g} | {f.high:.4g} | {f.unit} | "
            f"{len(f.values)} |"
        )
    return lines


def feature_cost_table(store: Store) -> list[str]:
    lines = ["| feature kind | ms per image: median (min-max) | runs |", "|---|---|---|"]
    for name, figure in store.items():
        if name.startswith("feature cost/"):
            lines.append(f"| {figure.name} | {spread(figure)} | {len(figure.values)} |")
    return lines


def lite_image_lines(store: Store) -> list[str]:
    size = store.get("lite image/size")
    if size is None:
        return [
            "The lite image (RUNTIME=lite) was not measured in this run: build it with "
            "`make image-podman RUNTIME=lite` and run `make bench` without --no-image.",
            "",
        ]
    return [
        f"The lite serving image (`make image-podman RUNTIME=lite`: numpy, OpenCV, LiteRT, ONNX "
        f"Runtime, gunicorn and uvicorn; no TensorFlow, no scikit-learn), which serves all "
        f"four algorithms from their exports: {size.median:.0f} MB.",
        "",
    ]


def _busy_note(run: RunContext) -> list[str]:
    """The load at the start is other people's; later readings include this run's own."""
    at_start = float(run.load_averages[0][1].split("/")[0])
    if at_start < BUSY_LOAD:
        return []
    return [
        f"- Other processes were using the CPUs when the run started (1-minute load average "
        f"{at_start:.2f} on {run.cores} cores): absolute figures are noisier than the ratios, "
        "which compare measurements taken seconds apart."
    ]


def render(store: Store, run: RunContext) -> str:
    loads = "; ".join(f"{phase} {value}" for phase, value in run.load_averages)
    out = [
        "# smvision benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); do not edit by hand. How it measures, the "
        "profiles and what each optimisation bought: [NOTES.md](NOTES.md).",
        "",
        "## Machine and run",
        "",
        *run.machine,
        f"- Load average (1 / 5 / 15 min): {loads}. Readings after the start include this "
        "run's own server and client (about 2 when a load test runs).",
        *_busy_note(run),
        f"- Wall time of the suite: {run.wall_s / 60:.1f} min; {run.rounds} rounds; each load run "
        f"{run.seconds:g} s, resnet50's {run.resnet50_seconds:g} s (the first round after a 1 s "
        "warm-up)",
        "- The load generator is wrk (one thread, keep-alive connections; bench/loadgen.py). It "
        "runs on the same machine and shares its cores with the server under test: its own CPU "
        "time per request is in the tables.",
        "",
        "## Targets",
        "",
        *targets(store, run),
        "",
        "## Serving",
        "",
        "Figures are median (min-max) over the rounds. Payloads: two JPEG photos and a digit "
        "PNG (8x8, the jobs' own data). The floor is what a serve worker does with one image, "
        "in a loop in the benchmark's own process, no HTTP: `ModelInput.from_file` (a large "
        "JPEG decoded at a reduced scale) and the model as serve loads it (svm and rf on ONNX "
        "Runtime as train compiled them, the cnn compiled to TFLite at start, resnet50 on "
        f"{RUNTIME_NAMES.get(run.resnet50_runtime, run.resnet50_runtime)}), on a worker's "
        "share of the cores; its p50 is wall-clock, its CPU is "
        "every thread's per image. Busy cores: the CPU seconds of serve's whole process tree "
        "per second of the load run. The limit: what those busy cores would answer at the "
        "floor's CPU cost per request; serve / limit is how little serving adds to the "
        "model's own work. The reference is "
        "bench/reference_server.py, the classic design: Flask under gunicorn sync workers, one "
        "per core, no keep-alive (a new connection per request, its connect time counted), no "
        "nginx; it decodes each image whole and predicts with the model as trained "
        "(TensorFlow's graph for the cnn).",
        "",
    ]
    for algorithm in run.serving_algorithms:
        out += [
            f"### {algorithm}",
            "",
            *limit_table(store, algorithm, run),
            "",
            "Against the classic design, side by side:",
            "",
            *serving_table(store, algorithm, run),
            "",
            f"![{algorithm}: latency and throughput by concurrency](serving_{algorithm}.png)",
            "",
            "How evenly the load spread over the workers (CPU seconds of the busiest "
            "worker over all workers' during the run; 0.5 is even with two workers):",
            "",
            *balance_table(store, algorithm, run),
            "",
            "The load generator's own CPU time per request, warm-up included (it shares the "
            "cores with the server, and a new connection per request costs it more):",
            "",
            *client_table(store, algorithm, run),
            "",
        ]
    out += [
        "### The rf's forest: scikit-learn, ONNX Runtime, Treelite",
        "",
        "The rf job's 300 trees, one thread each, on features of one digit PNG decoded and "
        "extracted as serve does (bench/tree_engines.py); the agreement on the job's "
        "held-out split. serve runs ONNX Runtime (train compiles the forest with skl2onnx). "
        "TL2cgen (Treelite compiled to C) is measured with SMVISION_BENCH_TL2CGEN=1: gcc "
        "takes about 20 minutes over the forest (bench/NOTES.md).",
        "",
        *tree_engine_table(store),
        "",
        *lite_image_lines(store),
        "### In-process CPU per image",
        "",
        "CPU milliseconds per image (every thread of the process), decoding included; median "
        "(min-max) of 7 alternating runs. classic: the whole JPEG decoded, the model as "
        "trained (TensorFlow's graph for the cnn). serve: the JPEG decoded at a reduced scale, "
        "the model compiled to TFLite. serve int8: the same with the job's model exported as "
        "int8 TFLite (`smvision.local export --format tflite --quantize int8`).",
        "",
        *cpu_table(store, run),
        "",
        "Decoding alone, to the 64x64 grey input of the bench's models (CPU ms per image):",
        "",
        *decode_table(store, run),
        "",
        "### Start-up: `serve` started to the first 200 on /ping",
        "",
        "The `serve` console script as the image runs it; /ping polled every 10 ms. The "
        "worker loads the model and answers one warm-up request before /ping says 200. "
        "svm and rf: their ONNX as train compiled it (no scikit-learn in the worker); "
        "'scikit-learn': the trained pipeline (SMVISION_SERVE_FORMAT=trained, what serve did "
        "before). Keras models by SMVISION_KERAS_RUNTIME: tflite (the default: converted at "
        "start into a cache in /tmp, batch sizes 1, 8 and 32 allocated and run once; a start "
        "that finds the network in the cache skips the conversion: resnet50's first start "
        "converts, the cnn's found it cached by the serving runs), xla (compiled at start "
        "for the same sizes), tensorflow (what serve did before for both); "
        "'cnn lite': the cnn's TFLite export, as the lite image serves it (neither TensorFlow "
        "nor scikit-learn imported).",
        "",
        *startup_table(store, run),
        "",
        "### Memory per worker",
        "",
        "RSS counts every page a worker maps; PSS divides shared pages among the processes "
        "that share them, so PSS sums to what the workers cost together.",
        "",
        *memory_table(store, run),
        "",
        "## Accuracy on photos",
        "",
        "The JPEG decode rule (scaled_jpeg_decode) on and off, each job trained twice with "
        "the same seed; photographs from smvision.local.samples re-encoded as JPEG "
        "(quality 90). The "
        "digits are PNG files, which the rule leaves alone: the same pixels, the same "
        "accuracy.",
        "",
        *accuracy_table(store),
        "",
        "int8 exports of the textures cnn (trained with the rule), calibrated on 200 training "
        "images, against the float32 Keras model on the test split (export.json):",
        "",
        *int8_table(store),
        "",
        "## Transfer learning on photos",
        "",
        "bench/transfer.py: scikit-image's LFW faces and non-faces (two classes; 120 train, 40 "
        "validation, 40 test images), Keras' ResNet50 ImageNet weights in the 'pretrained' "
        "channel, `smvision.local train` with its defaults but for the named hyperparameter, "
        "each job timed from start to exit with its process tree's peak memory. "
        "frozen_cache false is the path before issue 21 (every epoch pushes every image "
        "through the frozen base); true runs the frozen layers once per image. The head "
        "phase: from the starting weights' log line to the head's last epoch line. Serving: "
        "the resnet50 model as a serve worker answers (local compare's latency: decode, "
        "resize, predict), on TensorFlow (Keras), compiled at start (TFLite, ONNX Runtime), "
        "and as an int8 export (calibrated on 120 training images at 224 pixels).",
        "",
        *transfer_tables(store),
        "",
        "## Training",
        "",
        "cnn: `smvision.local train` (PNG files decoded once into memory, then batches through "
        "tf.data into the custom training loop) against Keras `model.fit` on the same images as "
        "one float32 array, same network, batch 64, image_size 32; epochs after the first (which "
        "traces), runs alternating; then both again with the default augmentation (rotation, "
        "shifts, zoom, contrast: ours in the tf.data pipeline, model.fit's as the model's "
        "first layers). HOG: 2,156 digit images at 64x64, the svm "
        "default, with the same cells (8), blocks (2x2) and bins (9).",
        "",
        *training_table(store),
        "",
        "![training speed](training.png)",
        "",
        "### Features: the cost of each kind",
        "",
        "Each kind alone (`features=KIND`, its default settings) on 300 crops of "
        "scikit-learn's two sample photographs, resized to 64x64 RGB: the per-image kinds on one "
        "thread (jobs spread them over every core), deep (a frozen ResNet50 without its top, "
        "random weights: ImageNet's cost the same) in batches of 64 on TensorFlow's threads, "
        "at 64 and at 224 pixels (64 crops). A row of `features=a+b` costs about the sum.",
        "",
        *feature_cost_table(store),
        "",
        "## Every headline ratio",
        "",
        "![headline ratios against their targets](ratios.png)",
        "",
    ]
    return "\n".join(out)
