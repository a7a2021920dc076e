"""Run training and serving as SageMaker runs the image, without AWS and without Docker.

    python -m smvision.local train --algorithm svm --channel train=DIR [--channel ...]
        [--manifest CHANNEL=FILE --attribute-names IMAGE,LABEL[,META]] [--pipe CHANNEL]
        [--hp KEY=VALUE ...] --job-dir JOBDIR
    python -m smvision.local serve --job-dir JOBDIR [--port PORT]
    python -m smvision.local monitor --model-dir DIR --captured DIR --out DIR [OPTIONS]
    python -m smvision.local export --job-dir JOBDIR --format tflite|onnx
        [--quantize float16|int8]
    python -m smvision.local compare --channel train=DIR [--channel ...]
        [--algorithms svm,rf,...] [--hp [ALG:]KEY=VALUE ...] --out DIR

`train` lays out JOBDIR/opt/ml exactly as a SageMaker training job finds it, then runs
the image's own training command (the sagemaker-training toolkit's `train`) with
SAGEMAKER_BASE_DIR pointing there. Running it again on the same JOBDIR restarts the same
job: input, model and output are laid out afresh, checkpoints are kept. The same tree
bind-mounted at /opt/ml is what `docker run -v JOBDIR/opt/ml:/opt/ml IMAGE train` uses.
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
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from smvision import contract as contract_module
from smvision import pipemode, recordio
from smvision.contract import CHANNELS, Contract
from smvision.pipemode import PipeError, PipeFeeder

# The toolkit waits (up to 15 minutes) for every host name in resourceconfig.json to
# resolve. SageMaker's names (algo-1, ...) resolve only inside a job or a compose network,
# so outside a container we use the toolkit's own switch for local runs to skip the wait.
SKIP_HOST_WAIT_ENV = {"SM_STUDIO_LOCAL_MODE": "true"}


def job_contract(job_dir: Path) -> Contract:
    return contract_module.load(
        {contract_module.BASE_DIR_ENV: str(job_dir.resolve() / "opt" / "ml")}
    )


@dataclass(frozen=True)
class PipeChannel:
    """A channel streamed in Pipe mode: an augmented manifest (its attributes, each a
    RecordIO record) when `attribute_names` are given, else the .rec files of a folder."""

    source: Path
    attribute_names: tuple[str, ...] = ()

    def check(self, channel: str) -> None:
        """Refuse, before training starts, what the stream would fail on."""
        if not self.attribute_names:
            if not sorted(self.source.rglob("*.rec")):
                raise SystemExit(f"--pipe {channel}: {self.source} holds no .rec files to stream.")
            return
        try:
            for number, entry in enumerate(
                pipemode.read_manifest(self.source, self.attribute_names), start=1
            ):
                for name in self.attribute_names:
                    if name.endswith("-ref"):
                        pipemode.resolve_ref(self.source, str(entry[name]), number)
        except (PipeError, OSError) as error:
            raise SystemExit(f"--manifest {channel}={self.source}: {error}") from None

    def records(self) -> Iterator[bytes]:
        if self.attribute_names:
            yield from pipemode.manifest_records(self.source, self.attribute_names)
            return
        for rec_file in sorted(self.source.rglob("*.rec")):
            with rec_file.open("rb") as stream:
                yield from recordio.read_records(stream, str(rec_file))

    def input_config(self) -> dict[str, str]:
        return {
            "TrainingInputMode": contract_module.PIPE_MODE,
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": (
                contract_module.RECORDIO_WRAPPER if self.attribute_names else "None"
            ),
            "ContentType": contract_module.RECORDIO_CONTENT_TYPE,
        }


def start_pipes(contract: Contract, pipes: Mapping[str, PipeChannel]) -> None:
    """A FIFO per Pipe-mode channel, fed from a thread of this process."""
    for name, pipe in pipes.items():
        PipeFeeder(functools.partial(contract.pipe_path, name), pipe.records).start()


def lay_out_job(
    job_dir: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, str],
    hosts: Sequence[str] = ("algo-1",),
    current_host: str = "algo-1",
    pipes: Mapping[str, PipeChannel] | None = None,
) -> Contract:
    """Write JOBDIR/opt/ml as SageMaker does; keep checkpoints/ from an earlier run. Pipe
    channels get their mode in inputdataconfig.json; `start_pipes` creates their FIFOs."""
    pipes = pipes or {}
    contract = job_contract(job_dir)
    for directory in (contract.input_dir, contract.model_dir, contract.output_dir):
        if directory.exists():
            shutil.rmtree(directory)
    for directory in (
        contract.config_dir,
        contract.data_dir,
        contract.model_dir,
        contract.output_data_dir,
        contract.checkpoint_dir,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    for name, source in channels.items():
        if name not in pipes:
            _copy_channel(source, contract.channel_dir(name))
    _write(contract.hyperparameters_file, {k: str(v) for k, v in hyperparameters.items()})
    file_mode = {
        "TrainingInputMode": contract_module.FILE_MODE,
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    }
    _write(
        contract.input_data_config_file,
        {name: file_mode for name in channels if name not in pipes}
        | {name: pipe.input_config() for name, pipe in pipes.items()},
    )
    _write(
        contract.resource_config_file,
        {
            "current_host": current_host,
            "current_instance_type": "local",
            "current_group_name": "homogeneousCluster",
            "hosts": list(hosts),
            "instance_groups": [
                {
                    "instance_group_name": "homogeneousCluster",
                    "instance_type": "local",
                    "hosts": list(hosts),
                }
            ],
            "network_interface_name": "eth0",
        },
    )
    return contract


def _copy_channel(source: Path, destination: Path) -> None:
    """Hard-link (else copy) a channel into place, so a bind mount of opt/ml sees real files."""
    if not source.exists():
        raise SystemExit(f"--channel {destination.name}={source}: no such file or directory.")
    if source.is_dir():
        shutil.copytree(source, destination, copy_function=_link_or_copy)
    else:
        destination.mkdir(parents=True)
        _link_or_copy(str(source), str(destination / source.name))


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def training_environment(
    contract: Contract, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env[contract_module.BASE_DIR_ENV] = str(contract.base_dir)
    env[contract_module.TRAINING_MODULE_ENV] = contract_module.TRAINING_MODULE
    env["PYTHONUNBUFFERED"] = "1"
    env.update(SKIP_HOST_WAIT_ENV)
    return env


def console_script(name: str) -> str:
    """A console script of this interpreter's environment (the venv's `train`, `serve`)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"'{name}' is not installed next to {sys.executable}; run `make venv`.")
    return found


