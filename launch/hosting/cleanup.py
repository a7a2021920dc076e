"""`cleanup`: delete an endpoint, its endpoint config, its models and its autoscaling.

Works from what AWS describes, so it also removes what a half-finished `deploy` left:
without the endpoint it looks for the config and model that `deploy` names after it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from launch.common.errors import AwsError
from launch.common.options import Commands, add_endpoint_argument, command_parser
from launch.common.parsing import resource_name
from launch.common.settings import Settings

if TYPE_CHECKING:
    import boto3

    from launch.common.aws import SessionFactory

HELP = "delete an endpoint with its endpoint config, model(s) and autoscaling"


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = command_parser(commands, "cleanup", parents, HELP)
    add_endpoint_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    name = resource_name(args.endpoint_name, "--endpoint-name")
    return delete_endpoint(open_session(settings.require("region")), name)


def delete_endpoint(session: boto3.session.Session, name: str) -> int:
    from launch.common.aws import describe_or_none, reporting
    from launch.hosting import autoscaling

    sagemaker = session.client("sagemaker")
    endpoint = describe_or_none(sagemaker.describe_endpoint, EndpointName=name)
    config_name = endpoint["EndpointConfigName"] if endpoint else name
    config = describe_or_none(sagemaker.describe_endpoint_config, EndpointConfigName=config_name)
    variants = config["ProductionVariants"] if config else []
    model_names = sorted({v["ModelName"] for v in variants}) if config else [name]
    deleted: list[str] = []
    if endpoint:
        for variant in endpoint.get("ProductionVariants", []):
            with reporting(f"Removing autoscaling of endpoint {name}"):
                deleted += autoscaling.deregister(session, name, variant["VariantName"])
        with reporting(f"Deleting endpoint {name}"):
            sagemaker.delete_endpoint(EndpointName=name)
        deleted.append(f"endpoint {name}")
    if config:
        with reporting(f"Deleting endpoint config {config_name}"):
            sagemaker.delete_endpoint_config(EndpointConfigName=config_name)
        deleted.append(f"endpoint config {config_name}")
    for model_name in model_names:
        if describe_or_none(sagemaker.describe_model, ModelName=model_name):
            with reporting(f"Deleting model {model_name}"):
                sagemaker.delete_model(ModelName=model_name)
            deleted.append(f"model {model_name}")
    if not deleted:
        raise AwsError(
            f"Nothing to clean up: no endpoint, endpoint config or model named {name} in "
            f"{session.region_name}."
        )
    for item in deleted:
        print(f"Deleted {item}")
    return 0
