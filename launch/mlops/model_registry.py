"""`register` and `approve`: trained models as versions in a model package group.

`register` reads what the training job left beside model.tar.gz: its algorithm and image
(DescribeTrainingJob) and evaluation.json (in output.tar.gz). It writes the test results
as Model Monitor's model-quality statistics to S3, creates the model package group if
missing, and adds a model package: the image, the content types and answer types `serve`
handles, the algorithm's instance types, the statistics as model metrics, and Domain and
Task for an image classifier; PendingManualApproval unless --approve. `approve` sets a
package Approved, and only an Approved package is deployed (`deploy --model-package`).
The retraining pipeline registers with the same request (`package_request`).
"""

from __future__ import annotations

import argparse
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError, LaunchError
from launch.common.options import Commands, command_parser
from launch.common.parsing import model_package_arn, resource_name, s3_uri, timestamped_name
from launch.common.settings import Settings
from launch.hosting.approval import APPROVED, PENDING
from launch.hosting.model import MODEL_ARTIFACT_TAIL, MODEL_DATA_HELP, model_data
from launch.training.spec import OUTPUT_ROOT
from smvision.core import media, model_quality
from smvision.schema import specs

if TYPE_CHECKING:
    import boto3

    from launch.common.aws import SessionFactory

REGISTER_HELP = "register a trained model as a new version of a model package group"
APPROVE_HELP = "approve a model package version, so that `deploy --model-package` serves it"
DOMAIN = "COMPUTER_VISION"
TASK = "IMAGE_CLASSIFICATION"
# SageMaker writes a training job's output/data as this archive beside model.tar.gz.
OUTPUT_ARCHIVE = "output.tar.gz"


@dataclass(frozen=True)
class RegisterPlan:
    model_data: str
    group: str
    approve: bool
    algorithm: str | None
    image_uri: str | None
    bucket: str
    description: str | None

    @property
    def job_name(self) -> str | None:
        """The training job, when model_data is where SageMaker put its model."""
        parts = s3_uri(self.model_data, "--model-data").key.split("/")
        return parts[-3] if len(parts) >= 3 and tuple(parts[-2:]) == MODEL_ARTIFACT_TAIL else None

    @property
    def output_archive(self) -> str:
        return self.model_data[: -len("model.tar.gz")] + OUTPUT_ARCHIVE


def add_parser(commands: Commands, parents: list[argparse.ArgumentParser]) -> None:
    register = command_parser(commands, "register", parents, REGISTER_HELP)
    register.add_argument(
        "--model-data",
        required=True,
        metavar="S3URI",
        help=f"{MODEL_DATA_HELP}; its evaluation.json is read from the {OUTPUT_ARCHIVE} beside it",
    )
    register.add_argument(
        "--group",
        required=True,
        metavar="NAME",
        help="the model package group (created if missing)",
    )
    register.add_argument(
        "--approve", action="store_true", help=f"register it {APPROVED} (default {PENDING})"
    )
    register.add_argument(
        "--algorithm",
        choices=specs.names(),
        help="the model's algorithm (default: the training job's)",
    )
    register.add_argument("--description", metavar="TEXT", help="a description of this version")
    register.set_defaults(handler=run_register)
    approve = command_parser(commands, "approve", parents, APPROVE_HELP)
    approve.add_argument(
        "--package",
        required=True,
        metavar="ARN",
        help="the model package version (`register` printed its ARN)",
    )
    approve.add_argument(
        "--description",
        metavar="TEXT",
        help="why it is approved (the package's ApprovalDescription)",
    )
    approve.set_defaults(handler=run_approve)


def plan_register(args: argparse.Namespace, settings: Settings) -> RegisterPlan:
    description = args.description
    if description is not None and len(description) > 1024:
        raise LaunchError("--description is longer than SageMaker's 1024 characters.")
    return RegisterPlan(
        model_data=model_data(args),
        group=resource_name(args.group, "--group"),
        approve=bool(args.approve),
        algorithm=args.algorithm,
        image_uri=settings.get("image_uri"),
        bucket=settings.require("bucket"),
        description=description,
    )


