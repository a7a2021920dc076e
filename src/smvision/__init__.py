"""smvision: image classifiers trained and served in one SageMaker image."""

from smvision.core.metrics import METRIC_DEFINITIONS

__all__ = ["METRIC_DEFINITIONS", "__version__"]
__version__ = "0.1.0"
