"""train.parse_args: hyperparameters exactly as the sagemaker-training toolkit passes them."""

import pytest
from sagemaker_training import mapping

from smvision.training.main import ArgumentError, parse_args


def test_the_toolkits_own_argument_list_parses_back() -> None:
    hyperparameters = {"algorithm": "svm", "C": 5.0, "gamma": "scale", "augment": True, "seed": -1}
    assert parse_args(mapping.to_cmd_args(hyperparameters)) == {
        "algorithm": "svm",
        "C": "5.0",
        "gamma": "scale",
        "augment": "True",
        "seed": "-1",
    }


@pytest.mark.parametrize("argv", [["svm"], ["--epochs"], ["-", "3"], ["--", "3"]])
def test_malformed_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(ArgumentError):
        parse_args(argv)
