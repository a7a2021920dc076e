"""The endpoints `deploy` makes besides one model on instances: multi-model, serverless
and asynchronous, each checked on the laptop against what SageMaker allows.

- `--multi-model --model-prefix S3URI`: the container runs in Mode=MultiModel with the
  prefix as its ModelDataUrl; SageMaker loads `PREFIX/NAME.tar.gz` when a request names
  it (`invoke --target-model NAME.tar.gz`; `add-model` puts models there). SageMaker
  sets SAGEMAKER_MULTI_MODEL itself.
- `--serverless MEMORY_MB:MAX_CONCURRENCY`: no instances; the model's environment holds
  the serverless limits (a 4 MB payload, one server worker).
- `--async --output S3URI`: requests queue in SageMaker, bodies come from S3 (up to
  1 GB) and answers go to S3; the model's environment switches `serve` to the
  asynchronous limits (smvision.core.contract.ASYNC_*).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from launch.common.errors import LaunchError
from launch.common.parsing import positive_int, s3_uri
from smvision.core.contract import (
    ASYNC_INFERENCE_ENV,
    MAX_PAYLOAD_ENV,
    SERVERLESS_MAX_PAYLOAD_MB,
    WORKERS_ENV,
)

# What CreateEndpointConfig accepts (ProductionVariantServerlessConfig,
# AsyncInferenceClientConfig).
SERVERLESS_MEMORY_MB = tuple(range(1024, 6144 + 1, 1024))
MAX_SERVERLESS_CONCURRENCY = 200
MAX_ASYNC_CONCURRENCY = 1000


@dataclass(frozen=True)
class Serverless:
    memory_mb: int
    max_concurrency: int


@dataclass(frozen=True)
class AsyncOutput:
    """Where SageMaker writes an asynchronous endpoint's answers and failures."""

    output: str
    failure: str
    max_concurrent: int | None


def add_mode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--multi-model",
        action="store_true",
        help="a multi-model endpoint serving every model.tar.gz under "
        "--model-prefix (each loaded on its first request)",
    )
    parser.add_argument(
        "--serverless",
        metavar="MEMORY_MB:MAX_CONCURRENCY",
        help="a serverless endpoint: MEMORY_MB of "
        f"{', '.join(map(str, SERVERLESS_MEMORY_MB))} and at most "
        f"MAX_CONCURRENCY (1-{MAX_SERVERLESS_CONCURRENCY}) requests at once",
    )
    parser.add_argument(
        "--async",
        dest="async_inference",
        action="store_true",
        help="an asynchronous endpoint: requests from S3 (`invoke --async`), answers to --output",
    )
    parser.add_argument(
        "--output", metavar="S3URI", help="with --async: the S3 prefix for the answers"
    )
    parser.add_argument(
        "--failure",
        metavar="S3URI",
        help="with --async: the S3 prefix for failed requests' errors (default: OUTPUT/failures/)",
    )
    parser.add_argument(
        "--max-concurrent",
        metavar="N",
        help="with --async: requests each instance works on at once "
        f"(1-{MAX_ASYNC_CONCURRENCY}; default: SageMaker's choice)",
    )


def multi_model_prefix(args: argparse.Namespace) -> str | None:
    """The prefix of a multi-model endpoint's models, ending in '/'; None without one."""
    if args.model_prefix is None:
        if args.multi_model:
            raise LaunchError("--multi-model serves the models under --model-prefix S3URI; add it.")
        return None
    if not args.multi_model:
        raise LaunchError(
            "--model-prefix names the models of a multi-model endpoint; add "
            "--multi-model, or pass one model with --model-data."
        )
    uri = s3_uri(args.model_prefix, "--model-prefix")
    if uri.key.endswith(".tar.gz"):
        raise LaunchError(
            f"--model-prefix '{args.model_prefix}' names one model; pass the "
            "folder the models are in, such as s3://BUCKET/smvision/models/."
        )
    return str(uri) if not uri.key or uri.key.endswith("/") else f"{uri}/"


