"""contract.py: the /opt/ml layout and SAGEMAKER_* variables, from an explicit environment."""

import json
from pathlib import Path

import pytest

from smvision import contract
from smvision.contract import ContractError


def test_paths_follow_the_base_dir(tmp_path: Path) -> None:
    c = contract.load({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert c.hyperparameters_file == tmp_path / "input/config/hyperparameters.json"
    assert c.channel_dir("train") == tmp_path / "input/data/train"
    assert c.model_dir == tmp_path / "model"
    assert c.failure_file == tmp_path / "output/failure"
    assert c.checkpoint_dir == tmp_path / "checkpoints"
    assert contract.load({}).base_dir == Path("/opt/ml")


def test_serving_variables_and_defaults() -> None:
    c = contract.load({})
    assert (c.port, c.workers, c.timeout_s, c.max_payload_mb) == (8080, None, 60.0, 6.0)
    c = contract.load(
        {
            "SAGEMAKER_BIND_TO_PORT": "9000",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "5",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20",
        }
    )
    assert (c.port, c.workers, c.timeout_s, c.max_payload_mb) == (9000, 3, 5.0, 20.0)


@pytest.mark.parametrize(
    "name, value",
    [
        ("SAGEMAKER_BIND_TO_PORT", "http"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0"),
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "-1"),
    ],
)
def test_bad_variables_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ContractError, match=name):
        contract.load({name: value})


def test_resource_config_from_file_and_environment(tmp_path: Path) -> None:
    c = contract.load({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert c.resource_config().hosts == ("algo-1",)
    c.config_dir.mkdir(parents=True)
    c.resource_config_file.write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    )
    resources = c.resource_config()
    assert (resources.host_index, resources.is_first_host) == (1, False)
    from_env = contract.load(
        {"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_HOSTS": '["a", "b"]', "SM_CURRENT_HOST": "a"}
    ).resource_config()
    assert from_env.hosts == ("a", "b") and from_env.is_first_host
    c.resource_config_file.write_text(json.dumps({"current_host": "algo-9", "hosts": ["algo-1"]}))
    with pytest.raises(ContractError, match="algo-9"):
        c.resource_config()


def test_contract_imports_nothing_of_the_project() -> None:
    source = Path(contract.__file__).read_text()
    assert "from smvision" not in source and "import smvision" not in source
