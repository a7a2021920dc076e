"""`--algorithm` name -> implementation class, imported on demand.

The algorithm table (`smvision.schema.specs`) names each implementation; modules are imported
only when asked for, so serving an svm never loads TensorFlow.
"""

from __future__ import annotations

import importlib

from smvision.algorithms.base import Algorithm
from smvision.schema import specs


def get(name: str) -> type[Algorithm]:
    """The class for an algorithm name; an unknown name lists the choices."""
    spec = specs.get(name)
    module_name, _, class_name = spec.implementation.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise TypeError(
            f"The algorithm table names {spec.implementation} for '{spec.name}', which is not "
            "a subclass of smvision.algorithms.base.Algorithm."
        )
    return cls


__all__ = ["Algorithm", "get"]
