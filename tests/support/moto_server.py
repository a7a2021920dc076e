"""A moto server on 127.0.0.1 standing in for AWS, with moto's own request recorder.

The server is a real HTTP process (`python -m moto.server`); boto3 and the SageMaker
SDK reach it through AWS_ENDPOINT_URL. Its recorder (MOTO_ENABLE_RECORDING) appends
every request it receives, headers and body, to a file before moto handles it, so a
test can assert exactly what was sent - including requests moto cannot answer - and
that nothing was sent at all.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SmvisionExecution"
BUCKET = "smvision-tests"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/smvision:cpu"

# The SDK's telemetry calls STS and an S3 URL outside; tests turn it off the way a user
# would, with a SageMaker config file.
SDK_CONFIG = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by name in any case (the server may change its capitalisation)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def target(self) -> str:
        """The JSON-protocol operation, such as 'SageMaker.CreateTrainingJob'."""
        return self.header("X-Amz-Target") or ""

    @property
    def path(self) -> str:
        return "/" + self.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]

    def json(self) -> Any:
        return json.loads(self.body)


class MotoServer:
    def __init__(
        self, process: subprocess.Popen[bytes], port: int, recording: Path, log: Path
    ) -> None:
        self.process = process
        self.port = port
        self.recording = recording
        self.log = log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _post(self, path: str, data: bytes = b"") -> None:
        request = urllib.request.Request(self.url + path, data=data, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 201), (path, response.status)

    def reset(self) -> None:
        """Forget every resource and every recorded request."""
        self._post("/moto-api/reset")
        self.forget_requests()

    def forget_requests(self) -> None:
        self._post("/moto-api/recorder/reset-recording")

    def requests(self) -> list[RecordedRequest]:
        if not self.recording.exists():
            return []
        found = []
        for entry in _json_documents(self.recording.read_text()):
            body = entry.get("body") or ""
            raw = base64.b64decode(body) if entry.get("body_encoded") else body.encode()
            found.append(RecordedRequest(entry["method"], entry["url"], entry["headers"], raw))
        return found

    def operations(self) -> list[str]:
        """JSON-protocol operations in the order they arrived ('SageMaker.CreateModel', ...)."""
        return [r.target for r in self.requests() if r.target]

    def calls(self, operation: str) -> list[Any]:
        """The JSON bodies of every request for one operation, such as 'CreateTrainingJob'."""
        return [r.json() for r in self.requests() if r.target.endswith("." + operation)]

    def queue_endpoint_results(self, results: list[dict[str, str]]) -> None:
        body = json.dumps({"account_id": ACCOUNT, "region": REGION, "results": results})
        self._post("/moto-api/static/sagemaker/endpoint-results", body.encode())

    def queue_async_results(self, results: list[dict[str, Any]]) -> None:
        """What InvokeEndpointAsync leaves at its output (or, is_failure, failure) location:
        {"data": BODY, "is_failure": bool} per request, in order."""
        body = json.dumps({"account_id": ACCOUNT, "region": REGION, "results": results})
        self._post("/moto-api/static/sagemaker/async-endpoint-results", body.encode())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_moto_server(workdir: Path, timeout_s: float = 120) -> MotoServer:
    port = _free_port()
    recording = workdir / "moto-recording.jsonl"
    log = workdir / "moto-server.log"
    env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)}
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = MotoServer(process, port, recording, log)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(server.url + "/moto-api/", timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"moto server did not answer in {timeout_s} s:\n{log.read_text()}")
        time.sleep(0.2)  # waits on the server answering /moto-api/ (it signals nothing else)


def running_moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """For a module-scoped fixture: one server per test module, stopped at its end."""
    server = start_moto_server(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


def aws_environment(server: MotoServer, sdk_config: Path) -> dict[str, str]:
    """What a process needs to talk to the moto server as if it were AWS."""
    return {
        "AWS_ENDPOINT_URL": server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        # moto's 500s would otherwise be retried ten times.
        "AWS_MAX_ATTEMPTS": "2",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(sdk_config),
    }


def clean_aws(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MotoServer:
    """For a test's fixture: a clean server holding the test bucket, the environment
    pointed at it, and no request recorded yet."""
    sdk_config = tmp_path / "sagemaker-config.yaml"
    sdk_config.write_text(SDK_CONFIG)
    for name, value in aws_environment(moto_server, sdk_config).items():
        monkeypatch.setenv(name, value)
    for name in (
        "SMVISION_REGION",
        "SMVISION_ROLE",
        "SMVISION_BUCKET",
        "SMVISION_IMAGE_URI",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    moto_server.reset()
    import boto3

    boto3.session.Session(region_name=REGION).client("s3").create_bucket(Bucket=BUCKET)
    moto_server.forget_requests()
    return moto_server


def drop_moto_empty_structures(parsed: dict[str, Any], **_: Any) -> None:
    """moto answers DescribeModel with VpcConfig {} and DescribeEndpoint(Config) with
    DataCaptureConfig {}, which AWS omits when unset and which sagemaker-core's pydantic
    shapes reject; drop exactly those empty structures from moto's answers."""
    for key in ("VpcConfig", "DataCaptureConfig"):
        if parsed.get(key) == {}:
            del parsed[key]


