"""`deploy`: a real-time endpoint serving a trained model with the image.

Creates the model, the endpoint config and the endpoint (all named after the endpoint)
with `sagemaker.core.resources`, waits for InService and optionally registers target
tracking autoscaling. If a step fails before the endpoint exists, what this run created
is deleted again; a Failed endpoint is left for inspection and `cleanup` removes it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from launch.errors import AwsError, LaunchError
from launch.parsing import capacity_range, positive_int, resource_name, timestamped_name
from launch.serving import add_serving_arguments, model_data, serving_environment
from launch.settings import Settings

if TYPE_CHECKING:
    import boto3

    from launch.aws import SessionFactory

HELP = "create a real-time endpoint for a trained model and wait until it is InService"
VARIANT = "AllTraffic"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_TARGET_INVOCATIONS = 100


@dataclass(frozen=True)
class DeployPlan:
    endpoint_name: str
    model_data: str
    image_uri: str
    role: str
    instance_type: str
    instance_count: int
    environment: Mapping[str, str]
    autoscale: tuple[int, int] | None
    target_invocations: int


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser("deploy", parents=parents, help=HELP, description=HELP + ".")
    add_serving_arguments(parser)
    parser.add_argument("--endpoint-name", metavar="NAME",
                        help="endpoint name, also used for its model and endpoint config "
                        "(default smvision-TIMESTAMP)")
    parser.add_argument("--instance-type", default=DEFAULT_INSTANCE_TYPE, metavar="TYPE",
                        help=f"ml.* instance type (default {DEFAULT_INSTANCE_TYPE}; a GPU type "
                        "such as ml.g5.xlarge speeds up resnet50)")
    parser.add_argument("--instance-count", default="1", metavar="N",
                        help="instances to start with (default 1)")
    parser.add_argument("--autoscale", metavar="MIN:MAX",
                        help="scale between MIN and MAX instances, tracking invocations per "
                        "instance (Application Auto Scaling)")
    parser.add_argument("--target-invocations", metavar="N",
                        help="with --autoscale: invocations per instance per minute to aim "
                        f"for (default {DEFAULT_TARGET_INVOCATIONS})")
    parser.set_defaults(handler=run)


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> DeployPlan:
    name = (resource_name(args.endpoint_name, "--endpoint-name") if args.endpoint_name
            else timestamped_name("smvision", now))
    count = positive_int(args.instance_count, "--instance-count")
    autoscale = capacity_range(args.autoscale, "--autoscale") if args.autoscale else None
    if autoscale and not autoscale[0] <= count <= autoscale[1]:
        raise LaunchError(
            f"--instance-count {count} is outside --autoscale {args.autoscale}; start within "
            "the range."
        )
    if args.target_invocations is not None and autoscale is None:
        raise LaunchError("--target-invocations applies to --autoscale only; add it or drop this.")
    target = (positive_int(args.target_invocations, "--target-invocations")
              if args.target_invocations is not None else DEFAULT_TARGET_INVOCATIONS)
    if not args.instance_type.startswith("ml."):
        raise LaunchError(
            f"--instance-type '{args.instance_type}' is not a SageMaker instance type; use "
            "one such as ml.m5.xlarge."
        )
    return DeployPlan(
        endpoint_name=name,
        model_data=model_data(args),
        image_uri=settings.require("image_uri"),
        role=settings.require("role"),
        instance_type=args.instance_type,
        instance_count=count,
        environment=serving_environment(args),
        autoscale=autoscale,
        target_invocations=target,
    )


def run(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    deployment = plan(args, settings, datetime.now())
    return submit(deployment, open_session(settings.require("region")))


def submit(deployment: DeployPlan, session: boto3.session.Session) -> int:
    from sagemaker.core import shapes
    from sagemaker.core.resources import Endpoint, EndpointConfig

    from launch import autoscaling
    from launch.aws import console_url, reporting, show_sdk_progress
    from launch.serving import check_model_data_exists, create_model

    name = deployment.endpoint_name
    region = str(session.region_name)
    show_sdk_progress()
    check_model_data_exists(session, deployment.model_data)
    print(f"Endpoint {name}: {deployment.instance_count} x {deployment.instance_type} serving "
          f"{deployment.model_data}", flush=True)
    undo: list[Callable[[], Any]] = []
    try:
        model = create_model(session, name, deployment.image_uri, deployment.role,
                             deployment.model_data, deployment.environment)
        undo.append(model.delete)
        with reporting(f"Creating endpoint config {name}"):
            config = EndpointConfig.create(
                session=session, region=region, endpoint_config_name=name,
                production_variants=[shapes.ProductionVariant(
                    variant_name=VARIANT, model_name=name,
                    initial_instance_count=deployment.instance_count,
                    instance_type=deployment.instance_type, initial_variant_weight=1.0,
                )],
            )
        undo.append(config.delete)
        with reporting(f"Creating endpoint {name}"):
            endpoint = Endpoint.create(session=session, region=region, endpoint_name=name,
                                       endpoint_config_name=name)
    except AwsError:
        _undo(reversed(undo))
        raise
    print(f"Console: {console_url(region, 'endpoints/' + name)}", flush=True)
    with reporting(f"Endpoint {name} (remove it with `python -m launch cleanup "
                   f"--endpoint-name {name}`)"):
        endpoint.wait_for_status("InService", poll=15)
    print(f"Status: {endpoint.endpoint_status}")
    if deployment.autoscale:
        low, high = deployment.autoscale
        with reporting(f"Endpoint {name} is InService, but registering autoscaling"):
            policy = autoscaling.register(session, name, VARIANT, low, high,
                                          deployment.target_invocations)
        print(f"Autoscaling: {low} to {high} instances, target "
              f"{deployment.target_invocations} invocations per instance per minute ({policy})")
    print(f"Invoke: python -m launch invoke --region {region} --endpoint-name {name} IMAGE...")
    print(f"Remove: python -m launch cleanup --region {region} --endpoint-name {name}")
    return 0


def _undo(steps: Any) -> None:
    from launch.aws import reporting

    for step in steps:
        try:
            with reporting("Removing what this deploy created"):
                step()
        except AwsError as error:
            print(f"warning: {error}", flush=True)
