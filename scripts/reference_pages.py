"""The reference pages' generated parts, from the code: python -m scripts.reference_pages

Each page under docs/ holds hand-written prose around regions marked

    <!-- generated: NAME (python -m scripts.reference_pages) -->
    ...
    <!-- end generated: NAME -->

and this script rewrites every region from the code, so that no fact is stated twice by
hand: the hyperparameters from the schema, the environment variables from the modules
that read them (`smvision.core.contract`, `launch.common.settings`, the scripts), the
metrics from `smvision.core.metrics`, the launchers' settings, every command's options
from its own argparse parser, and the layers from .importlinter. `--check` changes
nothing and exits 1 when a page differs; tests/docs/test_reference_pages.py runs it.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import functools
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from launch import cli as launch_cli
from launch.common.settings import SPECS
from scripts import hyperparameter_table
from smvision.core import contract, metrics
from smvision.schema import specs
from smvision.serving import model_table

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HELP_WIDTH = 96
BEGIN = "<!-- generated: {name} (python -m scripts.reference_pages) -->"
END = "<!-- end generated: {name} -->"


# -- the hyperparameters ------------------------------------------------------------------


def hyperparameters() -> str:
    return hyperparameter_table.table()


# -- the environment variables -------------------------------------------------------------

# Where the variables are spelled: the image, the launchers, the build and test tooling.
# The tests themselves set variables to test them and are not looked at.
VARIABLE_SOURCES = (
    "src/**/*.py",
    "launch/**/*.py",
    "scripts/*",
    "docker/*",
    "bench/*.py",
    "tests/support/**/*.py",
    "tests/container/engine.py",
    "Makefile",
    "Dockerfile",
    ".ci/run",
)
VARIABLE = re.compile(r"(?:SAGEMAKER|SMVISION|SM)_[A-Z0-9_]+")
# In shell, make and Dockerfile lines: $NAME, ${NAME...}, NAME=..., export/unset NAME.
SHELL_VARIABLE = re.compile(
    r"\$\{?((?:SAGEMAKER|SMVISION|SM)_[A-Z0-9_]+)"
    r"|^\s*(?:export\s+|ENV\s+|unset\s+)?((?:SAGEMAKER|SMVISION|SM)_[A-Z0-9_]+)\b",
    re.M,
)


@dataclass(frozen=True)
class Variable:
    name: str
    group: str
    meaning: str
    default: str = ""  # Markdown


def code(value: object) -> str:
    return f"`{value}`"


IMAGE = "Read by the image (`train`, `serve`, `monitor`)"
LAUNCHERS = "Read by the launchers (`python -m launch`) and the SageMaker SDK"
TOOLING = "Build, local runs and tests"
GROUPS = (IMAGE, LAUNCHERS, TOOLING)


def _workers_default() -> str:
    by_value: dict[str, list[str]] = {}
    for spec in specs.BUILT_IN:
        value = "one per CPU core" if spec.serve_workers is None else str(spec.serve_workers)
        by_value.setdefault(value, []).append(spec.name)
    return "; ".join(f"{', '.join(names)}: {value}" for value, names in by_value.items())


def _keras_runtime_default() -> str:
    runtimes = [f"{s.name} on {s.keras_runtime}" for s in specs.BUILT_IN if s.keras_runtime]
    return f"`auto` ({', '.join(runtimes)}); or " + ", ".join(
        f"`{r}`" for r in contract.KERAS_RUNTIMES[1:]
    )


def variables() -> list[Variable]:
    """Every variable, with what it means; its default from the code where the code has one."""
    settings = [
        Variable(spec.variable, LAUNCHERS, f"{spec.meaning}; or `{spec.flag}`")
        for spec in SPECS.values()
    ]
    return [
        Variable(
            contract.BASE_DIR_ENV,
            IMAGE,
            "where the /opt/ml tree is: local runs and the tests point it at a job directory",
            code(contract.DEFAULT_BASE_DIR),
        ),
        Variable(
            contract.TRAINING_MODULE_ENV,
            IMAGE,
            "the module the sagemaker-training toolkit's `train` imports and calls; the "
            "Dockerfile sets it",
            code(contract.TRAINING_MODULE),
        ),
        Variable(
            contract.HOSTS_ENV,
            IMAGE,
            "the hosts of a training job as a JSON list (the toolkit sets it); else "
            "resourceconfig.json",
            '`["algo-1"]`',
        ),
        Variable(
            contract.CURRENT_HOST_ENV,
            IMAGE,
            "this host's name (the toolkit sets it)",
            code("algo-1"),
        ),
        Variable(
            contract.PORT_ENV,
            IMAGE,
            f"the port `serve` listens on, on 0.0.0.0: 1 to {contract.MAX_PORT}",
            code(contract.DEFAULT_PORT),
        ),
        Variable(
            contract.MODEL_LOAD_TIMEOUT_ENV,
            IMAGE,
            "seconds a model's load (its files, a compile, the warm-up) may take: multi-model, "
            "408 and the load given up (SageMaker gives a load 360 s); one model, `serve` "
            "exits 3",
            code(f"{contract.DEFAULT_MODEL_LOAD_TIMEOUT_S:g}"),
        ),
        Variable(
            contract.TTA_ENV,
            IMAGE,
            "test-time augmentation for requests that do not ask (`flip` or `crops`); "
            "`launch transform --tta` sets it, since batch transform forwards no custom "
            "attributes",
            code("none"),
        ),
        Variable(
            contract.COVERAGE_ENV,
            IMAGE,
            "the coverage of split-conformal prediction sets for requests that do not ask "
            "(`launch transform --coverage`); unset: no sets, no abstention",
        ),
        Variable(
            contract.WORKERS_ENV,
            IMAGE,
            "server worker processes (`deploy --workers`); a multi-model server runs one",
            _workers_default(),
        ),
        Variable(
            contract.TIMEOUT_ENV,
            IMAGE,
            "seconds a request may take before it is answered 504 (`deploy --timeout`)",
            f"`{contract.DEFAULT_TIMEOUT_S:g}`; `{contract.ASYNC_TIMEOUT_S:g}` with "
            f"`{contract.ASYNC_INFERENCE_ENV}=true`",
        ),
        Variable(
            contract.MAX_PAYLOAD_ENV,
            IMAGE,
            "the largest request body in MiB, larger ones answered 413 (`deploy "
            f"--max-payload-mb`; `deploy --serverless` sets {contract.SERVERLESS_MAX_PAYLOAD_MB})",
            f"`{contract.DEFAULT_MAX_PAYLOAD_MB:g}`; `{contract.ASYNC_MAX_PAYLOAD_MB:g}` with "
            f"`{contract.ASYNC_INFERENCE_ENV}=true`",
        ),
        Variable(
            contract.MULTI_MODEL_ENV,
            IMAGE,
            "SageMaker sets `true` on a multi-model endpoint: models load through `/models` "
            "from /opt/ml/models, in one worker",
            code("false"),
        ),
        Variable(
            contract.ASYNC_INFERENCE_ENV,
            IMAGE,
            "an asynchronous endpoint's limits by default (`deploy --async` sets `true`)",
            code("false"),
        ),
        Variable(
            contract.MODELS_MEMORY_ENV,
            IMAGE,
            "the memory in MiB a multi-model server gives its models; over it a load answers "
            "507 (413 when it could never fit)",
            f"{1 - model_table.HEADROOM:.0%} of the container's memory less the server's own "
            "(no limit when the container's memory cannot be read)",
        ),
        Variable(
            contract.SERVE_FORMAT_ENV,
            IMAGE,
            "which model in /opt/ml/model `serve` runs: `auto` the export when the model "
            "directory holds one (an svm's or rf's ONNX, which train compiles, or what "
            "`smvision.local export` wrote), else the trained model",
            ", ".join(f"`{f}`" for f in contract.SERVE_FORMATS),
        ),
        Variable(
            contract.KERAS_RUNTIME_ENV,
            IMAGE,
            "how a trained Keras model (and the deep-feature network of svm and rf) runs: "
            "compiled to TFLite or ONNX at start in a child process, XLA (compiled for "
            "batches of 1, 8 and 32), or TensorFlow's graph",
            _keras_runtime_default(),
        ),
        *settings,
        Variable(
            "SAGEMAKER_USER_CONFIG_OVERRIDE",
            LAUNCHERS,
            "the SageMaker SDK's config file; `TelemetryOptOut: true` under "
            "`SageMaker.PythonSDK.Modules` there stops the SDK's usage telemetry (the tests "
            "set it so)",
            "`~/.config/sagemaker/config.yaml`",
        ),
        Variable(
            "SAGEMAKER_VALIDATE_ROLE",
            LAUNCHERS,
            "the SDK's check of the role from this machine; `pipeline create` sets `false` "
            "while it builds the definition, whose jobs run later under the pipeline's role",
        ),
        Variable(
            "SMVISION_REPOSITORY",
            TOOLING,
            "the ECR repository `docker/build_and_push.sh` pushes to (it reads "
            "SMVISION_REGION too)",
            code("smvision"),
        ),
        Variable(
            "SM_STUDIO_LOCAL_MODE",
            TOOLING,
            "`smvision.local train` sets `true`: the toolkit's own switch to skip waiting for "
            "the host names to resolve, which outside a container they never do",
        ),
        Variable(
            "SMVISION_WEIGHTS_DIR",
            TOOLING,
            "where `make weights` keeps ResNet50's ImageNet files",
            "`${XDG_CACHE_HOME:-~/.cache}/smvision/imagenet`",
        ),
        Variable(
            "SMVISION_SKIP_CONTAINER_TESTS",
            TOOLING,
            "`1` leaves the image tests (tests/container) out of `make test`; CI never sets it",
        ),
        Variable(
            "SMVISION_PODMAN_DIR",
            TOOLING,
            "where `scripts/podman.sh` keeps podman's storage, run files, networks and socket",
            code("build/podman"),
        ),
        Variable(
            "SMVISION_STORAGE_DRIVER",
            TOOLING,
            "podman's storage driver for `scripts/podman.sh`",
            "overlay where the kernel allows it, else vfs",
        ),
        Variable(
            "SMVISION_REFERENCE_MODEL_DIR",
            TOOLING,
            "the model directory `bench/reference_server.py` (the Flask reference of `make "
            "bench`) serves",
        ),
        Variable(
            "SMVISION_BENCH_TL2CGEN",
            TOOLING,
            "`1` adds TL2cgen (the forest compiled to C with gcc: about 20 minutes) to the "
            "rf engines `make bench` compares",
        ),
        Variable(
            "SMVISION_TEST_FIT_GATE",
            TOOLING,
            "tests only: a FIFO the gated test algorithm's `fit` waits on, so that a signal "
            "lands mid-training",
        ),
        Variable(
            "SMVISION_TEST_LOAD_GATE",
            TOOLING,
            "tests only: a FIFO the gated test algorithm's `load` waits on",
        ),
        Variable(
            "SMVISION_TEST_PREDICT_GATE",
            TOOLING,
            "tests only: a FIFO the gated test algorithm's `predict_proba` waits on for an "
            "all-white image",
        ),
        Variable(
            "SMVISION_TEST_BATCH_LOG",
            TOOLING,
            "tests only: a file the gated test algorithm appends each batch size to",
        ),
    ]


def spelled_in() -> dict[str, list[str]]:
    """Each SAGEMAKER_*, SMVISION_* and SM_* variable the code names, and where."""
    found: dict[str, set[str]] = {}
    files = {path for pattern in VARIABLE_SOURCES for path in ROOT.glob(pattern)}
    files.discard(Path(__file__).resolve())  # names them to describe them
    for path in sorted(p for p in files if p.is_file() and "__pycache__" not in p.parts):
        text = path.read_text()
        names: set[str] = set()
        if path.suffix == ".py":
            names = {
                node.value
                for node in ast.walk(ast.parse(text))
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and VARIABLE.fullmatch(node.value)
            }
        elif path.suffix in ("", ".sh"):
            names = {a or b for a, b in SHELL_VARIABLE.findall(text)}
        for name in names:
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return {name: sorted(paths) for name, paths in sorted(found.items())}


def environment() -> str:
    documented = variables()
    found = spelled_in()
    missing = sorted(set(found) - {v.name for v in documented})
    if missing:
        raise SystemExit(
            f"{', '.join(missing)} appear in the code but not in scripts/reference_pages.py's "
            "variables(): say there what each means, then run python -m scripts.reference_pages."
        )
    out = []
    for group in GROUPS:
        out += [f"### {group}", "", "| variable | default | what it does | in the code |"]
        out.append("|---|---|---|---|")
        for variable in (v for v in documented if v.group == group):
            where = ", ".join(f"`{path}`" for path in found.get(variable.name, []))
            out.append(f"| `{variable.name}` | {variable.default} | {variable.meaning} | {where} |")
        out.append("")
    return "\n".join(out)


# -- the metrics ---------------------------------------------------------------------------

MEASURE_MEANINGS = {
    "accuracy": "share of images whose predicted class is the true one (multi-label: subset "
    "accuracy)",
    "loss": "cross-entropy of the predicted probabilities (multi-label: binary cross-entropy)",
    "macro_f1": "F1 of each class (or label), averaged with equal weight",
    "precision": "of the images predicted positive, the share that are",
    "recall": "of the positive images, the share predicted positive",
    "f1": "harmonic mean of precision and recall",
    "auc": "area under the ROC curve (left out on a split that holds one class)",
    "pr_auc": "area under the precision-recall curve (left out on a split that holds one class)",
    "f1_micro": "F1 over every (image, label) decision pooled",
    "hamming_loss": "share of (image, label) decisions that are wrong",
    "subset_accuracy": "share of images whose whole label set is right",
}


def metrics_table() -> str:
    unexplained = set(metrics.ALL_MEASURES) - set(MEASURE_MEANINGS)
    if unexplained:
        raise SystemExit(f"Say what {sorted(unexplained)} measure in MEASURE_MEANINGS.")
    kinds = (
        (metrics.MEASURES, "every model"),
        (metrics.BINARY_MEASURES, "two classes (the second in class order is the positive one)"),
        (metrics.MULTI_LABEL_MEASURES, "multi-label models"),
    )
    splits = ", ".join(f"`{split}`" for split in metrics.SPLITS)
    out = [
        f"Each measure is reported as `SPLIT:MEASURE`, SPLIT one of {splits}.",
        "",
        "| measure | reported by | a tuning job | what it is |",
        "|---|---|---|---|",
    ]
    for measures, who in kinds:
        for measure in measures:
            out.append(
                f"| `{measure}` | {who} | {metrics.direction(measure).lower()}s it | "
                f"{MEASURE_MEANINGS[measure]} |"
            )
    named = [n for n in metrics.METRIC_NAMES if n.split(":")[1] not in metrics.ALL_MEASURES]
    out += [
        "",
        "Besides those: " + ", ".join(f"`{name}`" for name in named) + ".",
        "",
        f"In all, {len(metrics.METRIC_DEFINITIONS)} metric definitions, each a Name and a "
        f"Regex such as `{metrics.METRIC_DEFINITIONS[0]['Regex']}` "
        f"(for `{metrics.METRIC_DEFINITIONS[0]['Name']}`).",
        "",
    ]
    return "\n".join(out)


# -- the launchers' settings -----------------------------------------------------------------


def settings() -> str:
    out = ["| flag | variable | config key | what it is | for example |", "|---|---|---|---|---|"]
    for spec in SPECS.values():
        out.append(
            f"| `{spec.flag}` | `{spec.variable}` | `{spec.name}` | {spec.meaning} | "
            f"`{spec.example}` |"
        )
    return "\n".join(out) + "\n"


# -- every command's options ----------------------------------------------------------------


class Captured(Exception):
    """Raised in place of running a command, once its parser has parsed its arguments."""

    def __init__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> None:
        super().__init__(parser.prog)
        self.parser = parser
        self.namespace = namespace


@contextmanager
def parsing_only() -> Iterator[None]:
    """Any parser's parse_args parses (exiting 2 on an error, as always), then raises
    Captured instead of returning, so a program's main() stops before it does anything."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        raise Captured(self, original(self, *args, **kwargs))

    argparse.ArgumentParser.parse_args = parse_args  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]