def complete_moto_capture_summary(parsed: dict[str, Any], model: Any, **_: Any) -> None:
    """moto's DescribeEndpoint answers DataCaptureConfig with EnableCapture and
    DestinationS3Uri alone; AWS's DataCaptureConfigSummary also has CaptureStatus and
    CurrentSamplingPercentage, which sagemaker-core's pydantic shape requires. Add them as
    AWS reports a new endpoint: capturing, at the endpoint config's sampling percentage."""
    summary = parsed.get("DataCaptureConfig")
    if model.name != "DescribeEndpoint" or not summary or "CaptureStatus" in summary:
        return
    import boto3

    config = (
        boto3.session.Session(region_name=REGION)
        .client("sagemaker")
        .describe_endpoint_config(EndpointConfigName=parsed["EndpointConfigName"])[
            "DataCaptureConfig"
        ]
    )
    summary["CaptureStatus"] = "Started" if summary.get("EnableCapture") else "Stopped"
    summary["CurrentSamplingPercentage"] = config["InitialSamplingPercentage"]


def moto_session(region: str) -> Any:
    """A real boto3 session for the launchers' in-process runs, with the moto adaptations."""
    import boto3

    session = boto3.session.Session(region_name=region)
    session.events.register("after-call.sagemaker", drop_moto_empty_structures)
    session.events.register("after-call.sagemaker", complete_moto_capture_summary)
    return session


def run_launcher(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> str:
    """`python -m launch ARGS` with the test settings, in this process on a session with the
    moto adaptations; it must exit with `code`; its output."""
    from launch import cli

    returned = cli.main([*args, *settings_flags()], open_session=moto_session)
    captured = capsys.readouterr()
    assert returned == code, captured.out + captured.err
    return captured.out + captured.err


def launch_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`python -m launch ARGS` in this process, on a session with the moto adaptations:
    its exit code and output."""
    from launch import cli

    code = cli.main(list(args), open_session=moto_session)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def aws_client(service: str) -> Any:
    """A boto3 client of the moto server (the environment the `aws` fixture sets)."""
    import boto3

    return boto3.session.Session(region_name=REGION).client(service)


def settings_flags() -> list[str]:
    return ["--region", REGION, "--role", ROLE, "--bucket", BUCKET, "--image-uri", IMAGE]


def create_moto_best_job() -> str:
    """moto names every tuning job's best training job 'FakeTrainingJobName' without
    creating it; create it so DescribeTrainingJob of the best job reads a real job."""
    import boto3

    sagemaker = boto3.session.Session(region_name=REGION).client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName="FakeTrainingJobName",
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/smvision/tuning"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    return f"s3://{BUCKET}/smvision/tuning/FakeTrainingJobName/output/model.tar.gz"


JSON_PROTOCOL_SERVICES = {
    "SageMaker": "sagemaker",
    "AnyScaleFrontendService": "application-autoscaling",
    "Logs_20140328": "logs",
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
    "RekognitionService": "rekognition",
}


def iam_action(request: RecordedRequest) -> str:
    """The IAM action a request recorded by moto needs."""
    if request.target:
        service, _, operation = request.target.partition(".")
        return f"{JSON_PROTOCOL_SERVICES[service]}:{operation}"
    if request.path.startswith("/endpoints/") and request.path.endswith("/invocations"):
        return "sagemaker:InvokeEndpoint"
    if request.path.startswith("/endpoints/") and request.path.endswith("/async-invocations"):
        return "sagemaker:InvokeEndpointAsync"
    bucket, _, key = request.path.lstrip("/").partition("/")
    assert bucket == BUCKET, f"not an S3 request of the test bucket: {request.url}"
    if request.method == "GET" and not key:
        return "s3:ListBucket"
    if request.method in ("GET", "HEAD") and key:
        return "s3:GetObject"
    if request.method in ("PUT", "POST") and key:  # POST: a multipart upload begun or completed
        return "s3:PutObject"
    if request.method == "DELETE" and key and "uploadId=" in request.url:
        return "s3:AbortMultipartUpload"
    raise AssertionError(f"no IAM action known for {request.method} {request.url}")


def documented_caller_policy() -> set[str]:
    """The actions of the caller's policy the README points to (docs/iam/caller-policy.json)."""
    policy = json.loads(
        (Path(__file__).parents[2] / "docs" / "iam" / "caller-policy.json").read_text()
    )
    actions: set[str] = set()
    for statement in policy["Statement"]:
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def _json_documents(text: str) -> list[dict[str, Any]]:
    """Every JSON object in the recording. moto writes an entry and its newline in two writes,
    so requests served side by side can leave two entries on one line."""
    decoder = json.JSONDecoder()
    documents: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return documents
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
