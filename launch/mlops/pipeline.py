"""`pipeline create|start|status`: a SageMaker Pipeline that retrains, evaluates and
registers a model only when it is good enough.

create  builds the pipeline NAME (launch.mlops.pipeline_definition) and creates or updates it:
        train with the given algorithm, evaluate with the image's `gate`, register the
        model in --group only when its test accuracy reaches AccuracyThreshold and is not
        below the latest approved version's; otherwise the execution fails and says why.
        The data URIs, each --hp hyperparameter, the threshold, the group and the new
        version's approval status are pipeline parameters, their defaults as given here.
start   starts an execution; --train, --validation, --test, --pretrained, --hp and
        --threshold override the parameters' defaults for that execution.
status  shows the latest execution (or --execution ARN): its status and each step's,
        with the reason of a step that failed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError, LaunchError
from launch.common.options import Commands, command_parser
from launch.common.parsing import key_value, resource_name, s3_uri
from launch.common.settings import Settings
from launch.hosting.approval import APPROVED, PENDING
from launch.mlops import pipeline_definition
from launch.mlops.pipeline_definition import (
    CHANNEL_PARAMETERS,
    THRESHOLD,
    TRAINING_STEP,
    PipelineSpec,
)
from launch.training import spec as jobs
from launch.training.definition import JobDefinition

if TYPE_CHECKING:
    import boto3

    from launch.common.aws import SessionFactory

HELP = "a SageMaker Pipeline that retrains, evaluates and registers a model"
DEFAULT_THRESHOLD = 0.9


@dataclass(frozen=True)
class StartPlan:
    name: str
    overrides: Mapping[str, str]  # channel and threshold options, by parameter name
    hyperparameters: tuple[str, ...]  # --hp KEY=VALUE pairs, checked once the definition is read


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = command_parser(commands, "pipeline", parents, HELP, description=__doc__)
    actions = parser.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="create, start or status"
    )
    create = actions.add_parser("create", parents=parents, help="create or update the pipeline")
    jobs.add_job_arguments(create)
    _add_name(create)
    create.add_argument(
        "--group",
        required=True,
        metavar="NAME",
        help="the model package group new versions go to (created if missing)",
    )
    create.add_argument(
        "--threshold",
        default=str(DEFAULT_THRESHOLD),
        metavar="ACCURACY",
        help="the test accuracy a new model must reach to be registered "
        f"(the {THRESHOLD} parameter; default {DEFAULT_THRESHOLD})",
    )
    create.add_argument(
        "--approve",
        action="store_true",
        help=f"register new versions {APPROVED} (default {PENDING})",
    )
    create.set_defaults(handler=run_create)
    start = actions.add_parser("start", parents=parents, help="start an execution")
    _add_name(start)
    for channel, option in jobs.CHANNEL_OPTIONS.items():
        start.add_argument(
            option,
            metavar="S3URI",
            help=f"this execution's {channel} data (default: the pipeline's)",
        )
    start.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter the pipeline was created with, for this execution",
    )
    start.add_argument(
        "--threshold",
        metavar="ACCURACY",
        help="this execution's accuracy threshold (default: the pipeline's)",
    )
    start.set_defaults(handler=run_start)
    status = actions.add_parser("status", parents=parents, help="show an execution's steps")
    _add_name(status)
    status.add_argument("--execution", metavar="ARN", help="the execution (default: the latest)")
    status.set_defaults(handler=run_status)


def _add_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, metavar="NAME", help="the pipeline's name")


def threshold(text: str, option: str = "--threshold") -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise LaunchError(
            f"{option} '{text}' is an accuracy; use a number from 0 to 1, such as 0.9."
        )
    return value


# create --------------------------------------------------------------------------------------


def run_create(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    name = resource_name(args.name, "--name", max_length=256)
    job = jobs.sagemaker_job_spec(args, settings)
    if "test" not in job.channels:
        raise LaunchError(
            "pipeline create needs --test: the pipeline registers a model by its test accuracy."
        )
    spec = _pipeline_spec(
        name,
        JobDefinition(
            job,
            settings.require("role"),
            jobs.output_prefix(settings.require("bucket"), "pipelines"),
        ),
        args,
        settings,
    )
    return create(spec, open_session(settings.require("region")))


def _pipeline_spec(
    name: str, job: JobDefinition, args: argparse.Namespace, settings: Settings
) -> PipelineSpec:
    return PipelineSpec(
        name=name,
        job=job,
        group=resource_name(args.group, "--group"),
        threshold=threshold(args.threshold),
        approval=APPROVED if args.approve else PENDING,
        bucket=settings.require("bucket"),
        region=settings.require("region"),
    )


def create(spec: PipelineSpec, session: boto3.session.Session) -> int:
    from launch.common.aws import console_url, describe_or_none, reporting, show_sdk_progress
    from launch.mlops.model_registry import ensure_group

    show_sdk_progress()
    with reporting(f"Building pipeline {spec.name}"):
        definition = pipeline_definition.build(spec, session).definition()
    ensure_group(session, spec.group)
    sagemaker = session.client("sagemaker")
    request = {
        "PipelineName": spec.name,
        "PipelineDefinition": definition,
        "RoleArn": spec.job.role,
        "PipelineDescription": f"smvision: train {spec.job.spec.algorithm}, evaluate, "
        f"register in {spec.group}",
    }
    if describe_or_none(sagemaker.describe_pipeline, PipelineName=spec.name):
        with reporting(f"Updating pipeline {spec.name}"):
            arn = sagemaker.update_pipeline(**request)["PipelineArn"]
        print(f"Updated pipeline {arn}")
    else:
        with reporting(f"Creating pipeline {spec.name}"):
            arn = sagemaker.create_pipeline(**request)["PipelineArn"]
        print(f"Created pipeline {arn}")
    parameters = json.loads(definition)["Parameters"]
    print("Parameters: " + ", ".join(f"{p['Name']}={p.get('DefaultValue')}" for p in parameters))
    print(f"Console: {console_url(str(session.region_name), 'pipelines')}")
    print(
        f"Start: python -m launch pipeline start --region {session.region_name} --name {spec.name}"
    )
    return 0


# start ---------------------------------------------------------------------------------------


def plan_start(args: argparse.Namespace) -> StartPlan:
    overrides = {}
    for channel, option in jobs.CHANNEL_OPTIONS.items():
        value = getattr(args, channel)
        if value:
            overrides[CHANNEL_PARAMETERS[channel]] = str(s3_uri(value, option))
    if args.threshold is not None:
        overrides[THRESHOLD] = str(threshold(args.threshold))
    for pair in args.hp:
        key_value(pair, "--hp")
    return StartPlan(resource_name(args.name, "--name", max_length=256), overrides, tuple(args.hp))


def run_start(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    starting = plan_start(args)
    return start(starting, open_session(settings.require("region")))


def start(starting: StartPlan, session: boto3.session.Session) -> int:
    from launch.common.aws import describe_or_none, reporting

    sagemaker = session.client("sagemaker")
    described = describe_or_none(sagemaker.describe_pipeline, PipelineName=starting.name)
    if described is None:
        raise AwsError(
            f"Pipeline {starting.name}: no such pipeline in {session.region_name}; "
            "create it with `python -m launch pipeline create`."
        )
    definition = json.loads(described["PipelineDefinition"])
    parameters = execution_parameters(definition, starting)
    with reporting(f"Starting pipeline {starting.name}"):
        arn = sagemaker.start_pipeline_execution(
            PipelineName=starting.name, PipelineParameters=parameters
        )["PipelineExecutionArn"]
    print(f"Execution {arn}")
    for parameter in parameters:
        print(f"  {parameter['Name']} = {parameter['Value']}")
    print(
        f"Status: python -m launch pipeline status --region {session.region_name} "
        f"--name {starting.name} --execution {arn}"
    )
    return 0


def execution_parameters(
    definition: Mapping[str, Any], starting: StartPlan
) -> list[dict[str, str]]:
    """The overrides as PipelineParameters, each checked against what the pipeline declares
    (and hyperparameters against the algorithm's schema)."""
    declared = {p["Name"] for p in definition.get("Parameters", [])}
    training = next(s for s in definition["Steps"] if s["Name"] == TRAINING_STEP)
    algorithm = training["Arguments"]["HyperParameters"]["algorithm"]
    values = dict(starting.overrides)
    hyperparameters = jobs.validated_hyperparameters(algorithm, starting.hyperparameters)
    values |= {key: value for key, value in hyperparameters.items() if key != "algorithm"}
    for name in values:
        if name not in declared:
            option = next(
                (f"--{c}" for c, p in CHANNEL_PARAMETERS.items() if p == name), f"--hp {name}"
            )
            raise LaunchError(
                f"{option}: pipeline {starting.name} has no {name} parameter (it has "
                f"{', '.join(sorted(declared))}); recreate it with that option to vary it."
            )
    return [{"Name": name, "Value": value} for name, value in values.items()]


# status --------------------------------------------------------------------------------------


def run_status(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    name = resource_name(args.name, "--name", max_length=256)
    session = open_session(settings.require("region"))
    return show_status(session.client("sagemaker"), name, args.execution)


def show_status(sagemaker: Any, name: str, execution: str | None) -> int:
    """The execution's status and each step's, with the reason of what failed; `sagemaker`
    is a boto3 client."""
    from launch.common.aws import reporting

    with reporting(f"Reading the executions of pipeline {name}"):
        if execution is None:
            summaries = sagemaker.list_pipeline_executions(
                PipelineName=name, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
            )["PipelineExecutionSummaries"]
            if not summaries:
                raise AwsError(
                    f"Pipeline {name} has no executions; start one with "
                    f"`python -m launch pipeline start --name {name}`."
                )
            execution = str(summaries[0]["PipelineExecutionArn"])
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution)
        steps = sagemaker.list_pipeline_execution_steps(
            PipelineExecutionArn=execution, SortOrder="Ascending"
        )["PipelineExecutionSteps"]
    status = described["PipelineExecutionStatus"]
    reason = described.get("FailureReason")
    print(f"Execution {execution}: {status}{': ' + reason if reason else ''}")
    for step in steps:
        line = f"  {step['StepName']}: {step['StepStatus']}"
        if step.get("FailureReason"):
            line += f": {step['FailureReason']}"
        print(line + _registered(step))
    return 0


def _registered(step: Mapping[str, Any]) -> str:
    package = (step.get("Metadata") or {}).get("RegisterModel", {}).get("Arn")
    return f" ({package})" if package else ""