def run_foreground(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run a command, pass SIGINT/SIGTERM on to it, and return its exit status."""
    child = subprocess.Popen(list(command), env=dict(env))

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    key, value = text.split("=", 1)
    return key.strip(), value


def train_command(
    algorithm: str,
    channels: Mapping[str, Path],
    job_dir: Path,
    hyperparameters: Mapping[str, str] | None = None,
    manifests: Mapping[str, Path] | None = None,
    attribute_names: Sequence[str] = (),
    pipes: Sequence[str] = (),
) -> list[str]:
    """The argv of `python -m smvision.local train` (this interpreter) for these arguments."""
    command = [sys.executable, "-m", "smvision.local", "train", "--algorithm", algorithm]
    command += ["--job-dir", str(job_dir)]
    for name, path in channels.items():
        command += ["--channel", f"{name}={path}"]
    for name, path in (manifests or {}).items():
        command += ["--manifest", f"{name}={path}"]
    if attribute_names:
        command += ["--attribute-names", ",".join(attribute_names)]
    for name in pipes:
        command += ["--pipe", name]
    for key, value in (hyperparameters or {}).items():
        command += ["--hp", f"{key}={value}"]
    return command


def export_job(job_dir: Path, fmt: str, quantize: str) -> int:
    """`export`: write the compressed model and say what it changed."""
    from smvision import export  # TensorFlow and the converters: only for this command

    try:
        record = export.export(job_contract(job_dir), fmt, quantize)
    except (export.ExportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = record["evaluation"]
    print(
        f"Wrote {record['file']} ({record['bytes'] / 1e6:.2f} MB; the Keras model: "
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
    train.add_argument(
        "--channel",
        action="append",
        type=_key_value,
        default=[],
        metavar="NAME=DIR",
        help=f"a channel ({', '.join(CHANNELS)}) and its directory",
    )
    train.add_argument(
        "--manifest",
        action="append",
        type=_key_value,
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
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter, passed as a string as SageMaker does",
    )
    train.add_argument("--job-dir", required=True, type=Path, help="where opt/ml is laid out")
    train.add_argument(
        "--hosts", default="algo-1", help="comma-separated hosts of the cluster (default algo-1)"
    )
    train.add_argument("--current-host", default="algo-1", help="this process's host")
    serve = commands.add_parser("serve", help="serve the model a job directory holds")
    serve.add_argument("--job-dir", required=True, type=Path)
    serve.add_argument("--port", type=int, default=contract_module.DEFAULT_PORT)
    monitor = commands.add_parser(
        "monitor", help="compare captured requests with a model's baseline, as the "
        "monitoring job does")
    monitor.add_argument("--model-dir", required=True, type=Path,
                         help="the model directory that holds baseline.json, or model.tar.gz")
    monitor.add_argument("--captured", required=True, type=Path,
                         help="a folder of data-capture .jsonl files (searched recursively)")
    monitor.add_argument("--out", required=True, type=Path,
                         help="where the report, plots and constraint_violations.json go")
    monitor.add_argument("options", nargs=argparse.REMAINDER,
                         help="options of the image's monitor: --since, --until, thresholds")
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
    from smvision.local_compare import command as compare  # it builds on this module

    compare.add_parser(commands, _key_value)
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
        from smvision.local_compare import command as compare

        return compare.run(args)
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
        return run_foreground([console_script("train")], training_environment(contract))
    if args.command == "monitor":
        return run_monitor(args.model_dir, args.captured, args.out, args.options)
    if args.command == "export":
        return export_job(args.job_dir, args.format, args.quantize)
    contract = job_contract(args.job_dir)
    env = dict(os.environ)
    env[contract_module.BASE_DIR_ENV] = str(contract.base_dir)
    env[contract_module.PORT_ENV] = str(args.port)
    return run_foreground([console_script("serve")], env)


def run_monitor(model_dir: Path, captured: Path, out: Path, options: Sequence[str]) -> int:
    """The image's `monitor` with explicit paths; the processing tree it would write its
    ExitMessage to is a scratch one (the reason is in its log as well)."""
    command = [console_script("monitor"), "--baseline", str(model_dir), "--captured",
               str(captured), "--output", str(out), *options]
    with tempfile.TemporaryDirectory(prefix="smvision-monitor-") as scratch:
        env = {**os.environ, contract_module.BASE_DIR_ENV: scratch, "PYTHONUNBUFFERED": "1"}
        return run_foreground(command, env)


if __name__ == "__main__":
    raise SystemExit(main())
