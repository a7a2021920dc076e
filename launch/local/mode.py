"""The smvision image on this machine, through the SageMaker Python SDK's local mode.

`train_local` runs a training job the way `ModelTrainer(training_mode=Mode.LOCAL_CONTAINER)`
does: docker compose starts the image with no command (its default is `train`), with
the channels mounted from local folders, and the SDK packs /opt/ml/model into
ROOT/compressed_artifacts/model.tar.gz. `local_endpoint` serves a model the way the
SDK's LocalSession does CreateModel, CreateEndpointConfig and CreateEndpoint: compose
runs `serve` with the container's port 8080 published on a port of this machine.
Both need the docker CLI talking to Docker (or podman's Docker API) and Docker Compose
(`docker compose`, else `docker-compose`).

The SDK never runs `compose down`, so its containers stay behind; these functions
remove the containers of the compose projects they started (found by the project's
working-directory label) and nothing else.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launch.common.errors import LaunchError
from smvision.core.contract import METADATA_FILE, Contract

if TYPE_CHECKING:
    from launch.hosting.transform import InputKind
    from launch.training.spec import JobSpec

LOCAL_INSTANCE_TYPES = ("local_cpu", "local_gpu")
VARIANT = "AllTraffic"
COMPOSE_WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
DOCKER_TIMEOUT_S = 120
PING_TIMEOUT_S = 2.0


class LocalModeError(LaunchError):
    """A local job or endpoint that failed, or a machine without Docker or Compose."""

    exit_code = 1


@dataclass(frozen=True)
class LocalTrainingResult:
    """Where the SDK left a local job's files (its `local_container_root`)."""

    root: Path

    @property
    def model_data(self) -> Path:
        return self.root / "compressed_artifacts" / "model.tar.gz"

    @property
    def output_data(self) -> Path:
        return self.root / "compressed_artifacts" / "output.tar.gz"

    @property
    def collected(self) -> Contract:
        """The job's /opt/ml/model and /opt/ml/output as the SDK gathers them from its hosts."""
        return Contract(base_dir=self.root / "artifacts")

    @property
    def output_dir(self) -> Path:
        """The job's /opt/ml/output, unpacked: failure or success, data/evaluation.json."""
        return self.collected.output_dir

    def failure_files(self) -> list[Path]:
        """/opt/ml/output/failure as gathered, then as each host (algo-N) left it."""
        hosts = sorted(self.root.glob("algo-*"))
        return [
            self.collected.failure_file,
            *(Contract(base_dir=host).failure_file for host in hosts),
        ]


def check_docker() -> None:
    """Fail in a second, with what to install, where local mode cannot work."""
    if shutil.which("docker") is None:
        raise LocalModeError(
            "--local needs the docker CLI and a Docker daemon (or podman's Docker API at "
            "DOCKER_HOST); install Docker, or run without --local on SageMaker."
        )
    plugin = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S
    )
    if plugin.returncode != 0 and shutil.which("docker-compose") is None:
        raise LocalModeError(
            "--local needs Docker Compose: the `docker compose` plugin or the "
            "`docker-compose` command (Debian: apt-get install docker-compose)."
        )


def train_local(
    spec: JobSpec, root: Path, base_job_name: str = "smvision-local"
) -> LocalTrainingResult:
    """Run the job in its image on this machine (its channels are local folders); the
    job's files, and model.tar.gz, go under `root`."""
    from launch.training.definition import local_trainer

    check_docker()
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    trainer = local_trainer(spec, root, base_job_name)
    result = LocalTrainingResult(root)
    try:
        trainer.train(wait=True, logs=True)
    except RuntimeError as error:
        raise LocalModeError(
            f"The local training job failed. {failure_reason(result, str(error))}"
        ) from error
    except ImportError as error:  # the SDK's way of saying that Compose is missing
        raise LocalModeError(str(error)) from error
    finally:
        remove_compose_containers(root)
    # docker-compose 1.x can exit 0 although the container failed (it loses the race
    # between the container's exit event and the end of its log stream, as seen with
    # podman's Docker API), and the SDK then returns as if the job succeeded: the job's
    # own failure file is what counts.
    if result.collected.failure_file.is_file():
        raise LocalModeError(f"The local training job failed. {failure_reason(result)}")
    if not (result.collected.model_dir / METADATA_FILE).is_file():
        raise LocalModeError(
            f"The local training job ended without a model; its files are in {result.root}."
        )
    return result


