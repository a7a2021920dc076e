"""The toy algorithm's entry in the algorithm table, published through the
`smvision.algorithms` entry-point group."""

from __future__ import annotations

from smvision.schema.params import Param, TuningRange
from smvision.schema.specs import AlgorithmSpec

TEMPERATURE = Param(
    "temperature",
    "float",
    0.05,
    "Softmax temperature over negative distances to the class centroids.",
    low=1e-6,
    high=100.0,
    tuning=TuningRange("continuous", 0.01, 1.0, scaling="Logarithmic"),
)

SPEC = AlgorithmSpec(
    name="toy",
    implementation="tests.support.toy_algorithm.centroid:NearestCentroidAlgorithm",
    family="classical",
    summary="nearest class centroid of the pixels (a test's plug-in)",
    parameters=(TEMPERATURE,),
    image_size=16,
    channels="auto",
    min_image_size=4,
    min_image_size_reason="a centroid of fewer pixels says little",
    training_instance_type="ml.c5.xlarge",
    serving_instance_type="ml.c5.large",
    serve_workers=1,
    spans_hosts=False,
)
