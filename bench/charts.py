"""PNG plots of one run: serving latency and throughput by concurrency, training ratios."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import Store, key
from bench.results_page import BUSY_TARGET, FLOOR_TARGET, LIMIT_TARGET, PIPELINE_TARGET
from bench.serving import CONCURRENCIES, SERVERS

COLOURS = {"serve": "tab:blue", "reference": "tab:orange"}
LABELS = {
    "serve": "serve (uvicorn, micro-batching)",
    "reference": "reference (Flask, gunicorn sync)",
}


def _pyplot() -> Any:
    """pyplot on the file-only backend, chosen when a plot is drawn rather than at import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def serving(store: Store, algorithm: str, payloads: Sequence[str], path: Path) -> None:
    plt = _pyplot()
    from matplotlib.ticker import ScalarFormatter

    figure, axes = plt.subplots(len(payloads), 2, figsize=(11, 4 * len(payloads)), squeeze=False)
    for row, payload in enumerate(payloads):
        latency, throughput = axes[row]
        for server in SERVERS:
            cells = [key(algorithm, payload, server, f"c{c}") for c in CONCURRENCIES]
            p50 = [store[key(cell, "p50")] for cell in cells]
            p99 = [store[key(cell, "p99")].median for cell in cells]
            rps = [store[key(cell, "rps")] for cell in cells]
            colour = COLOURS[server]
            latency.errorbar(
                CONCURRENCIES,
                [f.median for f in p50],
                yerr=_range(p50),
                color=colour,
                marker="o",
                capsize=3,
                label=f"{LABELS[server]} p50",
            )
            latency.plot(
                CONCURRENCIES,
                p99,
                color=colour,
                linestyle="--",
                marker="x",
                label=f"{LABELS[server]} p99",
            )
            throughput.errorbar(
                CONCURRENCIES,
                [f.median for f in rps],
                yerr=_range(rps),
                color=colour,
                marker="o",
                capsize=3,
                label=LABELS[server],
            )
        floor = store[key(algorithm, payload, "floor", "p50")].median
        latency.axhline(floor, color="grey", linestyle=":", label="in-process floor p50")
        for axis, title, unit in ((latency, "latency", "ms"), (throughput, "throughput", "req/s")):
            axis.set_xscale("log", base=2)
            axis.set_xticks(CONCURRENCIES, [str(c) for c in CONCURRENCIES])
            axis.set_xlabel("concurrent connections")
            axis.set_ylabel(unit)
            axis.set_title(f"{algorithm}, {payload}: {title}")
            axis.grid(alpha=0.3)
        latency.set_yscale("log")
        latency.yaxis.set_major_formatter(ScalarFormatter())
        latency.legend(fontsize=7)
        throughput.set_ylim(bottom=0)
        throughput.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def ratios(
    store: Store, serving_algorithms: Sequence[str], payloads: Sequence[str], path: Path
) -> None:
    """Every headline ratio with its min-max range, against its target."""
    plt = _pyplot()
    rows: list[tuple[str, Any, float | None]] = []
    for algorithm in serving_algorithms:
        for payload in [p for p in payloads if p.endswith(".jpg")]:  # the targets' photos
            rows += [
                (
                    f"{algorithm} {payload}\nc=1 serve p50 / floor",
                    store[key(algorithm, payload, "c1", "floor ratio")],
                    FLOOR_TARGET,
                ),
                (
                    f"{algorithm} {payload}\nc=8 busy cores (of 2)",
                    store[key(algorithm, payload, "serve", "c8", "busy")],
                    BUSY_TARGET,
                ),
                (
                    f"{algorithm} {payload}\nc=8 req/s / limit",
                    store[key(algorithm, payload, "c8", "limit ratio")],
                    LIMIT_TARGET,
                ),
            ]
    rows += [
        ("cnn pipeline / model.fit", store["cnn_ratio"], PIPELINE_TARGET),
        ("cnn pipeline / model.fit, augmented", store["cnn_aug_ratio"], PIPELINE_TARGET),
        ("HOG smvision / skimage (1 thread)", store["hog_vs_skimage"], None),
        ("HOG 2 threads / 1 thread", store["hog_scaling"], None),
    ]
    figure, axis = plt.subplots(figsize=(9, 0.55 * len(rows) + 1))
    positions = list(range(len(rows)))[::-1]
    medians = [figure_.median for _, figure_, _ in rows]
    errors = [[f.median - f.low for _, f, _ in rows], [f.high - f.median for _, f, _ in rows]]
    axis.barh(positions, medians, xerr=errors, color="tab:blue", capsize=3)
    for position, (_, _, target) in zip(positions, rows):
        if target is not None:
            axis.plot([target, target], [position - 0.4, position + 0.4], color="red")
    axis.set_yticks(positions, [label for label, _, _ in rows], fontsize=7)
    axis.axvline(1.0, color="grey", linewidth=0.8)
    axis.set_xlabel("ratio, or cores (bar: median, whiskers: min-max; red: target)")
    axis.set_title("Headline ratios, measured side by side in one run")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def training(store: Store, path: Path) -> None:
    """images/s: the cnn pipeline against model.fit; HOG on 1 and 2 threads against skimage."""
    plt = _pyplot()
    panels = (
        (
            "cnn training, image_size 32",
            ("cnn_ours", "cnn_fit"),
            ("smvision.local train\n(PNG files)", "model.fit\n(in-memory array)"),
        ),
        (
            "HOG features, 64x64",
            ("hog_one", "hog_two", "hog_skimage"),
            ("smvision\n1 thread", "smvision\n2 threads", "skimage\nhog"),
        ),
    )
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, (title, names, labels) in zip(axes, panels):
        figures = [store[name] for name in names]
        axis.bar(
            labels,
            [f.median for f in figures],
            yerr=_range(figures),
            capsize=4,
            color=["tab:blue", "tab:cyan", "tab:orange"][: len(figures)],
        )
        axis.set_ylabel("images/s")
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _range(figures: Sequence[Any]) -> list[list[float]]:
    return [[f.median - f.low for f in figures], [f.high - f.median for f in figures]]