def failure_reason(result: LocalTrainingResult, otherwise: str = "") -> str:
    """The sentence the image wrote to /opt/ml/output/failure, wherever the SDK left it."""
    for failure in result.failure_files():
        if failure.is_file() and failure.read_text().strip():
            return f"Its reason: {failure.read_text().strip()}"
    prefix = f"{otherwise}. " if otherwise else ""
    return f"{prefix}Its log is above; its files are in {result.root}."


@dataclass(frozen=True)
class LocalEndpoint:
    """A model served by the image on this machine, with the SDK's local runtime client."""

    name: str
    port: int
    session: Any

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def invoke(
        self,
        body: bytes,
        content_type: str,
        accept: str = "application/json",
        custom_attributes: str | None = None,
    ) -> tuple[int, bytes]:
        """One InvokeEndpoint request: the HTTP status and the answer's body."""
        request: dict[str, Any] = {
            "EndpointName": self.name,
            "Body": body,
            "ContentType": content_type,
            "Accept": accept,
        }
        if custom_attributes is not None:
            request["CustomAttributes"] = custom_attributes
        response = self.session.sagemaker_runtime_client.invoke_endpoint(**request)
        return int(response["ResponseMetadata"]["HTTPStatusCode"]), bytes(response["Body"].read())

    def is_serving(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=PING_TIMEOUT_S) as answer:
                return int(answer.status) == 200
        except (urllib.error.URLError, OSError):
            return False


@contextmanager
def local_endpoint(
    image: str,
    model_data: str,
    port: int,
    name: str,
    environment: Mapping[str, str] | None = None,
    instance_type: str = "local",
    region: str = "us-east-1",
) -> Iterator[LocalEndpoint]:
    """Serve `model_data` (a model.tar.gz, a model directory or an s3:// URI) until the
    block ends; then stop the endpoint and remove its container and scratch files."""
    with local_model(image, model_data, name, environment, port, region) as session:
        client = session.sagemaker_client
        client.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": VARIANT,
                    "ModelName": name,
                    "InitialInstanceCount": 1,
                    "InstanceType": instance_type,
                }
            ],
        )
        try:
            try:
                client.create_endpoint(EndpointName=name, EndpointConfigName=name)
            except RuntimeError as error:
                raise LocalModeError(
                    f"Local endpoint {name} did not answer /ping on port {port} ({error}); "
                    "the container's log is above."
                ) from error
            yield LocalEndpoint(name, port, session)
        finally:
            client.delete_endpoint(EndpointName=name)
            client.delete_endpoint_config(EndpointConfigName=name)


def transform_local(
    image: str,
    model_data: str,
    name: str,
    input_dir: Path,
    output_dir: Path,
    kind: InputKind,
    environment: Mapping[str, str] | None = None,
    instance_type: str = "local",
    region: str = "us-east-1",
) -> list[Path]:
    """Run a batch transform of the files in `input_dir` as the SDK's local mode does
    (LocalSession.create_transform_job); the .out files go to `output_dir`.

    The batch strategy, content type, split and accept types are passed as `transform`
    passes them to SageMaker: without a BatchStrategy the SDK takes the one the container
    advertises at /execution-parameters, "MULTI_RECORD" as SageMaker spells it, which it
    refuses ("Invalid Batch Strategy"), and then leaves the container running."""
    with local_model(image, model_data, name, environment, free_port(), region) as session:
        try:
            session.sagemaker_client.create_transform_job(
                TransformJobName=name,
                ModelName=name,
                BatchStrategy=kind.batch_strategy,
                TransformInput={
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"file://{input_dir.resolve()}",
                        }
                    },
                    "ContentType": kind.content_type,
                    "SplitType": kind.split_type,
                },
                TransformOutput={
                    "S3OutputPath": f"file://{output_dir.resolve()}",
                    "Accept": kind.accept,
                    "AssembleWith": kind.assemble_with,
                },
                TransformResources={"InstanceType": instance_type, "InstanceCount": 1},
            )
        except (RuntimeError, ValueError, OSError) as error:
            raise LocalModeError(
                f"The local transform job {name} failed ({error}); the container's log is above."
            ) from error
    results = sorted(output_dir.rglob("*.out"))
    refused = [path for path in results if _holds_an_error(path)]
    if refused:
        raise LocalModeError(
            f"The server refused {len(refused)} of {len(results)} files; their errors are in "
            f"{', '.join(str(path) for path in refused[:5])}."
        )
    return results


