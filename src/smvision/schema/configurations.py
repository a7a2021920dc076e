"""What a comparison runs: algorithms, and classical ones on other features, by name.

`svm` is the algorithm with its defaults; `svm+deep` is svm with features=deep, the
fixed-feature extractor of transfer learning (a frozen ImageNet ResNet50's pooled output
into the SVM), which a practitioner tries beside fine-tuning the network. Any classical
algorithm joined by '+' to a features value names such a configuration (`rf+hog+deep`).
Standard library only: the launchers import it on a laptop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from smvision.schema import hyperparameters, specs
from smvision.schema.params import HyperparameterError

# The rows compare adds when ImageNet weights are at hand: the fixed-feature extractors.
FIXED_FEATURES = ("svm+deep", "rf+deep")


@dataclass(frozen=True)
class Configuration:
    """A row of a comparison: an algorithm and the hyperparameters that make it this row."""

    name: str
    algorithm: str
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def uses_deep_features(self) -> bool:
        return "deep" in self.values.get("features", "").split("+")

    def qualities(self) -> tuple[str, str, str]:
        """The guide's data needed, interpretability and setup columns for this row."""
        spec = specs.get(self.algorithm)
        if not self.uses_deep_features:
            return spec.data_needed, spec.interpretability, spec.setup
        return (
            "hundreds of images: ImageNet features transfer",
            "low: 2048 ImageNet features; Grad-CAM is not drawn for them",
            "CPU: TensorFlow and ImageNet weights (about 100 MB); the network is not trained",
        )


def parse(name: str) -> Configuration:
    """'svm', 'resnet50', 'svm+deep', 'rf+hog+deep' -> its Configuration; a name that is
    none of these is a HyperparameterError that lists what is accepted."""
    algorithm, plus, features = name.strip().lower().partition("+")
    spec = specs.get(algorithm)
    if not plus:
        return Configuration(spec.name, spec.name)
    param = hyperparameters.schema(spec.name).get("features")
    if param is None:
        classical = [s.name for s in specs.table().values() if "features" in _keys(s.name)]
        raise HyperparameterError(
            f"'{name}' joins features to {spec.name}, which takes none; a configuration is "
            f"a classical algorithm ({', '.join(classical)}) and its features, such as "
            f"{' or '.join(FIXED_FEATURES)}."
        )
    value = param.parse(features)
    return Configuration(f"{spec.name}+{value}", spec.name, {"features": str(value)})


def _keys(algorithm: str) -> set[str]:
    return set(hyperparameters.schema(algorithm))