def parse_with_main(main: Callable[..., object], argv: Sequence[str]) -> Captured:
    """A program's real parser on `argv`, reached through its main(); nothing runs."""
    saved = sys.argv
    sys.argv = ["program", *argv]
    try:
        with parsing_only():
            main(list(argv)) if _takes_argv(main) else main()
    except Captured as captured:
        return captured
    finally:
        sys.argv = saved
    raise AssertionError(f"{main.__module__}.main returned without parsing its arguments")


def _takes_argv(main: Callable[..., object]) -> bool:
    return bool(main.__code__.co_argcount)


def user_parsers() -> list[argparse.ArgumentParser]:
    """The parsers of the commands a user runs, top-level ones first."""
    from scripts import imagenet_weights
    from smvision.comparison import __main__ as comparison_main
    from smvision.local import cli as local_cli
    from smvision.local import samples
    from smvision.monitor import gate
    from smvision.monitor import main as monitor_main

    return [
        launch_cli.build_parser(),
        local_cli.build_parser(),
        parse_with_main(samples.main, ["digits", "DIR"]).parser,
        parse_with_main(comparison_main.main, ["DIR"]).parser,
        monitor_main.build_parser(),
        gate.build_parser(),
        parse_with_main(imagenet_weights.main, []).parser,
    ]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    seen: set[int] = set()
    for sub in subcommands(parser).values():
        if id(sub) not in seen:  # an alias names the same parser twice
            seen.add(id(sub))
            yield from all_parsers(sub)


