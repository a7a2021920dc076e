"""`monitor` end to end: an endpoint deployed with data capture on a moto server, its
captured requests made by the real `serve`, and the image's monitor over them.

What moto 5.2.5 cannot do, and how each test copes:
- A processing job is Completed the moment it is created and runs nothing; the test runs
  the image's monitor itself (in this process, on the same capture files) and puts its
  output where the job would have, so the launcher reads and prints real violations.
- It does not implement monitoring schedules (CreateMonitoringSchedule answers an error).
  The schedule test checks the request the launcher builds with botocore's Stubber, which
  validates it against SageMaker's service model, and the request that reached the server
  (moto's recorder keeps it) is that same request.
"""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import cv2
import httpx
import numpy as np
import pytest
from botocore.stub import Stubber

from launch import cli
from launch.common.settings import SPECS, resolve
from launch.mlops import monitoring
from smvision.core import contract
from smvision.monitor.main import build_parser, run
from tests.support.archives import model_archive
from tests.support.capture import send, write_capture
from tests.support.moto_server import (
    BUCKET,
    IMAGE,
    REGION,
    MotoServer,
    clean_aws,
    documented_caller_policy,
    iam_action,
    moto_session,
    run_launcher,
    settings_flags,
)
from tests.support.serving import JobDirs, ServerPool

ENDPOINT = "digits"
MODEL_KEY = "smvision/training/digits-svm-1/output/model.tar.gz"
MODEL_DATA = f"s3://{BUCKET}/{MODEL_KEY}"
CAPTURE = f"s3://{BUCKET}/capture"
# The hour capture files are written in (their path says it): the recent requests come in
# this hour, the older ones three hours before.
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def trained(serving_jobs: JobDirs) -> Path:
    return serving_jobs("svm")