def run_register(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    registration = plan_register(args, settings)
    return register(registration, open_session(settings.require("region")), datetime.now())


def run_approve(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    arn = model_package_arn(args.package, "--package")
    return approve(open_session(settings.require("region")), arn, args.description)


def package_request(
    *,
    group: Any,
    image: Any,
    model_data_url: Any,
    algorithm: str,
    statistics_uri: Any,
    approval: Any,
    metadata: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The CreateModelPackage request of one smvision model (values may be pipeline
    variables: the pipeline registers with this same request)."""
    instance_types = [specs.get(algorithm).serving_instance_type]
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "InferenceSpecification": {
            "Containers": [{"Image": image, "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": list(media.CONTENT_TYPES),
            "SupportedResponseMIMETypes": list(media.ACCEPT_TYPES),
            "SupportedRealtimeInferenceInstanceTypes": instance_types,
            "SupportedTransformInstanceTypes": instance_types,
        },
        "ModelApprovalStatus": approval,
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": media.JSON, "S3Uri": statistics_uri}}
        },
        "Domain": DOMAIN,
        "Task": TASK,
        "CustomerMetadataProperties": {"algorithm": algorithm, **(metadata or {})},
    }
    if description:
        request["ModelPackageDescription"] = description
    return request


def register(registration: RegisterPlan, session: boto3.session.Session, now: datetime) -> int:
    from launch.common.aws import reporting
    from launch.hosting.model import check_model_data_exists

    check_model_data_exists(session, registration.model_data)
    algorithm, image = training_facts(session, registration)
    evaluation = read_evaluation(session, registration.output_archive)
    statistics = model_quality.from_evaluation(evaluation)
    accuracy = model_quality.accuracy_of(statistics, model_quality.EVALUATION_FILE)
    split = statistics["dataset"]["split"]
    version = registration.job_name or timestamped_name("model", now)
    key = f"{OUTPUT_ROOT}/registry/{registration.group}/{version}/{model_quality.FILE}"
    with reporting(f"Writing the model-quality statistics to s3://{registration.bucket}/{key}"):
        session.client("s3").put_object(
            Bucket=registration.bucket,
            Key=key,
            Body=json.dumps(statistics, indent=2).encode(),
            ContentType=media.JSON,
        )
    ensure_group(session, registration.group)
    request = package_request(
        group=registration.group,
        image=image,
        model_data_url=registration.model_data,
        algorithm=algorithm,
        statistics_uri=f"s3://{registration.bucket}/{key}",
        approval=APPROVED if registration.approve else PENDING,
        metadata={
            f"{split}_accuracy": f"{accuracy:.6g}",
            **({"training_job": registration.job_name} if registration.job_name else {}),
        },
        description=registration.description,
    )
    with reporting(
        f"Registering {registration.model_data} in model package group {registration.group}"
    ):
        arn = str(session.client("sagemaker").create_model_package(**request)["ModelPackageArn"])
    print(f"Model package: {arn}")
    print(f"{algorithm}, {split} accuracy {accuracy:.4f}; status {request['ModelApprovalStatus']}")
    if not registration.approve:
        print(f"Approve: python -m launch approve --region {session.region_name} --package {arn}")
    print(
        f"Deploy (once Approved): python -m launch deploy --region {session.region_name} "
        f"--model-package {arn}"
    )
    return 0


def training_facts(session: boto3.session.Session, registration: RegisterPlan) -> tuple[str, str]:
    """The algorithm and image: the options', else those of the job that trained it."""
    from launch.common.aws import describe_or_none

    described: dict[str, Any] = {}
    if registration.job_name:
        described = (
            describe_or_none(
                session.client("sagemaker").describe_training_job,
                TrainingJobName=registration.job_name,
            )
            or {}
        )
    job_algorithm = (described.get("HyperParameters") or {}).get("algorithm")
    if registration.algorithm and job_algorithm and registration.algorithm != job_algorithm:
        raise LaunchError(
            f"--algorithm {registration.algorithm} contradicts training job "
            f"{registration.job_name}, which trained {job_algorithm}; drop --algorithm."
        )
    algorithm = registration.algorithm or job_algorithm
    image = registration.image_uri or (described.get("AlgorithmSpecification") or {}).get(
        "TrainingImage"
    )
    if not algorithm or not image:
        source = (
            f"training job {registration.job_name}"
            if described
            else "no training job (the model data is not at JOB/output/model.tar.gz, or the "
            "job is gone)"
        )
        missing = " and ".join(
            option
            for option, value in (("--algorithm", algorithm), ("--image-uri", image))
            if not value
        )
        raise LaunchError(f"{source} does not say the model's algorithm and image; pass {missing}.")
    if algorithm not in specs.names():
        raise LaunchError(
            f"Training job {registration.job_name} trained '{algorithm}', which "
            f"this smvision does not know ({', '.join(specs.names())})."
        )
    return str(algorithm), str(image)


def read_evaluation(session: boto3.session.Session, archive_uri: str) -> dict[str, Any]:
    """evaluation.json from a training job's output.tar.gz, read as it streams."""
    from botocore.exceptions import ClientError

    from launch.common.aws import is_missing, reporting

    uri = s3_uri(archive_uri, "--model-data")
    try:
        body = session.client("s3").get_object(Bucket=uri.bucket, Key=uri.key)["Body"]
    except ClientError as error:
        if is_missing(error):
            raise AwsError(
                f"{archive_uri}: no such object. register reads the test results from the "
                f"{model_quality.EVALUATION_FILE} a training job writes into {OUTPUT_ARCHIVE} "
                "beside model.tar.gz; give the model.tar.gz of a job that evaluated on "
                "validation or test data."
            ) from error
        with reporting(f"Reading {archive_uri}"):
            raise
    try:
        with tarfile.open(fileobj=body, mode="r|gz") as archive:
            for member in archive:
                if member.isfile() and member.name.split("/")[-1] == model_quality.EVALUATION_FILE:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        return dict(json.loads(handle.read()))
    except (tarfile.TarError, OSError, ValueError) as error:
        raise AwsError(
            f"{archive_uri} is not a readable tar.gz with "
            f"{model_quality.EVALUATION_FILE} ({error})."
        ) from error
    raise AwsError(
        f"{archive_uri} holds no {model_quality.EVALUATION_FILE}: the job had no validation or "
        "test data to evaluate on; train with --test (or --validation) and register that model."
    )


def ensure_group(session: boto3.session.Session, group: str) -> None:
    from launch.common.aws import describe_or_none, reporting

    sagemaker = session.client("sagemaker")
    if describe_or_none(sagemaker.describe_model_package_group, ModelPackageGroupName=group):
        return
    with reporting(f"Creating model package group {group}"):
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group, ModelPackageGroupDescription="smvision image classifiers"
        )
    print(f"Created model package group {group}")


def approve(session: boto3.session.Session, arn: str, description: str | None) -> int:
    from launch.common.aws import describe_or_none, reporting

    described = describe_or_none(
        session.client("sagemaker").describe_model_package, ModelPackageName=arn
    )
    if described is None:
        raise AwsError(f"Model package {arn}: no such package in {session.region_name}.")
    if described.get("ModelApprovalStatus") == APPROVED:
        print(f"Model package {arn} is Approved already.")
        return 0
    request = {"ModelPackageArn": arn, "ModelApprovalStatus": APPROVED}
    if description:
        request["ApprovalDescription"] = description
    with reporting(f"Approving model package {arn}"):
        session.client("sagemaker").update_model_package(**request)
    print(f"Approved {arn}")
    print(f"Deploy: python -m launch deploy --region {session.region_name} --model-package {arn}")
    return 0
