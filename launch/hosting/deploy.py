"""`deploy`: a real-time endpoint serving a trained model with the image.

Creates the model, the endpoint config and the endpoint (all named after the endpoint)
with `sagemaker.core.resources`, waits for InService and optionally registers target
tracking autoscaling. If a step fails before the endpoint exists, what this run created
is deleted again; a Failed endpoint is left for inspection and `cleanup` removes it.

The model is a training job's model.tar.gz (--model-data, served by --image-uri), an
Approved model package of the registry (--model-package, which names its own image and
model data), or, for a multi-model endpoint, the S3 prefix of many (--multi-model
--model-prefix). --serverless and --async make the other kinds of endpoint
(launch.hosting.endpoint_modes). --data-capture records requests and answers in S3 for `monitor`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError, LaunchError
from launch.common.options import (
    Commands,
    add_name_argument,
    add_wait_timeout_argument,
    chosen_name,
    command_parser,
    planned,
    sagemaker_instance_type,
    wait_timeout_s,
)
from launch.common.parsing import capacity_range, model_package_arn, positive_int, s3_uri
from launch.common.settings import Settings
from launch.common.waits import ENDPOINT_WAIT_S
from launch.hosting.endpoint_modes import (
    AsyncOutput,
    Serverless,
    add_mode_arguments,
    async_inference_config,
    async_output,
    mode_environment,
    multi_model_prefix,
    respell_serverless_memory,
    serverless,
    serverless_config,
)
from launch.hosting.model import (
    MODEL_DATA_HELP,
    add_serving_arguments,
    model_data,
    serving_environment,
)
from smvision.core import media

if TYPE_CHECKING:
    import boto3

HELP = (
    "create an endpoint for a trained model (real-time, multi-model, serverless or "
    "asynchronous) and wait until it is InService"
)
VARIANT = "AllTraffic"
DEFAULT_TARGET_INVOCATIONS = 100
DEFAULT_SAMPLE_PERCENT = 100
# Answers and requests of these types are captured as text; images, which are not
# listed, are captured base64 (SageMaker's rule for types CaptureContentTypeHeader omits).
CAPTURED_AS_JSON = (media.JSON, media.JSON_LINES)
CAPTURED_AS_CSV = (media.CSV,)


@dataclass(frozen=True)
class DataCapture:
    """Where SageMaker writes captured requests and answers, and what share of them."""

    destination: str
    sample_percent: int


@dataclass(frozen=True)
class DeployPlan:
    endpoint_name: str
    # Exactly one of the three: a model.tar.gz or a multi-model prefix served by
    # image_uri, or a model package.
    model_data: str | None
    model_package: str | None
    image_uri: str | None
    role: str
    # None: the serving instance type of the model's algorithm.
    instance_type: str | None
    instance_count: int
    environment: Mapping[str, str]
    autoscale: tuple[int, int] | None
    target_invocations: int
    data_capture: DataCapture | None = None
    model_prefix: str | None = None
    serverless: Serverless | None = None
    asynchronous: AsyncOutput | None = None
    wait_timeout_s: int = ENDPOINT_WAIT_S


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = command_parser(commands, "deploy", parents, HELP)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model-data", metavar="S3URI", help=MODEL_DATA_HELP)
    model.add_argument(
        "--model-package",
        metavar="ARN",
        help="an Approved model package of the registry (`register` prints its "
        "ARN); it names its own image and model data",
    )
    model.add_argument(
        "--model-prefix",
        metavar="S3URI",
        help="with --multi-model: the S3 prefix of the models' model.tar.gz "
        "files (`add-model` copies models there)",
    )
    add_mode_arguments(parser)
    add_serving_arguments(parser, "instances to start with", model_data=False)
    add_name_argument(
        parser,
        "endpoint name, also used for its model and endpoint config",
        "smvision",
        option="--endpoint-name",
    )
    parser.add_argument(
        "--autoscale",
        metavar="MIN:MAX",
        help="scale between MIN and MAX instances, tracking invocations per "
        "instance (Application Auto Scaling)",
    )
    parser.add_argument(
        "--target-invocations",
        metavar="N",
        help="with --autoscale: invocations per instance per minute to aim "
        f"for (default {DEFAULT_TARGET_INVOCATIONS})",
    )
    parser.add_argument(
        "--data-capture",
        metavar="S3URI",
        help="capture requests and answers under this S3 prefix "
        "(S3URI/ENDPOINT/VARIANT/yyyy/mm/dd/hh/*.jsonl) for `monitor`",
    )
    parser.add_argument(
        "--sample-percent",
        metavar="P",
        help="with --data-capture: the share of requests captured, 1 to 100 "
        f"(default {DEFAULT_SAMPLE_PERCENT})",
    )
    add_wait_timeout_argument(parser, "the endpoint to be InService", ENDPOINT_WAIT_S)
    parser.set_defaults(handler=planned(plan, submit))


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> DeployPlan:
    name = chosen_name(args.endpoint_name, "--endpoint-name", "smvision", now)
    count = positive_int(args.instance_count, "--instance-count")
    autoscale = capacity_range(args.autoscale, "--autoscale") if args.autoscale else None
    if autoscale and not autoscale[0] <= count <= autoscale[1]:
        raise LaunchError(
            f"--instance-count {count} is outside --autoscale {args.autoscale}; start within "
            "the range."
        )
    if args.target_invocations is not None and autoscale is None:
        raise LaunchError("--target-invocations applies to --autoscale only; add it or drop this.")
    target = (
        positive_int(args.target_invocations, "--target-invocations")
        if args.target_invocations is not None
        else DEFAULT_TARGET_INVOCATIONS
    )
    package = (
        model_package_arn(args.model_package, "--model-package") if args.model_package else None
    )
    given = serving_environment(args)
    prefix = multi_model_prefix(args)
    config = serverless(args)
    asynchronous = async_output(args)
    return DeployPlan(
        endpoint_name=name,
        model_data=None if package or prefix else model_data(args),
        model_package=package,
        image_uri=None if package else settings.require("image_uri"),
        role=settings.require("role"),
        instance_type=sagemaker_instance_type(args.instance_type) if args.instance_type else None,
        instance_count=count,
        environment=mode_environment(config, asynchronous, prefix is not None, given),
        autoscale=autoscale,
        target_invocations=target,
        data_capture=data_capture(args),
        model_prefix=prefix,
        serverless=config,
        asynchronous=asynchronous,
        wait_timeout_s=wait_timeout_s(args, ENDPOINT_WAIT_S),
    )


def data_capture(args: argparse.Namespace) -> DataCapture | None:
    if args.data_capture is None:
        if args.sample_percent is not None:
            raise LaunchError(
                "--sample-percent applies to --data-capture only; add it or drop this."
            )
        return None
    destination = s3_uri(args.data_capture, "--data-capture")
    percent = DEFAULT_SAMPLE_PERCENT
    if args.sample_percent is not None:
        percent = positive_int(args.sample_percent, "--sample-percent")
        if percent > 100:
            raise LaunchError(
                f"--sample-percent '{args.sample_percent}' is a percentage; use 1 to 100."
            )
    return DataCapture(str(destination).rstrip("/"), percent)


def data_capture_config(capture: DataCapture) -> Any:
    from sagemaker.core import shapes

    return shapes.DataCaptureConfig(
        enable_capture=True,
        initial_sampling_percentage=capture.sample_percent,
        destination_s3_uri=capture.destination,
        capture_options=[shapes.CaptureOption(capture_mode=mode) for mode in ("Input", "Output")],
        capture_content_type_header=shapes.CaptureContentTypeHeader(
            json_content_types=list(CAPTURED_AS_JSON), csv_content_types=list(CAPTURED_AS_CSV)
        ),
    )


def submit(deployment: DeployPlan, session: boto3.session.Session) -> int:
    from launch.common.aws import console_url, reporting
    from launch.common.waits import sdk_deadline
    from launch.hosting import autoscaling

    name = deployment.endpoint_name
    region = str(session.region_name)
    source, instance_type = model_source(deployment, session)
    print(f"Endpoint {name}: {capacity(deployment, instance_type)} serving {source}", flush=True)
    if deployment.data_capture:
        print(
            f"Data capture: {deployment.data_capture.sample_percent}% of requests and "
            f"answers to {deployment.data_capture.destination}/{name}/",
            flush=True,
        )
    endpoint = create_endpoint(deployment, instance_type, session)
    print(f"Console: {console_url(region, 'endpoints/' + name)}", flush=True)
    seconds = deployment.wait_timeout_s
    with (
        reporting(
            f"Endpoint {name} (remove it with `python -m launch cleanup --endpoint-name {name}`)"
        ),
        sdk_deadline(
            f"endpoint {name} to be InService",
            seconds,
            "--wait-timeout",
            f"Look at it: aws sagemaker describe-endpoint --region {region} --endpoint-name "
            f"{name}; remove it: python -m launch cleanup --region {region} --endpoint-name "
            f"{name}",
            lambda: endpoint.refresh().endpoint_status,
        ),
    ):
        endpoint.wait_for_status("InService", poll=15, timeout=seconds)
    print(f"Status: {endpoint.endpoint_status}")
    if deployment.autoscale:
        low, high = deployment.autoscale
        with reporting(f"Endpoint {name} is InService, but registering autoscaling"):
            policy = autoscaling.register(
                session, name, VARIANT, low, high, deployment.target_invocations
            )
        print(
            f"Autoscaling: {low} to {high} instances, target "
            f"{deployment.target_invocations} invocations per instance per minute ({policy})"
        )
    print(
        f"Invoke: python -m launch invoke --region {region} --endpoint-name {name} "
        f"{invoke_arguments(deployment)}"
    )
    print(f"Remove: python -m launch cleanup --region {region} --endpoint-name {name}")
    return 0


def model_source(deployment: DeployPlan, session: boto3.session.Session) -> tuple[str, str]:
    """What the endpoint serves, checked to exist, and the instance type to serve it on
    (unused by a serverless endpoint)."""
    from launch.hosting.approval import check_approved
    from launch.hosting.model import (
        DEFAULT_INSTANCE_TYPE,
        check_model_data_exists,
        count_models,
        serving_instance_type,
    )

    if deployment.model_package:
        package = check_approved(session, deployment.model_package)
        return deployment.model_package, (
            deployment.instance_type or package_instance_type(package)
        )
    if deployment.model_prefix:
        print(
            f"Models: {count_models(session, deployment.model_prefix)} model.tar.gz under "
            f"{deployment.model_prefix} now; SageMaker loads each on its first request.",
            flush=True,
        )
        if deployment.instance_type is None:
            print(
                f"Instance type: {DEFAULT_INSTANCE_TYPE}, the launchers' default for "
                "models of any algorithm; choose one with --instance-type.",
                flush=True,
            )
        return deployment.model_prefix, deployment.instance_type or DEFAULT_INSTANCE_TYPE
    source = str(deployment.model_data)
    check_model_data_exists(session, source)
    if deployment.serverless:
        return source, ""
    return source, deployment.instance_type or serving_instance_type(session, source)


def capacity(deployment: DeployPlan, instance_type: str) -> str:
    if deployment.serverless:
        return (
            f"serverless, {deployment.serverless.memory_mb} MB, up to "
            f"{deployment.serverless.max_concurrency} requests at once,"
        )
    kind = "multi-model " if deployment.model_prefix else ""
    kind += "asynchronous " if deployment.asynchronous else ""
    return f"{kind}{deployment.instance_count} x {instance_type}"


def invoke_arguments(deployment: DeployPlan) -> str:
    if deployment.model_prefix:
        return "--target-model NAME.tar.gz IMAGE..."
    if deployment.asynchronous:
        return "--async FILE..."
    return "IMAGE..."


def package_instance_type(package: Mapping[str, Any]) -> str:
    """The first real-time instance type the model package supports (`register` lists the
    algorithm's serving instance type there)."""
    from launch.hosting.model import DEFAULT_INSTANCE_TYPE

    listed = package.get("InferenceSpecification", {}).get(
        "SupportedRealtimeInferenceInstanceTypes"
    ) or [DEFAULT_INSTANCE_TYPE]
    return str(listed[0])


def create_endpoint(
    deployment: DeployPlan, instance_type: str, session: boto3.session.Session
) -> Any:
    """The model, the endpoint config and the endpoint, all named after the endpoint; what
    was created is deleted again if a later step fails."""
    from sagemaker.core import shapes
    from sagemaker.core.resources import Endpoint, EndpointConfig

    from launch.common.aws import reporting
    from launch.hosting.model import create_model

    name = deployment.endpoint_name
    region = str(session.region_name)
    if deployment.serverless:
        session.events.register(
            "before-parameter-build.sagemaker.CreateEndpointConfig",
            respell_serverless_memory,
            unique_id="smvision-serverless-memory",
        )
    undo: list[Callable[[], Any]] = []
    try:
        model = create_model(
            session,
            name,
            deployment.role,
            deployment.environment,
            image_uri=deployment.image_uri,
            model_data_uri=deployment.model_data or deployment.model_prefix,
            model_package=deployment.model_package,
            multi_model=deployment.model_prefix is not None,
        )
        undo.append(model.delete)
        with reporting(f"Creating endpoint config {name}"):
            config = EndpointConfig.create(
                session=session,
                region=region,
                endpoint_config_name=name,
                production_variants=[
                    shapes.ProductionVariant(
                        variant_name=VARIANT,
                        model_name=name,
                        initial_variant_weight=1.0,
                        **variant_capacity(deployment, instance_type),
                    )
                ],
                data_capture_config=(
                    data_capture_config(deployment.data_capture)
                    if deployment.data_capture
                    else None
                ),
                async_inference_config=(
                    async_inference_config(deployment.asynchronous)
                    if deployment.asynchronous
                    else None
                ),
            )
        undo.append(config.delete)
        with reporting(f"Creating endpoint {name}"):
            return Endpoint.create(
                session=session, region=region, endpoint_name=name, endpoint_config_name=name
            )
    except AwsError:
        _undo(reversed(undo))
        raise


def variant_capacity(deployment: DeployPlan, instance_type: str) -> dict[str, Any]:
    if deployment.serverless:
        return {"serverless_config": serverless_config(deployment.serverless)}
    return {"instance_type": instance_type, "initial_instance_count": deployment.instance_count}


def _undo(steps: Any) -> None:
    from launch.common.aws import reporting

    for step in steps:
        try:
            with reporting("Removing what this deploy created"):
                step()
        except AwsError as error:
            print(f"warning: {error}", flush=True)
