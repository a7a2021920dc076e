"""`train --local`, `deploy --local` and `transform --local`: the same commands, on this
machine, in Docker.

    python -m launch train --local --algorithm svm --train DIR [--validation DIR]
        [--test DIR] [--hp KEY=VALUE ...] --image-uri IMAGE [--output-dir DIR]
    python -m launch deploy --local --model-data DIR/compressed_artifacts/model.tar.gz
        --image-uri IMAGE [--port 8080]
    python -m launch transform --local --model-data model.tar.gz --input DIR --output DIR
        --image-uri IMAGE

All go through the SageMaker SDK's local mode (launch.local.mode): the channels are
local folders, the model lands in OUTPUT_DIR/compressed_artifacts/model.tar.gz, the
endpoint serves on localhost:PORT until Ctrl-C, and the transform writes FILE.out per
input file. Options that only mean something on SageMaker (spot, autoscaling, ...) are
refused with --local rather than ignored.
"""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from launch.common.errors import LaunchError
from launch.common.options import Handler, chosen_name
from launch.common.parsing import positive_int
from launch.common.settings import Settings
from launch.hosting.model import model_data as s3_model_data
from launch.hosting.model import serving_environment
from launch.hosting.transform import KINDS, InputKind, input_kind
from launch.local.mode import LOCAL_INSTANCE_TYPES, LocalModeError
from launch.training.spec import MANIFEST_OPTIONS, ChannelSource, JobSpec, given_channels, job_spec

if TYPE_CHECKING:
    from launch.common.aws import SessionFactory

DEFAULT_OUTPUT_ROOT = Path("smvision-local")
DEFAULT_PORT = "8080"
DEFAULT_REGION = "us-east-1"
# /ping is polled this often while a local endpoint serves; this many misses in a row
# mean the container is gone.
PING_INTERVAL_S = 2.0
PING_MISSES = 3
# Flags of `train` that only mean something on SageMaker, with their defaults.
_REMOTE_TRAIN_OPTIONS = {
    "spot": ("--spot", False),
    "max_wait": ("--max-wait", None),
    "checkpoint_s3_uri": ("--checkpoint-s3-uri", None),
    "wait": ("--no-wait", True),
}
_REMOTE_TRANSFORM_OPTIONS = {
    "instance_count": ("--instance-count", "1"),
    "wait": ("--no-wait", True),
}
_REMOTE_DEPLOY_OPTIONS = {
    "autoscale": ("--autoscale", None),
    "target_invocations": ("--target-invocations", None),
    "instance_count": ("--instance-count", "1"),
    "model_package": ("--model-package", None),
    "data_capture": ("--data-capture", None),
    "sample_percent": ("--sample-percent", None),
    "multi_model": ("--multi-model", False),
    "model_prefix": ("--model-prefix", None),
    "serverless": ("--serverless", None),
    "async_inference": ("--async", False),
    "output": ("--output", None),
    "failure": ("--failure", None),
    "max_concurrent": ("--max-concurrent", None),
}


def add_local_options(commands: Mapping[str, argparse.ArgumentParser]) -> None:
    """Give `train` and `deploy` a --local switch that runs them through local mode."""
    train = commands["train"]
    train.add_argument(
        "--local",
        action="store_true",
        help="run the job on this machine in Docker (SageMaker SDK local mode): "
        "--train/--validation/--test/--pretrained name local folders; "
        "needs Docker and Docker Compose",
    )
    train.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="with --local: a new folder for the job's files (default "
        f"./{DEFAULT_OUTPUT_ROOT}/JOB_NAME); the model is "
        "DIR/compressed_artifacts/model.tar.gz",
    )
    _dispatch(train, run_train, {"output_dir": ("--output-dir", None)})
    deploy = commands["deploy"]
    deploy.add_argument(
        "--local",
        action="store_true",
        help="serve the model on this machine in Docker (SageMaker SDK local "
        "mode) until Ctrl-C; --model-data may be a local model.tar.gz",
    )
    deploy.add_argument(
        "--port",
        default=DEFAULT_PORT,
        metavar="PORT",
        help=f"with --local: the port on this machine (default {DEFAULT_PORT})",
    )
    _dispatch(deploy, run_deploy, {"port": ("--port", DEFAULT_PORT)})
    transform = commands["transform"]
    transform.add_argument(
        "--local",
        action="store_true",
        help="run the job on this machine in Docker (SageMaker SDK local "
        "mode): --model-data may be a local model.tar.gz, --input and "
        "--output are local folders (the files directly in --input)",
    )
    _dispatch(transform, run_transform, {})