@pytest.fixture(scope="module")
def captured(servers: ServerPool, digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Darkened test digits sent through the real `serve`: 60 in this hour, 60 in the hour
    three hours before."""
    scans = [
        np.asarray(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), np.uint8)
        for f in sorted((digits / "test").rglob("*.png"))[:120]
    ]
    bodies = [cv2.imencode(".png", (scan * 0.35).astype(np.uint8))[1].tobytes() for scan in scans]
    root = tmp_path_factory.mktemp("capture")
    with httpx.Client(timeout=120) as client:
        exchanges = [
            send(
                client,
                servers("svm").url,
                body,
                "image/png",
                time=HOUR - timedelta(hours=3 if i < 60 else 0) + timedelta(seconds=i),
            )
            for i, body in enumerate(bodies)
        ]
    write_capture(root, ENDPOINT, exchanges)
    return root


@pytest.fixture
def aws(
    moto_server: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trained: Path,
    capsys: pytest.CaptureFixture[str],
) -> MotoServer:
    """The model in S3 and the endpoint deployed with data capture."""
    server = clean_aws(moto_server, tmp_path, monkeypatch)
    s3().put_object(Bucket=BUCKET, Key=MODEL_KEY, Body=model_archive(trained))
    run_launcher(
        capsys,
        "deploy",
        "--model-data",
        MODEL_DATA,
        "--endpoint-name",
        ENDPOINT,
        "--data-capture",
        CAPTURE,
    )
    server.forget_requests()
    return server


def s3() -> Any:
    return boto3.session.Session(region_name=REGION).client("s3")


def upload_capture(root: Path) -> list[str]:
    keys = []
    for path in sorted(root.rglob("*.jsonl")):
        key = f"capture/{path.relative_to(root).as_posix()}"
        s3().put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def job_did_its_work(
    job: str, trained: Path, captured: Path, tmp_path: Path, *arguments: str
) -> None:
    """What the processing job's container would have left in S3: the image's monitor run
    with the job's arguments on the same capture files, its output uploaded where the job
    uploads it."""
    out = tmp_path / "job-output"
    args = build_parser().parse_args(
        [
            "--baseline",
            str(trained / "opt/ml/model"),
            "--captured",
            str(captured),
            "--output",
            str(out),
            *arguments,
        ]
    )
    assert run(args, contract.load({contract.BASE_DIR_ENV: str(tmp_path / "ml")}), {}) == 0
    for path in out.iterdir():
        s3().put_object(
            Bucket=BUCKET,
            Key=f"smvision/monitoring/{ENDPOINT}/{job}/{path.name}",
            Body=path.read_bytes(),
        )


def test_monitor_runs_the_image_over_the_endpoints_capture_and_prints_its_violations(
    aws: MotoServer,
    capsys: pytest.CaptureFixture[str],
    trained: Path,
    captured: Path,
    tmp_path: Path,
) -> None:
    upload_capture(captured)
    job_did_its_work("drift-1", trained, captured, tmp_path, "--ks-alpha", "0.01")
    output = run_launcher(
        capsys, "monitor", "--endpoint", ENDPOINT, "--job-name", "drift-1", "--ks-alpha", "0.01"
    )

    described = (
        boto3.session.Session(region_name=REGION)
        .client("sagemaker")
        .describe_processing_job(ProcessingJobName="drift-1")
    )
    assert described["AppSpecification"] == {
        "ImageUri": IMAGE,
        "ContainerEntrypoint": ["monitor"],
        "ContainerArguments": ["--ks-alpha", "0.01"],
    }
    inputs = {i["InputName"]: i["S3Input"] for i in described["ProcessingInputs"]}
    assert inputs["endpoint"]["S3Uri"] == f"{CAPTURE}/{ENDPOINT}/"
    assert inputs["endpoint"]["LocalPath"] == "/opt/ml/processing/input/endpoint"
    assert inputs["baseline"]["S3Uri"] == MODEL_DATA
    assert inputs["baseline"]["LocalPath"] == "/opt/ml/processing/input/baseline"
    [report] = described["ProcessingOutputConfig"]["Outputs"]
    assert report["S3Output"]["LocalPath"] == "/opt/ml/processing/output"
    assert report["S3Output"]["S3Uri"] == f"s3://{BUCKET}/smvision/monitoring/{ENDPOINT}/drift-1"

    written = json.loads(
        s3()
        .get_object(
            Bucket=BUCKET,
            Key=f"smvision/monitoring/{ENDPOINT}/drift-1/constraint_violations.json",
        )["Body"]
        .read()
    )["violations"]
    assert {v["feature_name"] for v in written} >= {"brightness", "contrast", "sharpness"}
    assert f"{len(written)} violations:" in output
    for violation in written:
        assert f"  {violation['description']}\n" in output
    assert f"Report: s3://{BUCKET}/smvision/monitoring/{ENDPOINT}/drift-1/drift_report.json" in (
        output
    )
    called = {iam_action(request) for request in aws.requests()}
    assert {"sagemaker:CreateProcessingJob", "s3:ListBucket"} <= called
    assert not called - documented_caller_policy()


def test_since_sends_only_the_hours_captured_since_then_in_a_manifest(
    aws: MotoServer,
    capsys: pytest.CaptureFixture[str],
    trained: Path,
    captured: Path,
    tmp_path: Path,
) -> None:
    keys = upload_capture(captured)
    recent = [k for k in keys if HOUR.strftime("/%Y/%m/%d/%H/") in k]
    assert 0 < len(recent) < len(keys)
    since = HOUR - timedelta(hours=1)
    job_did_its_work("drift-2", trained, captured, tmp_path, "--since", since.isoformat())
    output = run_launcher(
        capsys,
        "monitor",
        "--endpoint",
        ENDPOINT,
        "--job-name",
        "drift-2",
        "--since",
        since.isoformat(),
    )

    manifest_key = f"smvision/monitoring/{ENDPOINT}/drift-2/manifest.json"
    manifest = json.loads(s3().get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    assert manifest[0] == {"prefix": f"{CAPTURE}/{ENDPOINT}/"}
    assert [f"capture/{ENDPOINT}/{key}" for key in manifest[1:]] == recent
    described = (
        boto3.session.Session(region_name=REGION)
        .client("sagemaker")
        .describe_processing_job(ProcessingJobName="drift-2")
    )
    endpoint_input = next(
        i["S3Input"] for i in described["ProcessingInputs"] if i["InputName"] == "endpoint"
    )
    assert (endpoint_input["S3DataType"], endpoint_input["S3Uri"]) == (
        "ManifestFile",
        f"s3://{BUCKET}/{manifest_key}",
    )
    assert described["AppSpecification"]["ContainerArguments"] == ["--since", since.isoformat()]
    assert f"Processing job drift-2: {len(recent)} capture files" in output


def test_an_endpoint_without_capture_or_without_requests_is_refused(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    output = run_launcher(capsys, "monitor", "--endpoint", ENDPOINT, code=1)
    assert f"Nothing captured under {CAPTURE}/{ENDPOINT}/: send the endpoint requests" in output
    run_launcher(capsys, "deploy", "--model-data", MODEL_DATA, "--endpoint-name", "plain")
    output = run_launcher(capsys, "monitor", "--endpoint", "plain", code=1)
    assert "Endpoint plain does not capture its requests; deploy it with --data-capture" in (output)
    assert not [op for op in aws.operations() if op.endswith("ProcessingJob")]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is neither an ISO time"),
        (["--schedule", "hourly", "--since", "2h"], "--since applies to one job"),
        (["--chi2-alpha", "2"], "--chi2-alpha 2 is not a probability"),
    ],
)
def test_bad_monitor_options_make_no_aws_call(
    moto_server: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    expected: str,
) -> None:
    server = clean_aws(moto_server, tmp_path, monkeypatch)
    assert expected in run_launcher(capsys, "monitor", "--endpoint", ENDPOINT, *extra, code=2)
    assert server.requests() == []


def test_a_schedule_runs_the_image_every_hour_with_the_models_baseline(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], trained: Path
) -> None:
    args = cli.build_parser().parse_args(
        [
            "monitor",
            "--endpoint",
            ENDPOINT,
            "--schedule",
            "hourly",
            "--psi-max",
            "0.3",
            *settings_flags(),
        ]
    )
    settings = resolve({name: getattr(args, name) for name in SPECS}, {}, None)
    plan = monitoring.plan(args, settings, datetime.now())
    session = moto_session(REGION)
    facts = monitoring.endpoint_facts(session, ENDPOINT)
    baseline_uri = monitoring.upload_baseline(session, facts.model_data, plan)
    stored = s3().get_object(Bucket=BUCKET, Key=baseline_uri.split("/", 3)[3])["Body"].read()
    assert stored == (trained / "opt/ml/model" / contract.BASELINE_FILE).read_bytes()
    request = monitoring.schedule_request(plan, facts.image, baseline_uri)

    # moto has no monitoring schedules: botocore's Stubber checks the request against
    # SageMaker's service model (a field it does not know, or a missing one, fails here).
    client = boto3.session.Session(region_name=REGION).client("sagemaker")
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:monitoring-schedule/{ENDPOINT}-drift"
    with Stubber(client) as stub:
        stub.add_response(
            "create_monitoring_schedule", {"MonitoringScheduleArn": arn}, expected_params=request
        )
        assert monitoring.create_schedule(client, request) == 0
        stub.assert_no_pending_responses()
    printed = capsys.readouterr().out
    assert f"Monitoring schedule {arn}: cron(0 * ? * * *)" in printed
    definition = request["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    assert definition["MonitoringAppSpecification"] == {
        "ImageUri": IMAGE,
        "ContainerEntrypoint": ["monitor"],
        "ContainerArguments": ["--psi-max", "0.3"],
    }
    assert definition["MonitoringInputs"][0]["EndpointInput"]["LocalPath"] == (
        "/opt/ml/processing/input/endpoint"
    )
    assert definition["BaselineConfig"] == {"StatisticsResource": {"S3Uri": baseline_uri}}

    # The command itself sends that same request, which moto cannot answer.
    aws.forget_requests()
    output = run_launcher(
        capsys,
        "monitor",
        "--endpoint",
        ENDPOINT,
        "--schedule",
        "hourly",
        "--psi-max",
        "0.3",
        code=1,
    )
    assert f"Creating monitoring schedule {ENDPOINT}-drift failed" in output
    sent = aws.calls("CreateMonitoringSchedule")  # moto's error may be retried: same request
    assert sent and all(body == request for body in sent)


def test_a_model_trained_before_baselines_cannot_be_scheduled(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], trained: Path
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(
            trained / "opt/ml/model" / contract.METADATA_FILE, arcname=contract.METADATA_FILE
        )
    s3().put_object(Bucket=BUCKET, Key=MODEL_KEY, Body=buffer.getvalue())
    output = run_launcher(capsys, "monitor", "--endpoint", ENDPOINT, "--schedule", "daily", code=1)
    assert f"{MODEL_DATA} holds no baseline.json: the model was trained before" in output
