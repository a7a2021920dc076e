"""A Rekognition Custom Labels project as its API answers it, for the tests of `rekognition`
and `compare --rekognition` (moto has no Custom Labels: botocore's Stubber serves these)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.support.moto_server import BUCKET, REGION

PROJECT = "digits-cl"
PROJECT_ARN = f"arn:aws:rekognition:{REGION}:123456789012:project/{PROJECT}/1700000000000"
VERSION_ARN = (
    f"arn:aws:rekognition:{REGION}:123456789012:project/{PROJECT}/version/v1/1700000000001"
)
SUMMARY_KEY = f"smvision/custom-labels/{PROJECT}/output/EvaluationResultSummary-{PROJECT}-v1.json"


def summary_file(labels: dict[str, float], test_images: int) -> bytes:
    """The evaluation summary as Custom Labels writes it ("Reference: Training results
    summary file" in the Custom Labels guide)."""
    return json.dumps(
        {
            "Version": 1,
            "EvaluationDetails": {
                "ProjectVersionArn": VERSION_ARN,
                "EvaluationEndTimestamp": "2026-11-29T10:00:00.000000",
                "Labels": sorted(labels),
                "NumberOfTestingImages": test_images,
                "NumberOfTrainingImages": 200,
            },
            "AggregatedEvaluationResults": {
                "F1Score": 0.95,
                "Precision": 0.96,
                "Recall": 0.94,
                "ConfusionMatrix": [],
            },
            "LabelEvaluationResults": [
                {
                    "Label": label,
                    "NumberOfTestingImages": test_images // 2,
                    "Metrics": {"F1Score": f1, "Precision": f1, "Recall": f1, "Threshold": 0.5},
                }
                for label, f1 in labels.items()
            ],
        }
    ).encode()


def trained_version(status: str) -> dict[str, Any]:
    version: dict[str, Any] = {
        "ProjectVersionArn": VERSION_ARN,
        "Status": status,
        "CreationTimestamp": datetime(2026, 11, 29, 9),
    }
    if status == "TRAINING_COMPLETED":
        version |= {
            "BillableTrainingTimeInSeconds": 2700,
            "EvaluationResult": {
                "F1Score": 0.95,
                "Summary": {"S3Object": {"Bucket": BUCKET, "Name": SUMMARY_KEY}},
            },
        }
    return version
