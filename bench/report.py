"""bench/RESULTS.md from the figures of one run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import Figure, Store, key
from bench.serving import CONCURRENCIES, SERVERS

FLOOR_TARGET = 1.3
THROUGHPUT_TARGET = 1.5
PIPELINE_TARGET = 0.9
BUSY_LOAD = 1.0


@dataclass(frozen=True)
class RunContext:
    machine: list[str]
    load_averages: list[tuple[str, str]]  # (phase, "1 / 5 / 15 min")
    wall_s: float
    cores: int
    rounds: int
    seconds: float
    serving_algorithms: Sequence[str]
    startup_algorithms: Sequence[str]
    payloads: Sequence[str]


def spread(figure: Figure, digits: int = 3) -> str:
    """'median (min-max)', or the value alone when there is one."""
    if len(figure.values) == 1:
        return f"{figure.median:.{digits}g}"
    return f"{figure.median:.{digits}g} ({figure.low:.{digits}g}-{figure.high:.{digits}g})"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def targets(store: Store, run: RunContext) -> list[str]:
    lines = ["| target | case | ratio: median (min-max) over rounds | |", "|---|---|---|---|"]
    for algorithm in run.serving_algorithms:
        for payload in run.payloads:
            ratio = store[key(algorithm, payload, "c1", "floor ratio")]
            lines.append(
                f"| c=1: serve p50 <= {FLOOR_TARGET}x the in-process floor | {algorithm}, "
                f"{payload} | {spread(ratio)} | {_met(ratio.median <= FLOOR_TARGET)} |"
            )
    for algorithm in run.serving_algorithms:
        for payload in run.payloads:
            ratio = store[key(algorithm, payload, "c8", "rps ratio")]
            lines.append(
                f"| c=8: serve requests/s >= {THROUGHPUT_TARGET}x the reference's | "
                f"{algorithm}, {payload} | {spread(ratio)} | "
                f"{_met(ratio.median >= THROUGHPUT_TARGET)} |"
            )
    pipeline = store["cnn_ratio"]
    lines.append(
        f"| cnn input pipeline >= {PIPELINE_TARGET}x model.fit on an in-memory array | "
        f"images/s, epochs 2+ | {spread(pipeline)} | "
        f"{_met(pipeline.median >= PIPELINE_TARGET)} |"
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


def startup_table(store: Store, run: RunContext) -> list[str]:
    lines = [
        "| algorithm | seconds to the first 200 on /ping: median (min-max) | starts |",
        "|---|---|---|",
    ]
    for algorithm in run.startup_algorithms:
        figure = store[key(algorithm, "startup")]
        lines.append(f"| {algorithm} | {spread(figure)} | {len(figure.values)} |")
    return lines


def training_table(store: Store) -> list[str]:
    lines = ["| measure | median | min | max | unit | runs |", "|---|---|---|---|---|---|"]
    for name in (
        "cnn_ours",
        "cnn_fit",
        "cnn_ratio",
        "hog_one",
        "hog_two",
        "hog_skimage",
        "hog_vs_skimage",
        "hog_scaling",
    ):
        f = store[name]
        lines.append(
            f"| {f.name} | {f.median:.4g} | {f.low:.4g} | {f.high:.4g} | {f.unit} | "
            f"{len(f.values)} |"
        )
    return lines


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
        f"{run.seconds:g} s after a 0.5 s warm-up",
        "- The load generator (bench/loadgen.py: keep-alive connections on one uvloop event "
        "loop) runs on the same machine and shares its cores with the server under test.",
        "",
        "## Targets",
        "",
        *targets(store, run),
        "",
        "## Serving",
        "",
        "Figures are median (min-max) over the rounds. The floor is decode_image + predict_proba "
        "of one image in a loop in the benchmark's own process, no HTTP. The reference is "
        "bench/reference_server.py: Flask under gunicorn sync workers, one per core, no "
        "keep-alive (a new connection per request, its connect time counted), no nginx.",
        "",
    ]
    for algorithm in run.serving_algorithms:
        out += [
            f"### {algorithm}",
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
        "### Start-up: `serve` started to the first 200 on /ping",
        "",
        "The `serve` console script as the image runs it; /ping polled every 10 ms. The "
        "worker loads the model and answers one warm-up request before /ping says 200.",
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
        "## Training",
        "",
        "cnn: `smvision.local train` (PNG files decoded once into memory, then batches through "
        "tf.data into the custom training loop) against Keras `model.fit` on the same images as "
        "one float32 array, same network, batch 64, image_size 32, no augmentation; epochs after "
        "the first (which traces), runs alternating. HOG: 2,156 digit images at 64x64, the svm "
        "default, with the same cells (8), blocks (2x2) and bins (9).",
        "",
        *training_table(store),
        "",
        "![training speed](training.png)",
        "",
        "## Every headline ratio",
        "",
        "![headline ratios against their targets](ratios.png)",
        "",
    ]
    return "\n".join(out)
