"""Rekognition Custom Labels on the same class folders: manifests, project, datasets, a
trained model version, and its evaluation as a report row.

The flow, each step an API call a person can repeat by hand:
1. a Ground Truth manifest per set, written to S3: one JSON line per image with
   `source-ref`, the class attribute (the class's index) and its `-metadata` (class-name,
   confidence, type groundtruth/image-classification, human-annotated, creation-date),
   as "Importing image-level labels in manifest files" describes;
2. CreateProject, CreateDataset TRAIN and TEST from the manifests, waiting for
   CREATE_COMPLETE (DescribeDataset);
3. CreateProjectVersion, waiting for TRAINING_COMPLETED (DescribeProjectVersions; training
   takes from about half an hour to hours);
4. the evaluation: F1 per label from the summary file Custom Labels writes to S3
   (EvaluationResult.Summary), and the billable training time.
The model is never started (StartProjectVersion): evaluation needs no running model, and a
running one bills by the hour. `--stop` stops the project's running models.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from launch.common import pricing
from launch.common.errors import AwsError, LaunchError
from launch.common.parsing import S3Uri
from launch.common.waits import Deadline
from launch.rekognition.prepare import MAX_S3_OBJECT_BYTES, S3_SUFFIXES
from launch.rekognition.sources import Labelled, labelled_set
from smvision.comparison.rows import Qualities, Row

ROW_NAME = "rekognition-custom-labels"
CLASS_ATTRIBUTE = "smvision-class"
JOB_NAME = "smvision"
POLL_S = 60
# How long to wait for a dataset to be created from a manifest, and for a model to train.
DATASET_WAIT_S = 3600
TRAINING_WAIT_S = 48 * 3600
RUNNING = ("STARTING", "RUNNING")
QUALITIES = Qualities(
    data_needed="tens of images per label (AWS's minimum is ten)",
    interpretability="label names with confidences; per-label thresholds",
    setup="an AWS account; AWS trains and hosts the model (hourly while started)",
)


@dataclass(frozen=True)
class CustomLabelsPlan:
    project: str
    version: str
    train: S3Uri
    test: S3Uri
    output: S3Uri  # the folder for manifests and Custom Labels' output

    @property
    def train_manifest(self) -> S3Uri:
        return S3Uri(self.output.bucket, f"{self.output.key}/train.manifest")

    @property
    def test_manifest(self) -> S3Uri:
        return S3Uri(self.output.bucket, f"{self.output.key}/test.manifest")


@dataclass(frozen=True)
class Evaluation:
    version_arn: str
    f1_per_label: Mapping[str, float]
    aggregate_f1: float | None
    test_images: int | None
    billable_training_s: float | None
    summary: S3Uri

    @property
    def macro_f1(self) -> float:
        return sum(self.f1_per_label.values()) / len(self.f1_per_label)


def manifest(images: Sequence[Labelled], class_names: Sequence[str], created: datetime) -> str:
    """The Ground Truth manifest (JSON lines) of one set of labelled S3 images."""
    lines = []
    for item in images:
        lines.append(
            json.dumps(
                {
                    "source-ref": item.image.name,
                    CLASS_ATTRIBUTE: class_names.index(item.label),
                    f"{CLASS_ATTRIBUTE}-metadata": {
                        "class-name": item.label,
                        "confidence": 1,
                        "type": "groundtruth/image-classification",
                        "job-name": JOB_NAME,
                        "human-annotated": "yes",
                        "creation-date": created.strftime("%Y-%m-%dT%H:%M:%S.%f"),
                    },
                }
            )
        )
    return "\n".join(lines) + "\n"


def labelled_images(s3: Any, uri: S3Uri, option: str) -> list[Labelled]:
    """A set's images, refused early when Custom Labels could not read one."""
    images = labelled_set(s3, uri, option)
    bad = [
        item.source
        for item in images
        if not item.image.name.lower().endswith(S3_SUFFIXES)
        or (item.image.size or 0) > MAX_S3_OBJECT_BYTES
    ]
    if bad:
        raise LaunchError(
            f"{option} {uri}: Custom Labels trains on JPEG and PNG files of at most 15 MB; "
            f"{len(bad)} image(s) are not, such as {', '.join(bad[:3])}. Convert them first."
        )
    return images