def help_text(parser: argparse.ArgumentParser) -> str:
    original = parser.formatter_class
    parser.formatter_class = functools.partial(original, width=HELP_WIDTH)  # type: ignore[call-arg]
    try:
        return parser.format_help().rstrip() + "\n"
    finally:
        parser.formatter_class = original


def cli_help() -> str:
    out = []
    for top in user_parsers():
        for parser in all_parsers(top):
            out += [f"## `{parser.prog}`", "", "```text", help_text(parser).rstrip(), "```", ""]
    return "\n".join(out)


# -- the layers ----------------------------------------------------------------------------


def layers() -> str:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    out = []
    for section in config.sections():
        if config.get(section, "type", fallback="") != "layers":
            continue
        container = config.get(section, "containers").strip()
        levels = [
            line.strip() for line in config.get(section, "layers").split("\n") if line.strip()
        ]
        out += [f"`{container}`, {config.get(section, 'name')}:", "", "```text"]
        for index, level in enumerate(levels):
            out.append("  " + "   ".join(part.strip() for part in level.split("|")))
            if index < len(levels) - 1:
                out.append("  ↓")
        out += ["```", ""]
    forbidden = [
        (config.get(s, "name"), config.get(s, "forbidden_modules").split())
        for s in config.sections()
        if config.get(s, "type", fallback="") == "forbidden"
    ]
    for name, modules in forbidden:
        out.append(f"- {name}: never " + ", ".join(f"`{m}`" for m in modules) + ".")
    out.append("")
    return "\n".join(out)