def _dispatch(
    parser: argparse.ArgumentParser,
    local: Callable[[argparse.Namespace, Settings], int],
    local_only: Mapping[str, tuple[str, object]],
) -> None:
    remote: Handler = parser.get_default("handler")

    def handler(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
        if args.local:
            return local(args, settings)
        _refuse(args, local_only, "applies to --local only; add --local or drop it")
        return remote(args, settings, open_session)

    parser.set_defaults(handler=handler)


def _refuse(
    args: argparse.Namespace, options: Mapping[str, tuple[str, object]], reason: str
) -> None:
    for name, (flag, default) in options.items():
        if getattr(args, name) != default:
            raise LaunchError(f"{flag} {reason}.")


@dataclass(frozen=True)
class LocalTrainPlan:
    job_name: str
    spec: JobSpec
    output_dir: Path


def plan_train(args: argparse.Namespace, settings: Settings, now: datetime) -> LocalTrainPlan:
    _refuse(
        args,
        _REMOTE_TRAIN_OPTIONS,
        "does not apply to --local, which runs the job in this terminal; drop it",
    )
    spec = job_spec(args, settings, local_channels(args), _local_instance_type(args))
    job_name = chosen_name(args.job_name, "--job-name", f"smvision-{spec.algorithm}-local", now)
    output_dir = (args.output_dir or DEFAULT_OUTPUT_ROOT / job_name).resolve()
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise LaunchError(
            f"--output-dir {output_dir} exists and is not an empty folder; "
            "pick a new one, so that no earlier job's files mix in."
        )
    return LocalTrainPlan(job_name, spec, output_dir)


def local_channels(args: argparse.Namespace) -> dict[str, ChannelSource]:
    if args.input_mode != "File":
        raise LaunchError(
            f"--input-mode {args.input_mode} does not apply to --local: the SDK's "
            "local mode copies folders (File mode). Drop it, or run "
            "`python -m smvision.local train`, which emulates Pipe mode."
        )
    channels = {}
    for channel, option, value in given_channels(args):
        if option in MANIFEST_OPTIONS.values():
            raise LaunchError(
                f"{option} streams in Pipe mode, which the SDK's local mode does "
                "not run; use `python -m smvision.local train --manifest ...`, "
                "which emulates it with a FIFO, or drop --local."
            )
        if value.startswith("s3://"):
            raise LaunchError(
                f"{option} '{value}' is in S3; with --local, pass a local folder "
                f"(`aws s3 sync {value} DIR`) or drop --local."
            )
        if not Path(value).is_dir():
            raise LaunchError(f"{option} '{value}': no such folder.")
        channels[channel] = ChannelSource(str(Path(value).resolve()))
    return channels


def _local_instance_type(args: argparse.Namespace) -> str:
    instance_type = str(args.instance_type or LOCAL_INSTANCE_TYPES[0])
    if instance_type not in LOCAL_INSTANCE_TYPES:
        raise LaunchError(
            f"--instance-type '{instance_type}' does not apply to --local; use "
            f"{' or '.join(LOCAL_INSTANCE_TYPES)} (the default is local_cpu)."
        )
    return instance_type


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    from launch.local.mode import train_local

    job = plan_train(args, settings, datetime.now())
    spec = job.spec
    print(
        f"Local training job {job.job_name}: {spec.algorithm} in {spec.image_uri} on "
        f"{spec.instance_count} x {spec.instance_type}; files in {job.output_dir}",
        flush=True,
    )
    result = train_local(spec, job.output_dir, base_job_name=job.job_name)
    print(f"Model artifact: {result.model_data}")
    print(f"Job output: {result.output_dir} (also {result.output_data})")
    print(
        f"Serve it: python -m launch deploy --local --image-uri {spec.image_uri} "
        f"--model-data {result.model_data}"
    )
    return 0


@dataclass(frozen=True)
class LocalDeployPlan:
    endpoint_name: str
    model_data: str
    image: str
    port: int
    environment: Mapping[str, str]
    instance_type: str
    region: str


def plan_deploy(args: argparse.Namespace, settings: Settings, now: datetime) -> LocalDeployPlan:
    _refuse(
        args,
        _REMOTE_DEPLOY_OPTIONS,
        "does not apply to --local, which serves one container on this machine; drop it",
    )
    port = positive_int(args.port, "--port")
    if port > 65535:
        raise LaunchError(f"--port '{args.port}' is not a TCP port; use 1 to 65535.")
    model_data, region = local_model_data(args, settings)
    return LocalDeployPlan(
        endpoint_name=chosen_name(args.endpoint_name, "--endpoint-name", "smvision-local", now),
        model_data=model_data,
        image=settings.require("image_uri"),
        port=port,
        environment=serving_environment(args),
        instance_type=local_serving_instance_type(args),
        region=region,
    )


def local_model_data(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """--model-data on this machine or in S3, and the region to read it from."""
    model_data = str(args.model_data)
    if model_data.startswith("s3://"):
        return s3_model_data(args), settings.require("region")
    if not Path(model_data).exists():
        raise LaunchError(
            f"--model-data '{model_data}': no such file or folder; pass the "
            "model.tar.gz that `train --local` printed."
        )
    return model_data, settings.get("region") or DEFAULT_REGION


def local_serving_instance_type(args: argparse.Namespace) -> str:
    return "local_gpu" if args.instance_type == "local_gpu" else "local"


def run_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from launch.local.mode import local_endpoint

    deployment = plan_deploy(args, settings, datetime.now())
    print(
        f"Local endpoint {deployment.endpoint_name}: {deployment.image} serving "
        f"{deployment.model_data} on port {deployment.port}",
        flush=True,
    )
    with local_endpoint(
        deployment.image,
        deployment.model_data,
        deployment.port,
        deployment.endpoint_name,
        deployment.environment,
        deployment.instance_type,
        deployment.region,
    ) as endpoint:
        print(
            f"Local endpoint {endpoint.name} is InService at {endpoint.url}/invocations; "
            "Ctrl-C stops and removes it.",
            flush=True,
        )
        print(
            f"Try: curl -H 'Content-Type: image/jpeg' --data-binary @IMAGE.jpg "
            f"{endpoint.url}/invocations",
            flush=True,
        )
        _serve_until_stopped(endpoint.is_serving)
    print(f"Local endpoint {deployment.endpoint_name} stopped and removed.", flush=True)
    return 0


def _serve_until_stopped(is_serving: Callable[[], bool]) -> None:
    """Block until Ctrl-C or SIGTERM (a normal stop), or until /ping stops answering."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Installed even where SIGINT came ignored (a job started with `&` by a script).
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    misses = 0
    try:
        while misses < PING_MISSES:
            time.sleep(PING_INTERVAL_S)
            misses = 0 if is_serving() else misses + 1
    except KeyboardInterrupt:
        return
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    raise LocalModeError("The local endpoint stopped answering /ping; its log is above.")


@dataclass(frozen=True)
class LocalTransformPlan:
    job_name: str
    model_data: str
    image: str
    input_dir: Path
    output_dir: Path
    kind: InputKind
    environment: Mapping[str, str]
    instance_type: str
    region: str


def plan_transform(
    args: argparse.Namespace, settings: Settings, now: datetime
) -> LocalTransformPlan:
    _refuse(
        args,
        _REMOTE_TRANSFORM_OPTIONS,
        "does not apply to --local, which runs one container in this terminal; drop it",
    )
    input_dir, output_dir = Path(args.input).resolve(), Path(args.output).resolve()
    for option, folder in (("--input", args.input), ("--output", args.output)):
        if str(folder).startswith("s3://"):
            raise LaunchError(
                f"{option} '{folder}' is in S3; with --local, pass a local folder or drop --local."
            )
    if not input_dir.is_dir():
        raise LaunchError(f"--input '{args.input}': no such folder.")
    if output_dir == input_dir or output_dir.is_relative_to(input_dir):
        raise LaunchError(
            f"--output {output_dir} is inside --input {input_dir}; choose a folder outside it."
        )
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise LaunchError(
            f"--output {output_dir} exists and is not an empty folder; pick a "
            "new one, so that no earlier job's results mix in."
        )
    files = sorted(p for p in input_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files and any(p.is_dir() for p in input_dir.iterdir()):
        raise LaunchError(
            f"--input {input_dir} holds folders but no files: local mode reads "
            "only the files directly in it; pass the folder that holds them."
        )
    model_data, region = local_model_data(args, settings)
    kind = (
        KINDS[args.content_type]
        if args.content_type
        else input_kind([str(p) for p in files], str(input_dir))
    )
    return LocalTransformPlan(
        job_name=chosen_name(args.job_name, "--job-name", "smvision-transform-local", now),
        model_data=model_data,
        image=settings.require("image_uri"),
        input_dir=input_dir,
        output_dir=output_dir,
        kind=kind,
        environment=serving_environment(args),
        instance_type=local_serving_instance_type(args),
        region=region,
    )


def run_transform(args: argparse.Namespace, settings: Settings) -> int:
    from launch.local.mode import transform_local

    job = plan_transform(args, settings, datetime.now())
    print(
        f"Local transform job {job.job_name}: {job.input_dir} ({job.kind.content_type}, "
        f"{job.kind.batch_strategy}) -> {job.output_dir} with {job.image}",
        flush=True,
    )
    job.output_dir.mkdir(parents=True, exist_ok=True)
    results = transform_local(
        job.image,
        job.model_data,
        job.job_name,
        job.input_dir,
        job.output_dir,
        job.kind,
        job.environment,
        job.instance_type,
        job.region,
    )
    print(f"Results: {len(results)} file(s) in {job.output_dir} (one FILE.out per input file)")
    return 0