def serverless(args: argparse.Namespace) -> Serverless | None:
    """The --serverless memory and concurrency, checked with the options they exclude."""
    text = args.serverless
    if text is None:
        return None
    memory, separator, concurrency = text.partition(":")
    try:
        config = Serverless(int(memory), int(concurrency))
    except ValueError:
        config = Serverless(0, 0)
    if (
        not separator
        or config.memory_mb not in SERVERLESS_MEMORY_MB
        or not (1 <= config.max_concurrency <= MAX_SERVERLESS_CONCURRENCY)
    ):
        raise LaunchError(
            f"--serverless '{text}' is not MEMORY_MB:MAX_CONCURRENCY with MEMORY_MB one of "
            f"{', '.join(map(str, SERVERLESS_MEMORY_MB))} and MAX_CONCURRENCY 1 to "
            f"{MAX_SERVERLESS_CONCURRENCY}, such as --serverless 2048:5."
        )
    excluded = {
        "--multi-model": args.multi_model,
        "--async": args.async_inference,
        "--autoscale": args.autoscale,
        "--data-capture": args.data_capture,
        "--instance-type": args.instance_type,
        "--instance-count": args.instance_count != "1",
    }
    for option, given in excluded.items():
        if given:
            raise LaunchError(
                f"{option} does not apply to a serverless endpoint, which has "
                "no instances, data capture or multi-model mode; drop it or "
                "--serverless."
            )
    if args.workers is not None and args.workers.strip() != "1":
        raise LaunchError(
            f"--workers {args.workers}: a serverless endpoint runs one server "
            "worker, as SageMaker recommends; drop --workers."
        )
    if args.max_payload_mb is not None and float(args.max_payload_mb) > SERVERLESS_MAX_PAYLOAD_MB:
        raise LaunchError(
            f"--max-payload-mb {args.max_payload_mb}: a serverless endpoint "
            f"takes at most {SERVERLESS_MAX_PAYLOAD_MB} MB per request."
        )
    return config


def async_output(args: argparse.Namespace) -> AsyncOutput | None:
    """Where an asynchronous endpoint writes, checked with the options it excludes."""
    if not args.async_inference:
        for option, given in (
            ("--output", args.output),
            ("--failure", args.failure),
            ("--max-concurrent", args.max_concurrent),
        ):
            if given is not None:
                raise LaunchError(f"{option} applies to --async only; add it or drop this.")
        return None
    if args.multi_model:
        raise LaunchError(
            "--async with --multi-model: SageMaker's asynchronous endpoints "
            "serve one model; drop one of them."
        )
    if args.output is None:
        raise LaunchError(
            "--async needs --output S3URI, the prefix SageMaker writes the answers to."
        )
    output = s3_uri(args.output, "--output")
    failure = (
        s3_uri(args.failure, "--failure")
        if args.failure is not None
        else s3_uri(f"{str(output).rstrip('/')}/failures/", "--output")
    )
    concurrent = None
    if args.max_concurrent is not None:
        concurrent = positive_int(args.max_concurrent, "--max-concurrent")
        if concurrent > MAX_ASYNC_CONCURRENCY:
            raise LaunchError(
                f"--max-concurrent '{args.max_concurrent}' is more than "
                f"SageMaker's {MAX_ASYNC_CONCURRENCY}."
            )
    return AsyncOutput(str(output), str(failure), concurrent)


def mode_environment(
    config: Serverless | None,
    asynchronous: AsyncOutput | None,
    multi_model: bool,
    given: dict[str, str],
) -> dict[str, str]:
    """The model's environment: the serving options given, and what the mode needs."""
    environment = dict(given)
    if config is not None:
        environment.setdefault(MAX_PAYLOAD_ENV, str(SERVERLESS_MAX_PAYLOAD_MB))
        environment[WORKERS_ENV] = "1"
    if asynchronous is not None:
        environment[ASYNC_INFERENCE_ENV] = "true"
    if multi_model and int(environment.get(WORKERS_ENV, "1")) > 1:
        raise LaunchError(
            f"--workers {environment[WORKERS_ENV]} with --multi-model: a "
            "multi-model server runs one worker, which holds every model "
            "SageMaker loads; drop --workers."
        )
    return environment


def respell_serverless_memory(params: dict[str, Any], **_: Any) -> None:
    """A botocore handler for CreateEndpointConfig: sagemaker-core 2.27 sends
    ServerlessConfig's MemorySizeInMB as "MemorySizeInMb" (its snake-to-Pascal case
    conversion; aws/sagemaker-core#225, open), which boto3 refuses."""
    for variant in params.get("ProductionVariants", []):
        config = variant.get("ServerlessConfig") or {}
        if "MemorySizeInMb" in config:
            config["MemorySizeInMB"] = config.pop("MemorySizeInMb")


def serverless_config(config: Serverless) -> Any:
    from sagemaker.core import shapes

    return shapes.ProductionVariantServerlessConfig(
        memory_size_in_mb=config.memory_mb, max_concurrency=config.max_concurrency
    )


def async_inference_config(asynchronous: AsyncOutput) -> Any:
    from sagemaker.core import shapes

    config: dict[str, Any] = {
        "output_config": shapes.AsyncInferenceOutputConfig(
            s3_output_path=asynchronous.output, s3_failure_path=asynchronous.failure
        )
    }
    if asynchronous.max_concurrent is not None:
        config["client_config"] = shapes.AsyncInferenceClientConfig(
            max_concurrent_invocations_per_instance=asynchronous.max_concurrent
        )
    return shapes.AsyncInferenceConfig(**config)
