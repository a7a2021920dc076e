"""The algorithm registry: `--algorithm` name -> implementation, imported on demand.

Modules are imported only when asked for, so serving an svm never loads TensorFlow.
Adding an algorithm is one module and one line here (plus its schema entry).
"""

from __future__ import annotations

import importlib

from smvision.algorithms.base import Algorithm
from smvision.hyperparameters import check_algorithm

_REGISTRY: dict[str, str] = {
    "svm": "smvision.algorithms.svm:SVMAlgorithm",
    "rf": "smvision.algorithms.rf:RandomForestAlgorithm",
    "cnn": "smvision.algorithms.cnn:CNNAlgorithm",
    "resnet50": "smvision.algorithms.resnet50:ResNet50Algorithm",
}


def get(name: str) -> type[Algorithm]:
    """The class for an algorithm name; an unknown name lists the choices."""
    module_name, class_name = _REGISTRY[check_algorithm(name)].split(":")
    cls: type[Algorithm] = getattr(importlib.import_module(module_name), class_name)
    assert issubclass(cls, Algorithm)
    return cls


__all__ = ["Algorithm", "get"]
