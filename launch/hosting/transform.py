"""`transform`: batch transform over an S3 prefix of images or JSON Lines files.

Images go one per request (SingleRecord, application/x-image) and each yields
`<file>.out` with the server's JSON; JSON Lines files are split by line and batched
(MultiRecord, application/jsonlines) and each yields `<file>.out` with one prediction
per line. The kind is read from what the prefix holds, or given with --content-type.
The model made for the job is deleted once the job ends.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError, Interrupted, LaunchError
from launch.common.options import (
    Commands,
    add_name_argument,
    add_wait_argument,
    add_wait_timeout_argument,
    chosen_name,
    command_parser,
    planned,
    sagemaker_instance_type,
    wait_timeout_s,
)
from launch.common.parsing import S3Uri, positive_int, s3_uri
from launch.common.settings import Settings
from launch.common.waits import TRANSFORM_WAIT_S, WaitExpired
from launch.hosting.model import add_serving_arguments, model_data, serving_environment
from smvision.core import media
from smvision.core.contract import COVERAGE_ENV, TTA_ENV
from smvision.schema.params import TTA_MODES

if TYPE_CHECKING:
    import boto3

HELP = "run a batch transform job over an S3 prefix of images or JSON Lines files"
CONTENT_TYPES = (media.ANY_IMAGE, media.JSON_LINES)


@dataclass(frozen=True)
class InputKind:
    content_type: str
    split_type: str
    batch_strategy: str
    accept: str
    assemble_with: str


KINDS = {
    media.ANY_IMAGE: InputKind(media.ANY_IMAGE, "None", "SingleRecord", media.JSON, "None"),
    media.JSON_LINES: InputKind(media.JSON_LINES, "Line", "MultiRecord", media.JSON_LINES, "Line"),
}


@dataclass(frozen=True)
class TransformPlan:
    job_name: str
    model_data: str
    input: S3Uri
    output: S3Uri
    image_uri: str
    role: str
    # None: the serving instance type of the model's algorithm.
    instance_type: str | None
    instance_count: int
    environment: Mapping[str, str]
    content_type: str | None
    wait: bool
    wait_timeout_s: int = TRANSFORM_WAIT_S


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = command_parser(commands, "transform", parents, HELP, description=__doc__)
    add_serving_arguments(parser, "instances to spread the files over")
    parser.add_argument(
        "--input",
        required=True,
        metavar="S3URI",
        help="S3 prefix of the image files or .jsonl files to classify",
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="S3URI",
        help="S3 prefix for the results (outside --input)",
    )
    parser.add_argument(
        "--content-type",
        choices=CONTENT_TYPES,
        help="what --input holds (default: decided from its file names)",
    )
    parser.add_argument(
        "--tta",
        choices=TTA_MODES,
        help="test-time augmentation of every image: flip or crops, averaged (the model's "
        f"{TTA_ENV}: a batch transform forwards no custom attributes; default none)",
    )
    parser.add_argument(
        "--coverage",
        metavar="P",
        help="answer split-conformal prediction sets at this coverage, abstaining (label "
        f"null) when a set is not one class (the model's {COVERAGE_ENV}; default: no sets)",
    )
    add_name_argument(parser, "the job's exact name, also its model's", "smvision-transform")
    add_wait_argument(
        parser, "the job", note="with --no-wait the model stays for the job and is not deleted"
    )
    add_wait_timeout_argument(parser, "the job", TRANSFORM_WAIT_S)
    parser.set_defaults(handler=planned(plan, submit))


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> TransformPlan:
    source = s3_uri(args.input, "--input")
    destination = s3_uri(args.output, "--output")
    if destination.is_under(source):
        raise LaunchError(
            f"--output {destination} is inside --input {source}; results would be read as "
            "input by the next run. Choose a prefix outside it."
        )
    return TransformPlan(
        job_name=chosen_name(args.job_name, "--job-name", "smvision-transform", now),
        model_data=model_data(args),
        input=source,
        output=destination,
        image_uri=settings.require("image_uri"),
        role=settings.require("role"),
        instance_type=sagemaker_instance_type(args.instance_type) if args.instance_type else None,
        instance_count=positive_int(args.instance_count, "--instance-count"),
        environment=serving_environment(args) | answer_environment(args),
        content_type=args.content_type,
        wait=bool(args.wait),
        wait_timeout_s=wait_timeout_s(args, TRANSFORM_WAIT_S),
    )


def answer_environment(args: argparse.Namespace) -> dict[str, str]:
    """SMVISION_TTA and SMVISION_COVERAGE for --tta and --coverage."""
    environment = {}
    if args.tta and args.tta != "none":
        environment[TTA_ENV] = args.tta
    if args.coverage is not None:
        try:
            coverage = float(args.coverage)
        except ValueError:
            coverage = -1.0
        if not 0.0 < coverage < 1.0:
            raise LaunchError(
                f"--coverage '{args.coverage}': use a probability between 0 and 1 (exclusive), "
                "such as 0.9."
            )
        environment[COVERAGE_ENV] = args.coverage.strip()
    return environment


def input_kind(names: list[str], where: str) -> InputKind:
    """Images or JSON Lines, from the file names under `where` (shown in full in errors:
    s3:// URIs or paths); anything mixed is an error."""
    images = [n for n in names if media.image_content_type(n)]
    lines = [n for n in names if media.is_json_lines(n)]
    others = [n for n in names if n not in images and n not in lines]
    if not names:
        raise LaunchError(
            f"--input {where}: no files under it; put the files to classify there first."
        )
    if others or (images and lines):
        examples = ", ".join((others or lines)[:3])
        raise LaunchError(
            f"--input {where} holds files that are not all images or all JSON Lines (such as "
            f"{examples}); put one kind under it, or pass --content-type to send every file "
            "as that kind."
        )
    return KINDS[media.ANY_IMAGE if images else media.JSON_LINES]


def list_keys(session: boto3.session.Session, prefix: S3Uri) -> list[str]:
    """Up to 1000 objects under the prefix (as s3:// URIs): enough to tell what it holds."""
    from launch.common.aws import reporting

    with reporting(f"Listing --input {prefix}"):
        response = session.client("s3").list_objects_v2(
            Bucket=prefix.bucket, Prefix=prefix.key, MaxKeys=1000
        )
    return [
        f"s3://{prefix.bucket}/{item['Key']}"
        for item in response.get("Contents", [])
        if not str(item["Key"]).endswith("/")
    ]


def submit(transform: TransformPlan, session: boto3.session.Session) -> int:
    from launch.common.aws import console_url, reporting
    from launch.common.waits import sdk_deadline
    from launch.hosting.model import check_model_data_exists, create_model, serving_instance_type

    region = str(session.region_name)
    if transform.content_type:
        kind = KINDS[transform.content_type]
    else:
        kind = input_kind(list_keys(session, transform.input), str(transform.input))
    check_model_data_exists(session, transform.model_data)
    instance_type = transform.instance_type or serving_instance_type(session, transform.model_data)
    name = transform.job_name
    print(
        f"Transform job {name}: {transform.input} ({kind.content_type}, "
        f"{kind.batch_strategy}) -> {transform.output} on {transform.instance_count} x "
        f"{instance_type}",
        flush=True,
    )
    model = create_model(
        session,
        name,
        transform.role,
        transform.environment,
        image_uri=transform.image_uri,
        model_data_uri=transform.model_data,
    )
    with model_for_the_job(model, name, region) as keep_model:
        with reporting(f"Creating transform job {name}"):
            job = create_transform_job(transform, kind, instance_type, session)
        print(f"Console: {console_url(region, 'transform-jobs/' + name)}", flush=True)
        if not transform.wait:
            keep_model()
            print(
                f"Not waiting; model {name} stays for the job. Delete it afterwards: "
                f"aws sagemaker delete-model --region {region} --model-name {name}"
            )
            return 0
        with (
            reporting(f"Transform job {name}"),
            sdk_deadline(
                f"transform job {name}",
                transform.wait_timeout_s,
                "--wait-timeout",
                f"Look at it: aws sagemaker describe-transform-job --region {region} "
                f"--transform-job-name {name}; model {name} stays for it: aws sagemaker "
                f"delete-model --region {region} --model-name {name} once it ends",
                lambda: job.refresh().transform_job_status,
            ),
        ):
            job.wait(poll=15, timeout=transform.wait_timeout_s)
    if job.transform_job_status != "Completed":
        raise AwsError(
            f"Transform job {name} ended {job.transform_job_status}: {job.failure_reason}"
        )
    print(f"Status: {job.transform_job_status}")
    print(f"Results: {transform.output} (one .out file per input file)")
    return 0


def create_transform_job(
    transform: TransformPlan, kind: InputKind, instance_type: str, session: boto3.session.Session
) -> Any:
    from sagemaker.core import shapes
    from sagemaker.core.resources import TransformJob

    return TransformJob.create(
        session=session,
        region=str(session.region_name),
        transform_job_name=transform.job_name,
        model_name=transform.job_name,
        batch_strategy=kind.batch_strategy,
        environment=dict(transform.environment),
        transform_input=shapes.TransformInput(
            data_source=shapes.TransformDataSource(
                s3_data_source=shapes.TransformS3DataSource(
                    s3_data_type="S3Prefix", s3_uri=str(transform.input)
                )
            ),
            content_type=kind.content_type,
            split_type=kind.split_type,
        ),
        transform_output=shapes.TransformOutput(
            s3_output_path=str(transform.output),
            accept=kind.accept,
            assemble_with=kind.assemble_with,
        ),
        transform_resources=shapes.TransformResources(
            instance_type=instance_type,
            instance_count=transform.instance_count,
        ),
    )


@contextmanager
def model_for_the_job(model: Any, name: str, region: str) -> Iterator[Callable[[], None]]:
    """Delete the model made for the job once the block ends, unless the block calls the
    function it is given (the job goes on without us) or is interrupted."""
    kept = False

    def keep() -> None:
        nonlocal kept
        kept = True

    try:
        yield keep
    except WaitExpired:  # the job goes on, and its sentence says the model stays for it
        kept = True
        raise
    except Interrupted as error:
        kept = True
        raise Interrupted(
            f"{error} Model {name} stays for the job; delete it afterwards: "
            f"aws sagemaker delete-model --region {region} "
            f"--model-name {name}"
        ) from error
    finally:
        if not kept:
            _delete_model(model, name)


def _delete_model(model: Any, name: str) -> None:
    from launch.common.aws import reporting

    try:
        with reporting(f"Deleting model {name}"):
            model.delete()
    except AwsError as error:
        print(f"warning: {error}", flush=True)
        return
    print(f"Deleted model {name}", flush=True)
