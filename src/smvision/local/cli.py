"""Run training and serving as SageMaker runs the image, without AWS and without Docker.

    python -m smvision.local train --algorithm svm --channel train=DIR [--channel ...]
        [--manifest CHANNEL=FILE --attribute-names IMAGE,LABEL[,META]] [--pipe CHANNEL]
        [--hp KEY=VALUE ...] [--max-run SECONDS] --job-dir JOBDIR
    python -m smvision.local serve --job-dir JOBDIR [--port PORT]
    python -m smvision.local monitor --model-dir DIR --captured DIR --out DIR
        [--since TIME] [--until TIME] [--ks-alpha X ...]
    python -m smvision.local export --job-dir JOBDIR --format tflite|onnx
        [--quantize float16|int8]
    python -m smvision.local compare --channel train=DIR [--channel ...]
        [--algorithms svm,rf,...] [--hp [ALG:]KEY=VALUE ...] --out DIR
    python -m smvision.local inspect --channel train=DIR [--channel ...]
        [--hp KEY=VALUE ...] --out DIR

`train` lays out JOBDIR/opt/ml exactly as a SageMaker training job finds it, then runs
the image's own training command (the sagemaker-training toolkit's `train`) with
SAGEMAKER_BASE_DIR pointing there. Running it again on the same JOBDIR restarts the same
job: input, model and output are laid out afresh, checkpoints are kept. The same tree
bind-mounted at /opt/ml is what `docker run -v JOBDIR/opt/ml:/opt/ml IMAGE train` uses.
Ctrl-C or SIGTERM stops a job as SageMaker's StopTrainingJob does: the signal reaches the
training script, which writes output/failure and no model, and the exit status is 128 + the
signal's number; whatever is still running 120 s later is killed. --max-run stops it the
same way once it has run that long (exit status 124).
`monitor` runs the image's `monitor` over a model's baseline and a folder of data-capture
files, writing the report, its plots and constraint_violations.json to --out, as the
monitoring job writes them to /opt/ml/processing/output.

Pipe mode runs as SageMaker runs it: a real FIFO per channel (input/data/CHANNEL_0, then
_1 once read), fed by this process in RecordIO framing. `--manifest` streams an
augmented manifest (each line's image file, then each other attribute's JSON, as
records; `-ref` paths are files on this machine, relative to the manifest); `--pipe`
streams the .rec files of a --channel directory one after another.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from smvision.core import contract as contract_module
from smvision.core.artifacts import write_message
from smvision.core.contract import CHANNELS
from smvision.local import inspect
from smvision.local.compare import command as compare
from smvision.local.job_dir import (
    DEFAULT_MAX_RUN_S,
    STOP_GRACE_S,
    PipeChannel,
    add_channel_option,
    console_script,
    job_contract,
    key_value,
    lay_out_job,
    run_child,
    run_foreground,
    start_pipes,
    training_environment,
)
from smvision.monitor import thresholds


def export_job(job_dir: Path, fmt: str, quantize: str) -> int:
    """`export`: write the compressed model and say what it changed."""
    from smvision.serving import export  # TensorFlow and the converters: only for this command

    try:
        record = export.export(job_contract(job_dir), fmt, quantize)
    except (export.ExportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = record["evaluation"]
    for refusal in record["gate"]["refused"]:
        print(refusal["reason"])
    print(
        f"Wrote {record['file']} ({record['bytes'] / 1e6:.2f} MB; the trained model: "
        f"{(record['original_bytes'] or 0) / 1e6:.2f} MB) and {contract_module.EXPORT_FILE} "
        f"to {job_contract(job_dir).model_dir}.\n"
        f"On the {result['split']} split ({result['images']} images): accuracy "
        f"{result['original_accuracy']:.4f} -> {result['export_accuracy']:.4f} "
        f"({result['accuracy_change_points']:+.2f} points); same label for "
        f"{result['same_label']:.2%} of images; probabilities differ by at most "
        f"{result['max_probability_difference']:.2e}."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m smvision.local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="lay out a job directory and train in it")
    train.add_argument("--algorithm", required=True, help="svm, rf, cnn or resnet50")
    add_channel_option(train, f"a channel ({', '.join(CHANNELS)}) and its directory")
    train.add_argument(
        "--manifest",
        action="append",
        type=key_value,
        default=[],
        metavar="NAME=FILE",
        help="a channel from an augmented manifest (JSON Lines), streamed in Pipe mode",
    )
    train.add_argument(
        "--attribute-names",
        metavar="IMAGE,LABEL[,LABEL-metadata]",
        help="with --manifest: the attributes streamed for each line, the image first",
    )
    train.add_argument(
        "--pipe",
        action="append",
        default=[],
        metavar="NAME",
        help="stream the .rec files of channel NAME (given with --channel) in Pipe mode",
    )
    train.add_argument(
        "--hp",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter, passed as a string as SageMaker does",
    )
    train.add_argument("--job-dir", required=True, type=Path, help="where opt/ml is laid out")
    train.add_argument(
        "--hosts", default="algo-1", help="comma-separated hosts of the cluster (default algo-1)"
    )
    train.add_argument("--current-host", default="algo-1", help="this process's host")
    train.add_argument(
        "--max-run",
        type=positive_seconds,
        default=DEFAULT_MAX_RUN_S,
        metavar="SECONDS",
        help="stop the job once it has run this long, as SageMaker's MaxRuntimeInSeconds "
        f"does: SIGTERM, then SIGKILL {STOP_GRACE_S:.0f} s later (default {DEFAULT_MAX_RUN_S})",
    )
    serve = commands.add_parser("serve", help="serve the model a job directory holds")
    serve.add_argument("--job-dir", required=True, type=Path)
    serve.add_argument("--port", type=int, default=contract_module.DEFAULT_PORT)
    monitor = commands.add_parser(
        "monitor",
        help="compare captured requests with a model's baseline, as the monitoring job does",
    )
    monitor.add_argument(
        "--model-dir",
        required=True,
        type=Path,
        help="the model directory that holds baseline.json, or model.tar.gz",
    )
    monitor.add_argument(
        "--captured",
        required=True,
        type=Path,
        help="a folder of data-capture .jsonl files (searched recursively)",
    )
    monitor.add_argument(
        "--out",
        required=True,
        type=Path,
        help="where the report, plots and constraint_violations.json go",
    )
    monitor.add_argument("--since", metavar="TIME", help="only requests at or after TIME (ISO)")
    monitor.add_argument("--until", metavar="TIME", help="only requests before TIME (ISO)")
    thresholds.add_arguments(monitor, with_defaults=False)
    export = commands.add_parser(
        "export",
        help="compress the job's Keras model to TFLite or ONNX beside it, for serve",
    )
    export.add_argument("--job-dir", required=True, type=Path)
    export.add_argument("--format", required=True, choices=("tflite", "onnx"))
    export.add_argument(
        "--quantize",
        choices=("float32", "float16", "int8"),
        default="float32",
        help="weights in float16, or weights and activations in int8 calibrated on the "
        "job's training images (default: float32, no quantization)",
    )
    compare.add_parser(commands)
    inspect.add_parser(commands)
    return parser


def pipe_channels(args: argparse.Namespace, channels: Mapping[str, Path]) -> dict[str, PipeChannel]:
    """The --manifest and --pipe channels, checked before anything is laid out."""
    names = tuple(n.strip() for n in (args.attribute_names or "").split(",") if n.strip())
    if args.manifest and len(names) < 2:
        raise SystemExit("--manifest needs --attribute-names IMAGE,LABEL (source-ref,class).")
    if names and not args.manifest:
        raise SystemExit("--attribute-names applies to --manifest; add one or drop it.")
    pipes = {name: PipeChannel(Path(path).resolve(), names) for name, path in args.manifest}
    for name in args.pipe:
        if name not in channels:
            raise SystemExit(f"--pipe {name}: give the channel with --channel {name}=DIR too.")
        pipes[name] = PipeChannel(channels[name])
    for name, pipe in pipes.items():
        pipe.check(name)
    return pipes


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "compare":
        return compare.run(args)
    if args.command == "inspect":
        return inspect.run(args)
    if args.command == "train":
        channels = {name: Path(path).resolve() for name, path in args.channel}
        pipes = pipe_channels(args, channels)
        channels |= {name: pipe.source for name, pipe in pipes.items()}
        unknown = sorted(set(channels) - set(CHANNELS))
        if unknown:
            raise SystemExit(f"Unknown channel(s) {unknown}; smvision reads {', '.join(CHANNELS)}.")
        hyperparameters = {"algorithm": args.algorithm} | dict(args.hp)
        contract = lay_out_job(
            args.job_dir,
            channels,
            hyperparameters,
            hosts=args.hosts.split(","),
            current_host=args.current_host,
            pipes=pipes,
        )
        start_pipes(contract, pipes)
        finished = run_child(
            [console_script("train")], training_environment(contract), max_run_s=args.max_run
        )
        if finished.timed_out:
            report_timeout(contract, args.max_run)
        return finished.exit_status
    if args.command == "monitor":
        try:
            options = thresholds.as_arguments(args)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from error
        for name in ("since", "until"):
            if getattr(args, name) is not None:
                options += [f"--{name}", getattr(args, name)]
        return run_monitor(args.model_dir, args.captured, args.out, options)
    if args.command == "export":
        return export_job(args.job_dir, args.format, args.quantize)
    contract = job_contract(args.job_dir)
    env = dict(os.environ)
    env[contract_module.BASE_DIR_ENV] = str(contract.base_dir)
    env[contract_module.PORT_ENV] = str(args.port)
    # serve's answer to SIGTERM is a graceful stop: its own status says how that went.
    return run_child([console_script("serve")], env).own_status


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return seconds


def report_timeout(contract: contract_module.Contract, max_run: float) -> None:
    """The failure file of a job stopped at --max-run: why first, then what the job said."""
    said = contract.failure_file.read_text().strip() if contract.failure_file.is_file() else ""
    reason = (
        f"Training ran past --max-run {max_run:g} s and was stopped (SIGTERM, then SIGKILL "
        f"after {STOP_GRACE_S:.0f} s), as SageMaker stops a job at its MaxRuntimeInSeconds; "
        "raise --max-run to give it longer."
    )
    write_message(contract.failure_file, reason + (f" The job said: {said}" if said else ""))
    print(reason, file=sys.stderr)


def run_monitor(model_dir: Path, captured: Path, out: Path, options: Sequence[str]) -> int:
    """The image's `monitor` with explicit paths; the processing tree it would write its
    ExitMessage to is a scratch one (the reason is in its log as well)."""
    command = [
        console_script("monitor"),
        "--baseline",
        str(model_dir),
        "--captured",
        str(captured),
        "--output",
        str(out),
        *options,
    ]
    with tempfile.TemporaryDirectory(prefix="smvision-monitor-") as scratch:
        env = {**os.environ, contract_module.BASE_DIR_ENV: scratch, "PYTHONUNBUFFERED": "1"}
        return run_foreground(command, env)
