"""What the launchers' jobs cost: a dated table of AWS on-demand prices, us-east-1.

Prices change and differ by region; every figure here is what AWS listed for US East
(N. Virginia) on PRICES_TAKEN, and `--price TYPE=USD_PER_HOUR` overrides an instance's
hourly price for one run (another region, a discount, a type missing here).

Where the figures come from: aws.amazon.com/sagemaker/pricing (Training, On-Demand) and
aws.amazon.com/rekognition/pricing (Image, Group 2 APIs; Custom Labels). Those pages draw
their tables from JSON the search tool used on PRICES_TAKEN could not read, so the values
were taken from public copies of them that agree with each other: SageMaker instance tables
in GitHub repositories that cite the pricing page (JHUAPL-DTC-TA2/wiki
docs/sagemaker_instances.md, goerlitz/nlp-classification notebooks/10kGNAD/sagemaker/
README.md and others), and the cost table of an aws-samples Custom Labels demo (DetectLabels
$0.001 an image, Custom Labels $1 a training hour and $4 an inference hour). Check them
against the pricing pages before relying on a figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from launch.common.errors import LaunchError
from launch.common.parsing import key_value

PRICES_TAKEN = date(2026, 11, 29)
PRICE_REGION = "us-east-1"

# SageMaker training, on-demand, USD per instance-hour: the instance types the launchers
# default to (the algorithm table, the serving defaults) and those their help suggests.
TRAINING_USD_PER_HOUR: Mapping[str, float] = {
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.g4dn.xlarge": 0.736,
    "ml.g5.xlarge": 1.408,
    "ml.p3.2xlarge": 3.825,
    "ml.p3.8xlarge": 14.688,
}

# Rekognition Image, Group 2 (DetectLabels, DetectFaces, DetectText), the first million
# images a month; each API called on an image is billed as one image.
REKOGNITION_IMAGE_USD = 0.001
# Rekognition Custom Labels: training time, and each hour a started model runs.
CUSTOM_LABELS_TRAINING_USD_PER_HOUR = 1.0
CUSTOM_LABELS_INFERENCE_USD_PER_HOUR = 4.0


@dataclass(frozen=True)
class Prices:
    """The dated table with the user's --price overrides on top."""

    overrides: Mapping[str, float] = field(default_factory=dict)

    def hourly(self, instance_type: str) -> float | None:
        if instance_type in self.overrides:
            return self.overrides[instance_type]
        return TRAINING_USD_PER_HOUR.get(instance_type)

    def training_cost(
        self, instance_type: str, instance_count: int, billable_seconds: float | None
    ) -> float | None:
        """Billable seconds times instances times the hourly price; None when either is unknown.

        SageMaker reports BillableTimeInSeconds per instance, and for managed spot training
        already shrunk by the spot saving, so this stays right for --spot jobs.
        """
        hourly = self.hourly(instance_type)
        if hourly is None or billable_seconds is None:
            return None
        return billable_seconds * instance_count * hourly / 3600

    def source(self, instance_type: str) -> str:
        if instance_type in self.overrides:
            return f"${self.overrides[instance_type]:g}/h from --price"
        hourly = TRAINING_USD_PER_HOUR.get(instance_type)
        if hourly is None:
            return f"no price for {instance_type}: pass --price {instance_type}=USD_PER_HOUR"
        return f"${hourly:g}/h on-demand, {PRICE_REGION}, as of {PRICES_TAKEN.isoformat()}"


def rekognition_cost_per_1000_images() -> float:
    return 1000 * REKOGNITION_IMAGE_USD


def parse_prices(pairs: Sequence[str]) -> Prices:
    """--price TYPE=USD_PER_HOUR, repeated."""
    overrides: dict[str, float] = {}
    for pair in pairs:
        instance_type, value = key_value(pair, "--price")
        try:
            hourly = float(value)
        except ValueError:
            hourly = math.nan
        if not instance_type.startswith("ml.") or not (math.isfinite(hourly) and hourly >= 0):
            raise LaunchError(
                f"--price '{pair}' is not ml.TYPE=USD_PER_HOUR with a price of 0 or more, "
                "such as --price ml.g5.xlarge=1.408."
            )
        overrides[instance_type] = hourly
    return Prices(overrides)