def _holds_an_error(result: Path) -> bool:
    """Whether a .out file holds the server's {"error": ...} answer (the SDK writes every
    answer to the file, refusals too)."""
    with result.open("rb") as stream:
        start = stream.read(16).lstrip()
    return start.startswith(b'{"error"')


@contextmanager
def local_model(
    image: str,
    model_data: str,
    name: str,
    environment: Mapping[str, str] | None,
    port: int,
    region: str,
) -> Iterator[Any]:
    """A LocalSession whose model `name` serves `model_data` with the image on `port`;
    on the way out the model is deleted, and the containers and scratch files removed."""
    import boto3
    from sagemaker.core.local.local_session import LocalSession

    check_docker()
    with tempfile.TemporaryDirectory(
        prefix="smvision-local-", ignore_cleanup_errors=True
    ) as scratch:
        work_dir = Path(scratch).resolve()
        containers = work_dir / "containers"
        containers.mkdir()
        session = LocalSession(boto_session=boto3.session.Session(region_name=region))
        session.config = {"local": {"serving_port": port, "container_root": str(containers)}}
        client = session.sagemaker_client
        client.create_model(
            ModelName=name,
            PrimaryContainer={
                "Image": image,
                "ModelDataUrl": model_data_url(model_data, work_dir / "model"),
                "Environment": dict(environment or {}),
            },
        )
        try:
            yield session
        finally:
            client.delete_model(ModelName=name)
            remove_compose_containers(work_dir)


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def model_data_url(model_data: str, scratch: Path) -> str:
    """The ModelDataUrl LocalSession mounts: a model.tar.gz is unpacked into `scratch`
    first (the SDK would unpack it beside the archive, in the user's folder)."""
    if model_data.startswith("s3://"):
        return model_data
    path = Path(model_data).expanduser().resolve()
    if path.is_dir() and (path / METADATA_FILE).is_file():
        return f"file://{path}"
    if path.is_file() and tarfile.is_tarfile(path):
        scratch.mkdir(parents=True)
        with tarfile.open(path) as archive:
            archive.extractall(scratch, filter="data")
        if not (scratch / METADATA_FILE).is_file():
            raise LocalModeError(
                f"--model-data {model_data} holds no {METADATA_FILE}: it is not a model "
                "that smvision's train wrote; pass the job's model.tar.gz."
            )
        return f"file://{scratch}"
    raise LocalModeError(
        f"--model-data '{model_data}' is not a model.tar.gz, a model directory holding "
        f"{METADATA_FILE}, or an s3:// URI; pass the model.tar.gz that "
        "`train --local` printed."
    )


def remove_compose_containers(directory: Path) -> None:
    """Remove the containers docker compose started for projects inside `directory`."""
    listed = subprocess.run(
        [
            "docker",
            "ps",
            "--all",
            "--filter",
            f"label={COMPOSE_WORKING_DIR_LABEL}",
            "--format",
            '{{.ID}}\t{{.Label "' + COMPOSE_WORKING_DIR_LABEL + '"}}',
        ],
        capture_output=True,
        text=True,
        timeout=DOCKER_TIMEOUT_S,
    )
    if listed.returncode != 0:
        print(
            f"warning: could not list containers to remove ({listed.stderr.strip()}).", flush=True
        )
        return
    inside = str(directory.resolve())
    ids = []
    for line in listed.stdout.splitlines():
        container, _, working_dir = line.partition("\t")
        if working_dir == inside or working_dir.startswith(inside + os.sep):
            ids.append(container)
    if not ids:
        return
    removed = subprocess.run(
        ["docker", "rm", "--force", *ids], capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S
    )
    if removed.returncode != 0:
        print(
            f"warning: could not remove containers {' '.join(ids)} "
            f"({removed.stderr.strip()}); remove them with `docker rm -f`.",
            flush=True,
        )