# -- the pages -----------------------------------------------------------------------------

GENERATORS: dict[str, tuple[str, Callable[[], str]]] = {
    "hyperparameters": ("reference/hyperparameters.md", hyperparameters),
    "environment": ("reference/environment.md", environment),
    "metrics": ("reference/metrics-and-artifacts.md", metrics_table),
    "settings": ("reference/commands.md", settings),
    "cli-help": ("reference/cli-help.md", cli_help),
    "layers": ("design/architecture.md", layers),
}


def region(text: str, name: str) -> tuple[int, int]:
    """Where region `name`'s body starts and ends in a page's text."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"the page must hold {begin} and {end} once each")
    start = text.index(begin) + len(begin) + 1
    return start, text.index(end)


def rendered(page: str, text: str) -> str:
    """The page's text with each of its regions written afresh."""
    for name, (where, generate) in GENERATORS.items():
        if where == page:
            start, stop = region(text, name)
            text = text[:start] + "\n" + generate().strip("\n") + "\n\n" + text[stop:]
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.reference_pages", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 on a difference"
    )
    args = parser.parse_args(argv)
    stale = []
    for page in sorted({where for where, _ in GENERATORS.values()}):
        path = DOCS / page
        text = path.read_text()
        new = rendered(page, text)
        if new != text:
            stale.append(page)
            if not args.check:
                path.write_text(new)
    verb = "differ from the code" if args.check else "rewritten"
    print(f"{len(stale)} pages {verb}" + (f": {', '.join(stale)}" if stale else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
