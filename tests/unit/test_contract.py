"""contract.py: the /opt/ml layout and SAGEMAKER_* variables, from an explicit environment."""

import json
from pathlib import Path

import pytest

from smvision.core import contract
from smvision.core.contract import ContractError


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
    "name, value, attribute",
    [
        ("SAGEMAKER_BIND_TO_PORT", "http", "port"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0", "workers"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "soon", "timeout_s"),
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "-1", "max_payload_mb"),
    ],
)
def test_bad_serving_variables_fail_only_when_serving_reads_them(
    tmp_path: Path, name: str, value: str, attribute: str
) -> None:
    # A training job must not fail on a serving variable: load() reads only the base dir.
    c = contract.load({"SAGEMAKER_BASE_DIR": str(tmp_path), name: value})
    assert c.failure_file == tmp_path / "output/failure"
    with pytest.raises(ContractError, match=f"{name} has value '{value}'"):
        getattr(c, attribute)


@pytest.mark.parametrize(
    "hosts",
    ["algo-1", "[]", '{"algo-1": 1}', '["algo-1", 2]', '["algo-1", ""]'],
    ids=["not-json", "empty", "object", "number", "blank-name"],
)
def test_a_malformed_host_list_is_a_contract_error_naming_it(tmp_path: Path, hosts: str) -> None:
    c = contract.load(
        {"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_HOSTS": hosts, "SM_CURRENT_HOST": "algo-1"}
    )
    with pytest.raises(ContractError, match=r"SM_HOSTS has value .*JSON list of host names"):
        c.resource_config()


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


def test_async_mode_raises_the_default_limits_and_the_variables_still_win() -> None:
    real_time = contract.load({})
    assert (real_time.async_inference, real_time.timeout_s, real_time.max_payload_mb) == (
        False,
        60.0,
        6.0,
    )
    asynchronous = contract.load({"SMVISION_ASYNC_INFERENCE": "true"})
    assert (asynchronous.timeout_s, asynchronous.max_payload_mb) == (3600.0, 1024.0)
    chosen = contract.load(
        {
            "SMVISION_ASYNC_INFERENCE": "TRUE",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "900",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "200",
        }
    )
    assert (chosen.timeout_s, chosen.max_payload_mb) == (900.0, 200.0)


def test_multi_model_mode_and_its_memory_budget(tmp_path: Path) -> None:
    single = contract.load({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert (single.multi_model, single.models_memory_mb) == (False, None)
    multi = contract.load(
        {
            "SAGEMAKER_BASE_DIR": str(tmp_path),
            "SAGEMAKER_MULTI_MODEL": "true",
            "SMVISION_MODELS_MEMORY_MB": "512",
        }
    )
    assert (multi.multi_model, multi.models_memory_mb) == (True, 512.0)
    assert multi.models_dir == tmp_path / "models"


@pytest.mark.parametrize(
    ("name", "value", "attribute"),
    [
        ("SAGEMAKER_MULTI_MODEL", "yes", "multi_model"),
        ("SMVISION_ASYNC_INFERENCE", "1", "async_inference"),
        ("SMVISION_MODELS_MEMORY_MB", "0", "models_memory_mb"),
    ],
)
def test_bad_mode_variables_name_the_variable(name: str, value: str, attribute: str) -> None:
    with pytest.raises(ContractError, match=f"{name} has value '{value}'"):
        getattr(contract.load({name: value}), attribute)