def train_and_evaluate(
    plan: CustomLabelsPlan,
    rekognition: Any,
    s3: Any,
    show: Callable[[str], None] = print,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Evaluation:
    """Steps 1 to 4 above; returns the evaluation of the trained version."""
    train = labelled_images(s3, plan.train, "--train")
    test = labelled_images(s3, plan.test, "--test")
    class_names = sorted({item.label for item in train})
    missing = sorted({item.label for item in test} - set(class_names))
    if missing:
        raise LaunchError(
            f"--test {plan.test} has class(es) {', '.join(missing)}, which "
            f"--train {plan.train} lacks; every test class needs training images."
        )
    now = datetime.now()
    for images, target in ((train, plan.train_manifest), (test, plan.test_manifest)):
        s3.put_object(
            Bucket=target.bucket, Key=target.key, Body=manifest(images, class_names, now).encode()
        )
        show(f"Manifest {target}: {len(images)} images")
    project_arn = create_project(rekognition, plan.project)
    show(f"Project {plan.project}: {project_arn}")
    for kind, target in (("TRAIN", plan.train_manifest), ("TEST", plan.test_manifest)):
        dataset_arn = rekognition.create_dataset(
            ProjectArn=project_arn,
            DatasetType=kind,
            DatasetSource={
                "GroundTruthManifest": {"S3Object": {"Bucket": target.bucket, "Name": target.key}}
            },
        )["DatasetArn"]
        _wait_for_dataset(rekognition, dataset_arn, kind, show, poll_s, sleep)
    version_arn = rekognition.create_project_version(
        ProjectArn=project_arn,
        VersionName=plan.version,
        OutputConfig={"S3Bucket": plan.output.bucket, "S3KeyPrefix": f"{plan.output.key}/output"},
    )["ProjectVersionArn"]
    show(f"Training model version {version_arn}")
    described = _wait_for_training(rekognition, project_arn, plan.version, show, poll_s, sleep)
    return evaluation(s3, described)


def create_project(rekognition: Any, name: str) -> str:
    from botocore.exceptions import ClientError

    try:
        return str(rekognition.create_project(ProjectName=name)["ProjectArn"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceInUseException":
            raise LaunchError(
                f"--project {name} exists already, with its own datasets; choose a new name, "
                f"or delete it (aws rekognition delete-project --project-arn ...) first."
            ) from error
        raise


def evaluation(s3: Any, described: Mapping[str, Any]) -> Evaluation:
    """F1 per label from the evaluation summary file Custom Labels wrote to S3."""
    result = described.get("EvaluationResult") or {}
    location = (result.get("Summary") or {}).get("S3Object")
    if not location:
        raise AwsError(
            f"Model version {described['ProjectVersionArn']} has no evaluation "
            "summary (EvaluationResult.Summary); it did not finish its test."
        )
    summary_uri = S3Uri(location["Bucket"], location["Name"])
    summary = json.loads(
        s3.get_object(Bucket=summary_uri.bucket, Key=summary_uri.key)["Body"].read()
    )
    per_label = {
        str(entry["Label"]): float(entry["Metrics"]["F1Score"])
        for entry in summary.get("LabelEvaluationResults", [])
    }
    if not per_label:
        raise AwsError(f"{summary_uri} lists no label results (LabelEvaluationResults).")
    details = summary.get("EvaluationDetails") or {}
    return Evaluation(
        version_arn=str(described["ProjectVersionArn"]),
        f1_per_label=per_label,
        aggregate_f1=_float(result.get("F1Score")),
        test_images=details.get("NumberOfTestingImages"),
        billable_training_s=_float(described.get("BillableTrainingTimeInSeconds")),
        summary=summary_uri,
    )


def row(result: Evaluation) -> Row:
    """The report's row: Custom Labels reports F1 per label, not per-image predictions."""
    cost = (
        None
        if result.billable_training_s is None
        else result.billable_training_s / 3600 * pricing.CUSTOM_LABELS_TRAINING_USD_PER_HOUR
    )
    f1 = ", ".join(f"{label} {value:.3f}" for label, value in sorted(result.f1_per_label.items()))
    notes = (
        f"F1 per label on {result.test_images or 'the'} test images, from {result.summary}: "
        f"{f1}; macro-F1 {result.macro_f1:.3f}"
        + (
            f", Custom Labels' aggregate F1 {result.aggregate_f1:.3f}"
            if result.aggregate_f1 is not None
            else ""
        )
        + ". Custom Labels reports no per-image predictions, so no accuracy or interval.",
        f"training billed at ${pricing.CUSTOM_LABELS_TRAINING_USD_PER_HOUR:g} an hour; a "
        f"started model bills ${pricing.CUSTOM_LABELS_INFERENCE_USD_PER_HOUR:g} per inference "
        f"unit-hour whether used or not ({pricing.PRICE_REGION}, as of "
        f"{pricing.PRICES_TAKEN.isoformat()})",
    )
    return Row(
        name=ROW_NAME,
        where="rekognition",
        training_seconds=result.billable_training_s,
        training_cost_usd=cost,
        qualities=QUALITIES,
        notes=notes,
        source=result.version_arn,
    )


def latest_evaluation(rekognition: Any, s3: Any, project: str) -> Evaluation:
    """The evaluation of the project's newest trained model version."""
    versions = [
        version
        for page in rekognition.get_paginator("describe_project_versions").paginate(
            ProjectArn=_project_arn(rekognition, project)
        )
        for version in page["ProjectVersionDescriptions"]
        if (version.get("EvaluationResult") or {}).get("Summary")
    ]
    if not versions:
        raise LaunchError(
            f"--custom-labels {project}: the project has no trained model version "
            "with an evaluation yet; train one with `python -m launch rekognition "
            "custom-labels`."
        )
    return evaluation(s3, max(versions, key=lambda version: version["CreationTimestamp"]))


def stop_running(rekognition: Any, project: str, show: Callable[[str], None] = print) -> list[str]:
    """StopProjectVersion for every started version of the project; their ARNs."""
    stopped = []
    paginator = rekognition.get_paginator("describe_project_versions")
    for page in paginator.paginate(ProjectArn=_project_arn(rekognition, project)):
        for version in page["ProjectVersionDescriptions"]:
            if version["Status"] in RUNNING:
                status = rekognition.stop_project_version(
                    ProjectVersionArn=version["ProjectVersionArn"]
                )["Status"]
                show(f"Stopping {version['ProjectVersionArn']}: {status}")
                stopped.append(str(version["ProjectVersionArn"]))
    if not stopped:
        show(f"No model of project {project} is running; nothing bills by the hour.")
    return stopped


def _project_arn(rekognition: Any, project: str) -> str:
    projects = rekognition.describe_projects(ProjectNames=[project])["ProjectDescriptions"]
    if not projects:
        raise LaunchError(f"Custom Labels project '{project}' does not exist in this region.")
    return str(projects[0]["ProjectArn"])


def _wait_for_dataset(
    rekognition: Any,
    arn: str,
    kind: str,
    show: Callable[[str], None],
    poll_s: float,
    sleep: Callable[[float], None],
) -> None:
    deadline = Deadline(DATASET_WAIT_S, f"dataset {kind} ({arn})", "an hour, for a manifest")
    while True:
        description = rekognition.describe_dataset(DatasetArn=arn)["DatasetDescription"]
        status = description["Status"]
        if status == "CREATE_COMPLETE":
            show(f"Dataset {kind}: {_stats(description)}")
            return
        if status == "CREATE_FAILED":
            raise AwsError(
                f"Dataset {kind} ({arn}) failed: {description.get('StatusMessage', 'no message')}"
            )
        if deadline.passed:
            raise deadline.expired(
                status, f"Look at it: aws rekognition describe-dataset --dataset-arn {arn}"
            )
        sleep(poll_s)


def _wait_for_training(
    rekognition: Any,
    project_arn: str,
    version: str,
    show: Callable[[str], None],
    poll_s: float,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    last = None
    deadline = Deadline(
        TRAINING_WAIT_S,
        f"model version {version} to train",
        "two days, twice the longest a Custom Labels model usually trains",
    )
    while True:
        [described] = rekognition.describe_project_versions(
            ProjectArn=project_arn, VersionNames=[version]
        )["ProjectVersionDescriptions"]
        status = described["Status"]
        if status != last:
            show(f"Model version {version}: {status} {described.get('StatusMessage', '')}".rstrip())
            last = status
        if status == "TRAINING_COMPLETED":
            return dict(described)
        if status == "TRAINING_FAILED":
            raise AwsError(
                f"Training model version {version} failed: "
                f"{described.get('StatusMessage', 'no message')}"
            )
        if deadline.passed:
            raise deadline.expired(
                status,
                "Look at it: aws rekognition describe-project-versions --project-arn "
                f"{project_arn} --version-names {version}",
            )
        sleep(poll_s)


def _stats(description: Mapping[str, Any]) -> str:
    stats = description.get("DatasetStats") or {}
    return (
        f"{stats.get('TotalEntries', '?')} images, {stats.get('LabeledEntries', '?')} "
        f"labelled, {stats.get('ErrorEntries', 0)} with errors"
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
