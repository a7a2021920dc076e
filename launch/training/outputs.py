"""What a finished training job left in S3: evaluation.json inside output.tar.gz, the model size.

SageMaker uploads the job's /opt/ml/output/data as output.tar.gz beside model.tar.gz
(S3OutputPath/JOB/output/); `train` writes evaluation.json at the top of that folder.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from typing import Any

from launch.common.parsing import S3Uri, s3_uri

EVALUATION_FILE = "evaluation.json"


class OutputMissing(Exception):
    """An output the report needs is not there; the message says which and where."""


def output_archive(described: Mapping[str, Any]) -> S3Uri:
    model = s3_uri(str(described["ModelArtifacts"]["S3ModelArtifacts"]), "S3ModelArtifacts")
    folder = model.key.rsplit("/", 1)[0]
    return S3Uri(model.bucket, f"{folder}/output.tar.gz")


def read_evaluation(s3: Any, described: Mapping[str, Any]) -> dict[str, Any]:
    """evaluation.json of a completed job, read from its output.tar.gz in S3."""
    from botocore.exceptions import ClientError

    archive = output_archive(described)
    try:
        body = s3.get_object(Bucket=archive.bucket, Key=archive.key)["Body"].read()
    except ClientError as error:
        raise OutputMissing(f"{archive} cannot be read ({error}).") from error
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            member = next(
                (
                    m
                    for m in tar.getmembers()
                    if m.isfile() and m.name.removeprefix("./") == EVALUATION_FILE
                ),
                None,
            )
            if member is None:
                raise OutputMissing(
                    f"{archive} holds no {EVALUATION_FILE} (the job had no validation or "
                    "test images to evaluate)."
                )
            extracted = tar.extractfile(member)
            data = json.loads(extracted.read()) if extracted is not None else None
    except (tarfile.TarError, OSError, json.JSONDecodeError) as error:
        raise OutputMissing(f"{archive} is not a readable output archive ({error}).") from error
    if not isinstance(data, dict):
        raise OutputMissing(f"{EVALUATION_FILE} in {archive} is not a JSON object.")
    return data


def model_bytes(s3: Any, described: Mapping[str, Any]) -> int | None:
    """The size of model.tar.gz (compressed), or None when it cannot be read."""
    from botocore.exceptions import ClientError

    model = s3_uri(str(described["ModelArtifacts"]["S3ModelArtifacts"]), "S3ModelArtifacts")
    try:
        return int(s3.head_object(Bucket=model.bucket, Key=model.key)["ContentLength"])
    except ClientError:
        return None
