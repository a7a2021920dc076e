"""SageMaker Python SDK v3 local mode against podman's Docker API: `ModelTrainer` with
Mode.LOCAL_CONTAINER trains on local folders and yields model.tar.gz, which the SDK's
LocalSession serves (CreateModel, CreateEndpointConfig, CreateEndpoint) and answers
InvokeEndpoint with. A moto server stands in for AWS and records that nothing was asked
of it."""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.engine import Engine
from tests.support.image_jobs import BuiltImage
from tests.support.moto_server import SDK_CONFIG, MotoServer
from tests.support.photos import encode, photo
from tests.support.server_process import free_port

pytestmark = pytest.mark.slow

PROBABILITY_TOLERANCE = 1e-5
SERVED_IMAGES = 30


@pytest.fixture
def sdk(
    docker_api: Engine, moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """This process set up as a user's laptop: docker and compose reach podman, the SDK's
    telemetry is off, AWS is the moto server; the test's containers are removed after."""
    for name in ("DOCKER_HOST", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"):
        monkeypatch.setenv(name, docker_api.env[name])
    sdk_config = tmp_path / "sagemaker-config.yaml"
    sdk_config.write_text(SDK_CONFIG)
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(sdk_config))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    moto_server.forget_requests()
    try:
        yield docker_api
    finally:
        docker_api.remove_containers(docker_api.containers_under(tmp_path))


def model_trainer_train(
    image: str, root: Path, digits: Path, hyperparameters: dict[str, str], instance_count: int = 1
) -> float:
    from sagemaker.core.training.configs import Compute, InputData
    from sagemaker.train.model_trainer import Mode, ModelTrainer

    trainer = ModelTrainer(
        training_image=image,
        training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local_cpu", instance_count=instance_count),
        local_container_root=str(root),
        hyperparameters=hyperparameters,
        base_job_name="smvision-sdk-test",
    )
    started = time.monotonic()
    trainer.train(
        input_data_config=[
            InputData(channel_name=split, data_source=str(digits / split))
            for split in ("train", "validation", "test")
        ]
    )
    return time.monotonic() - started


def test_model_trainer_trains_and_local_session_serves(
    sdk: Engine, moto_server: MotoServer, image: BuiltImage, digits: Path, tmp_path: Path
) -> None:
    from sagemaker.core.local.local_session import LocalSession

    root = tmp_path / "job"
    root.mkdir()
    train_seconds = model_trainer_train(
        image.tag, root, digits, {"algorithm": "svm", "image_size": "32"}
    )
    archive = root / "compressed_artifacts" / "model.tar.gz"
    assert archive.is_file()
    model_dir = tmp_path / "model"
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    assert json.loads((model_dir / "metadata.json").read_text())["algorithm"] == "svm"
    evaluation = json.loads(
        (root / "artifacts" / "output" / "data" / "evaluation.json").read_text()
    )
    assert evaluation["test"]["accuracy"] >= 0.95

    port = free_port()
    session = LocalSession()
    containers = tmp_path / "serving"
    containers.mkdir()
    session.config = {"local": {"serving_port": port, "container_root": str(containers)}}
    client = session.sagemaker_client
    started = time.monotonic()
    client.create_model(
        ModelName="smvision-sdk-test",
        PrimaryContainer={
            "Image": image.tag,
            "ModelDataUrl": f"file://{model_dir}",
            "Environment": {},
        },
    )
    client.create_endpoint_config(
        EndpointConfigName="smvision-sdk-test",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "smvision-sdk-test",
                "InitialInstanceCount": 1,
                "InstanceType": "local",
            }
        ],
    )
    try:
        client.create_endpoint(
            EndpointName="smvision-sdk-test", EndpointConfigName="smvision-sdk-test"
        )
        runtime = session.sagemaker_runtime_client
        expected = evaluation["test"]["predictions"][::12][:SERVED_IMAGES]
        first_answer_seconds = 0.0
        for entry in expected:
            response = runtime.invoke_endpoint(
                EndpointName="smvision-sdk-test",
                ContentType="image/png",
                Accept="application/json",
                Body=(digits / "test" / entry["source"]).read_bytes(),
            )
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
            (prediction,) = json.loads(response["Body"].read())["predictions"]
            first_answer_seconds = first_answer_seconds or time.monotonic() - started
            assert prediction["label"] == entry["predicted"], entry["source"]
            assert prediction["probability"] == pytest.approx(
                entry["probability"], abs=PROBABILITY_TOLERANCE
            )
        photograph = runtime.invoke_endpoint(
            EndpointName="smvision-sdk-test",
            ContentType="image/jpeg",
            Body=encode(photo("china"), ".jpg"),
        )
        assert photograph["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        client.delete_endpoint(EndpointName="smvision-sdk-test")
    print(
        f"\nSDK local mode: ModelTrainer.train {train_seconds:.1f} s; create_endpoint to "
        f"first successful invoke {first_answer_seconds:.1f} s"
    )
    assert sdk.containers_under(containers, running_only=True) == []
    assert moto_server.requests() == [], "local mode with local data must not call AWS"


def test_a_failing_local_job_leaves_its_reason_and_a_non_zero_exit(
    sdk: Engine, moto_server: MotoServer, image: BuiltImage, digits: Path, tmp_path: Path
) -> None:
    """docker-compose 1.29 against podman may exit 0 when the container failed (it loses
    the race between the exit event and the end of the log stream), and then the SDK
    returns normally; with Docker it raises RuntimeError. Either way the container's exit
    status and the job's failure file say what happened."""
    root = tmp_path / "job"
    root.mkdir()
    try:
        model_trainer_train(image.tag, root, digits, {"algorithm": "svm", "C": "-3"})
    except RuntimeError as error:
        assert "exited with code" in str(error)
    (container,) = sdk.containers_under(root)
    state = json.loads(sdk.podman("inspect", container).stdout)[0]["State"]
    assert state["ExitCode"] != 0
    failure = (root / "artifacts" / "output" / "failure").read_text()
    assert failure.startswith("Hyperparameter 'C' has value '-3'"), failure
    assert not (root / "artifacts" / "model" / "metadata.json").exists()
    assert moto_server.requests() == []


def test_model_trainer_trains_a_cnn_across_two_containers(
    sdk: Engine,
    moto_server: MotoServer,
    image: BuiltImage,
    digits: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """instance_count=2: compose starts algo-1 and algo-2 on one network; the image builds
    TF_CONFIG from resourceconfig.json and trains with MultiWorkerMirroredStrategy."""
    root = tmp_path / "job"
    root.mkdir()
    seconds = model_trainer_train(
        image.tag,
        root,
        digits,
        {
            "algorithm": "cnn",
            "image_size": "16",
            "epochs": "2",
            "batch_size": "32",
            "augment": "false",
        },
        instance_count=2,
    )
    captured = capfd.readouterr()
    output = captured.out + captured.err
    assert '"task": {"type": "worker", "index": 0}' in output
    assert '"task": {"type": "worker", "index": 1}' in output
    assert "2 replica(s), per-replica batch 32, global batch 64" in output
    assert (root / "compressed_artifacts" / "model.tar.gz").is_file()
    metadata = json.loads((root / "artifacts" / "model" / "metadata.json").read_text())
    assert metadata["algorithm"] == "cnn" and metadata["train_images"] == 1078
    exit_codes = {}
    logs = {}  # each container's own log: compose may stop relaying once it aborts
    for container in sdk.containers_under(root):
        inspected = json.loads(sdk.podman("inspect", container).stdout)[0]
        service = inspected["Config"]["Labels"]["com.docker.compose.service"]
        exit_codes[service] = inspected["State"]["ExitCode"]
        logged = sdk.podman("logs", container)
        logs[service] = logged.stdout + logged.stderr
    assert sorted(exit_codes) == ["algo-1", "algo-2"]
    # The SDK runs compose with --abort-on-container-exit: the first container to exit
    # gets the other stopped. Training itself ended on both, since every step is an
    # all-reduce between them; the chief's model and metadata above show it finished
    # writing. Which one exits first is a race.
    first_out = [host for host, code in exit_codes.items() if code == 0]
    assert first_out, exit_codes
    if len(first_out) == 1:
        assert "Aborting on container exit" in output
        (stopped,) = [host for host, code in exit_codes.items() if code != 0]
        # SIGKILL (137); or SIGTERM obeyed: by the toolkit itself (143), or passed on to
        # train.py, which reports the stop, and the toolkit fails the job with it (1).
        assert exit_codes[stopped] in (137, 143, 1), exit_codes
        if exit_codes[stopped] == 1:
            assert "The job was stopped by SIGTERM" in logs[stopped], logs[stopped][-3000:]
    if exit_codes["algo-2"] == 0:
        assert "Worker 2 of 2 done; the first host writes the model." in logs["algo-2"]
    print(f"\nSDK local mode, cnn on 2 containers: ModelTrainer.train {seconds:.1f} s")
    assert moto_server.requests() == []
