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
from launch.options import (
    Commands,
    add_name_argument,
    chosen_name,
    command_parser,
    planned,
    sagemaker_instance_type,
)
from launch.parsing import capacity_range, positive_int
from launch.serving import add_serving_arguments, model_data, serving_environment
from launch.settings import Settings

if TYPE_CHECKING:
    import boto3

HELP = "create a real-time endpoint for a trained model and wait until it is InService"
VARIANT = "AllTraffic"
DEFAULT_TARGET_INVOCATIONS = 100


@dataclass(frozen=True)
class DeployPlan:
    endpoint_name: str
    model_data: str
    image_uri: str
    role: str
    # None: the serving instance type of the model's algorithm.
    instance_type: str | None
    instance_count: int
    environment: Mapping[str, str]
    autoscale: tuple[int, int] | None
    target_invocations: int


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = command_parser(commands, "deploy", parents, HELP)
    add_serving_arguments(parser, "instances to start with")
    add_name_argument(parser, "endpoint name, also used for its model and endpoint config",
                      "smvision", option="--endpoint-name")
    parser.add_argument("--autoscale", metavar="MIN:MAX",
                        help="scale between MIN and MAX instances, tracking invocations per "
                        "instance (Application Auto Scaling)")
    parser.add_argument("--target-invocations", metavar="N",
                        help="with --autoscale: invocations per instance per minute to aim "
                        f"for (default {DEFAULT_TARGET_INVOCATIONS})")
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
    target = (positive_int(args.target_invocations, "--target-invocations")
              if args.target_invocations is not None else DEFAULT_TARGET_INVOCATIONS)
    return DeployPlan(
        endpoint_name=name,
        model_data=model_data(args),
        image_uri=settings.require("image_uri"),
        role=settings.require("role"),
        instance_type=sagemaker_instance_type(args.instance_type) if args.instance_type else None,
        instance_count=count,
        environment=serving_environment(args),
        autoscale=autoscale,
        target_invocations=target,
    )


def submit(deployment: DeployPlan, session: boto3.session.Session) -> int:
    from launch import autoscaling
    from launch.aws import console_url, reporting
    from launch.serving import check_model_data_exists, serving_instance_type

    name = deployment.endpoint_name
    region = str(session.region_name)
    check_model_data_exists(session, deployment.model_data)
    instance_type = deployment.instance_type or serving_instance_type(session,
                                                                      deployment.model_data)
    print(f"Endpoint {name}: {deployment.instance_count} x {instance_type} serving "
          f"{deployment.model_data}", flush=True)
    endpoint = create_endpoint(deployment, instance_type, session)
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


def create_endpoint(deployment: DeployPlan, instance_type: str,
                    session: boto3.session.Session) -> Any:
    """The model, the endpoint config and the endpoint, all named after the endpoint; what
    was created is deleted again if a later step fails."""
    from sagemaker.core import shapes
    from sagemaker.core.resources import Endpoint, EndpointConfig

    from launch.aws import reporting
    from launch.serving import create_model

    name = deployment.endpoint_name
    region = str(session.region_name)
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
                    instance_type=instance_type, initial_variant_weight=1.0,
                )],
            )
        undo.append(config.delete)
        with reporting(f"Creating endpoint {name}"):
            return Endpoint.create(session=session, region=region, endpoint_name=name,
                                   endpoint_config_name=name)
    except AwsError:
        _undo(reversed(undo))
        raise


def _undo(steps: Any) -> None:
    from launch.aws import reporting

    for step in steps:
        try:
            with reporting("Removing what this deploy created"):
                step()
        except AwsError as error:
            print(f"warning: {error}", flush=True)
