"""`deploy`, `invoke`, `transform` and `cleanup` end to end against a moto server.

The model is a real one: an svm trained on scikit-learn's digits by the image's own
training command, packed as SageMaker packs /opt/ml/model into model.tar.gz and put in
the server's S3. What moto 5.2.5 cannot do, and how each test copes:
- Its DescribeModel answers VpcConfig {} and DescribeEndpoint(Config) DataCaptureConfig
  {}, which AWS omits and sagemaker-core's pydantic shapes reject. `deploy` and
  `transform` therefore run in this process through `launch.cli.main` with a boto3
  session whose after-call hook drops exactly those empty structures
  (tests.support.moto_server.drop_moto_empty_structures). Its DescribeEndpoint leaves
  CaptureStatus and CurrentSamplingPercentage out of DataCaptureConfig, which AWS always
  answers; a second hook adds them as AWS reports a new endpoint
  (complete_moto_capture_summary). Everything else is the real CLI.
- Its InvokeEndpoint decodes the request body as UTF-8 and answers 500 to any real
  image; the invoke test asserts what reached the server (every file's bytes with its
  content type) and that the launcher reports each failure and exits 1, and the
  reading of the server's answer is tested on its own (tests/launch/test_cli.py).
- Endpoints are InService and transform jobs Completed at once, so the Failed paths
  are not exercised against the server.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from smvision.schema import specs
from tests.support.archives import model_archive as archived_model
from tests.support.moto_server import (
    BUCKET,
    IMAGE,
    REGION,
    ROLE,
    MotoServer,
    aws_client,
    clean_aws,
    create_moto_best_job,
    documented_caller_policy,
    iam_action,
    launch_here,
    moto_session,
    settings_flags,
)
from tests.support.photos import encode, grey_photo, photo
from tests.support.serving import JobDirs

ROOT = Path(__file__).resolve().parents[2]
MODEL_KEY = "smvision/training/digits-svm/output/model.tar.gz"
MODEL_DATA = f"s3://{BUCKET}/{MODEL_KEY}"
CALLER_POLICY = ROOT / "docs" / "iam" / "caller-policy.json"


@pytest.fixture(scope="module")
def model_archive(serving_jobs: JobDirs) -> bytes:
    """model.tar.gz of the run's svm (trained on the digits by the image's training
    command), holding the files of /opt/ml/model at its root."""
    return archived_model(serving_jobs("svm"))


@pytest.fixture
def aws(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_archive: bytes
) -> MotoServer:
    server = clean_aws(moto_server, tmp_path, monkeypatch)
    s3().put_object(Bucket=BUCKET, Key=MODEL_KEY, Body=model_archive)
    server.forget_requests()
    return server


def s3() -> Any:
    return aws_client("s3")


def sagemaker() -> Any:
    return aws_client("sagemaker")


def autoscaling() -> Any:
    return aws_client("application-autoscaling")


def launch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launch", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=600,
        env=dict(os.environ),
    )


def not_found(call: Any, **kwargs: str) -> bool:
    try:
        call(**kwargs)
    except Exception as error:  # botocore's ClientError subclasses are built per client
        return "Could not find" in str(error)
    return False


def deploy(capsys: pytest.CaptureFixture[str], name: str, *extra: str) -> str:
    code, output = launch_here(
        capsys,
        "deploy",
        *settings_flags(),
        "--model-data",
        MODEL_DATA,
        "--endpoint-name",
        name,
        *extra,
    )
    assert code == 0, output
    return output


def test_deploy_creates_model_config_endpoint_and_autoscaling(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    output = deploy(
        capsys,
        "digits",
        "--instance-type",
        "ml.c5.xlarge",
        "--instance-count",
        "2",
        "--workers",
        "3",
        "--timeout",
        "30",
        "--max-payload-mb",
        "12",
        "--autoscale",
        "2:6",
        "--target-invocations",
        "250",
    )

    client = sagemaker()
    model = client.describe_model(ModelName="digits")
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    assert model["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "30",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "12",
    }
    config = client.describe_endpoint_config(EndpointConfigName="digits")
    [variant] = config["ProductionVariants"]
    assert variant == {
        "VariantName": "AllTraffic",
        "ModelName": "digits",
        "InitialInstanceCount": 2,
        "InstanceType": "ml.c5.xlarge",
        "InitialVariantWeight": 1.0,
    }
    endpoint = client.describe_endpoint(EndpointName="digits")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "digits"

    scaling = autoscaling()
    [target] = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["ScalableDimension"]) == (
        "endpoint/digits/variant/AllTraffic",
        "sagemaker:variant:DesiredInstanceCount",
    )
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    [policy] = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ResourceId"] == "endpoint/digits/variant/AllTraffic"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 250.0
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }

    assert "Endpoint digits: 2 x ml.c5.xlarge" in output
    assert f"region={REGION}#/endpoints/digits" in output
    assert "Status: InService" in output
    assert "Autoscaling: 2 to 6 instances, target 250 invocations" in output


def test_deploy_with_defaults_sets_no_serving_environment(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    output = deploy(capsys, "plain")
    # No training job digits-svm exists on the server: the launchers' default, said once.
    assert (
        "Instance type: ml.m5.xlarge, the launchers' default: the algorithm that trained "
        "--model-data is unknown (there is no training job digits-svm); choose one with "
        "--instance-type."
    ) in output.splitlines()
    model = sagemaker().describe_model(ModelName="plain")
    assert model["PrimaryContainer"].get("Environment", {}) == {}
    config = sagemaker().describe_endpoint_config(EndpointConfigName="plain")
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"
    assert config["ProductionVariants"][0]["InitialInstanceCount"] == 1
    assert "RegisterScalableTarget" not in " ".join(aws.operations())
    assert "Autoscaling" not in output


TOY = replace(specs.get("svm"), name="toy", serving_instance_type="ml.c5.2xlarge")


@pytest.fixture
def toy_model(aws: MotoServer, monkeypatch: pytest.MonkeyPatch, model_archive: bytes) -> str:
    """A model.tar.gz written by a training job of algorithm 'toy', an entry added to the
    algorithm table for this test whose serving instance type is no launcher default."""
    table = {**specs.table(), TOY.name: TOY}
    monkeypatch.setattr(specs, "table", lambda: table)
    sagemaker().create_training_job(
        TrainingJobName="toy-job",
        RoleArn=ROLE,
        HyperParameters={"algorithm": "toy"},
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/smvision/training"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    artifact = sagemaker().describe_training_job(TrainingJobName="toy-job")["ModelArtifacts"][
        "S3ModelArtifacts"
    ]
    assert artifact == f"s3://{BUCKET}/smvision/training/toy-job/output/model.tar.gz"
    s3().put_object(Bucket=BUCKET, Key=artifact.split("/", 3)[3], Body=model_archive)
    aws.forget_requests()
    return str(artifact)


def test_deploy_and_transform_serve_on_the_algorithms_instance_type(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], toy_model: str
) -> None:
    code, output = launch_here(
        capsys, "deploy", *settings_flags(), "--model-data", toy_model, "--endpoint-name", "toy"
    )
    assert code == 0, output
    [variant] = sagemaker().describe_endpoint_config(EndpointConfigName="toy")["ProductionVariants"]
    assert variant["InstanceType"] == "ml.c5.2xlarge"
    assert "Endpoint toy: 1 x ml.c5.2xlarge serving" in output
    assert "Instance type:" not in output
    assert aws.calls("DescribeTrainingJob") == [{"TrainingJobName": "toy-job"}]

    upload("batch/toy", {"china.jpg": encode(photo("china"), ".jpg")})
    code, output = launch_here(
        capsys,
        "transform",
        *settings_flags(),
        "--model-data",
        toy_model,
        "--input",
        f"s3://{BUCKET}/batch/toy/",
        "--output",
        f"s3://{BUCKET}/batch/toy-out/",
        "--job-name",
        "toy-batch",
    )
    assert code == 0, output
    assert describe_transform("toy-batch")["TransformResources"]["InstanceType"] == (
        "ml.c5.2xlarge"
    )


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (
            "models/digits/model.tar.gz",
            "it is not at .../JOB_NAME/output/model.tar.gz, where a training job writes",
        ),
        (
            "smvision/training/no-such-job/output/model.tar.gz",
            "there is no training job no-such-job",
        ),
        ("elsewhere/toy-job/output/model.tar.gz", "training job toy-job did not write it"),
    ],
)
def test_a_models_algorithm_that_cannot_be_found_says_why(
    toy_model: str, key: str, reason: str
) -> None:
    from launch.hosting.model import model_algorithm

    uri = f"s3://{BUCKET}/{key}"
    assert model_algorithm(sagemaker(), uri) == (None, reason)
    assert model_algorithm(sagemaker(), toy_model) == ("toy", "")


def test_a_training_job_of_an_algorithm_this_launcher_lacks_falls_back(
    toy_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from launch.hosting.model import DEFAULT_INSTANCE_TYPE, model_algorithm, serving_instance_type

    table = {name: spec for name, spec in specs.table().items() if name != "toy"}
    monkeypatch.setattr(specs, "table", lambda: table)
    assert model_algorithm(sagemaker(), toy_model) == (
        None,
        "training job toy-job has algorithm 'toy', not in this launcher's table",
    )
    assert serving_instance_type(moto_session(REGION), toy_model) == DEFAULT_INSTANCE_TYPE


def test_aws_saying_requested_resource_not_found_means_no_training_job() -> None:
    """AWS answers DescribeTrainingJob of a missing job with another message than moto."""
    from botocore.stub import Stubber

    from launch.hosting.model import model_algorithm

    client = boto3.session.Session(region_name=REGION).client("sagemaker")
    stubber = Stubber(client)
    stubber.add_client_error(
        "describe_training_job",
        service_error_code="ValidationException",
        service_message="Requested resource not found.",
        expected_params={"TrainingJobName": "gone"},
    )
    with stubber:
        assert model_algorithm(client, f"s3://{BUCKET}/x/gone/output/model.tar.gz") == (
            None,
            "there is no training job gone",
        )
    stubber.assert_no_pending_responses()


def test_deploy_with_data_capture_records_inputs_and_answers_json_as_text(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    output = deploy(
        capsys, "watched", "--data-capture", f"s3://{BUCKET}/capture/", "--sample-percent", "25"
    )
    config = sagemaker().describe_endpoint_config(EndpointConfigName="watched")
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 25,
        "DestinationS3Uri": f"s3://{BUCKET}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json", "application/jsonlines"],
        },
    }
    assert f"Data capture: 25% of requests and answers to s3://{BUCKET}/capture/watched/" in (
        output
    )


def test_deploy_refuses_a_missing_model_before_creating_anything(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = launch_here(
        capsys,
        "deploy",
        *settings_flags(),
        "--model-data",
        f"s3://{BUCKET}/smvision/training/typo/output/model.tar.gz",
    )
    assert code == 1
    assert "no such object; copy the 'Model artifact' URI" in output
    assert aws.operations() == []


def test_deploy_removes_what_it_created_when_a_later_step_fails(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = launch_here(
        capsys,
        "deploy",
        *settings_flags(),
        "--model-data",
        MODEL_DATA,
        "--endpoint-name",
        "broken",
        "--instance-type",
        "ml.m5.huge",
    )
    assert code == 1
    assert "Creating endpoint config broken failed" in output
    assert "SageMaker.DeleteModel" in aws.operations()
    assert not_found(sagemaker().describe_model, ModelName="broken")
    assert "SageMaker.CreateEndpoint" not in aws.operations()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--autoscale", "2:4"], "--instance-count 1 is outside --autoscale 2:4"),
        (["--target-invocations", "50"], "applies to --autoscale only"),
        (["--workers", "0"], "--workers '0' must be a whole number of at least 1"),
        (["--model-data", f"s3://{BUCKET}/model/"], "must name a .tar.gz"),
        (["--sample-percent", "50"], "--sample-percent applies to --data-capture only"),
        (
            ["--data-capture", f"s3://{BUCKET}/c", "--sample-percent", "150"],
            "--sample-percent '150' is a percentage; use 1 to 100",
        ),
        (["--data-capture", "capture/"], "--data-capture 'capture/' is not an S3 URI"),
    ],
)
def test_a_bad_deploy_request_makes_no_aws_call(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    code, output = launch_here(
        capsys, "deploy", *settings_flags(), "--model-data", MODEL_DATA, *extra
    )
    assert code == 2
    assert expected in output
    assert aws.requests() == []


def write_photos(folder: Path) -> dict[Path, str]:
    """Real photographs in every format the server reads, with their content types."""
    files = {
        folder / "china.jpg": ("image/jpeg", photo("china")),
        folder / "more" / "coffee.png": ("image/png", photo("coffee")),
        folder / "more" / "camera.tiff": ("image/tiff", grey_photo("camera")),
        folder / "chelsea.webp": ("image/webp", photo("chelsea")),
        folder / "moon.bmp": ("image/bmp", grey_photo("moon")),
    }
    for path, (_, image) in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(image, path.suffix))
    return {path: content_type for path, (content_type, _) in files.items()}


def test_invoke_sends_every_image_with_its_content_type(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deploy(capsys, "digits")
    photos = write_photos(tmp_path / "photos")
    single = tmp_path / "astronaut.jpg"
    single.write_bytes(encode(photo("astronaut"), ".jpg"))
    photos[single] = "image/jpeg"
    aws.forget_requests()

    run = launch(
        "invoke",
        "--region",
        REGION,
        "--endpoint-name",
        "digits",
        "--top-k",
        "3",
        str(tmp_path / "photos"),
        str(single),
    )

    sent: dict[bytes, set[str]] = {}
    inference_ids = []
    for request in aws.requests():
        assert request.method == "POST"
        assert request.path == "/endpoints/digits/invocations"
        assert request.header("Accept") == "application/json"
        assert request.header("X-Amzn-SageMaker-Custom-Attributes") == "top_k=3"
        sent.setdefault(request.body, set()).add(str(request.header("Content-Type")))
        inference_ids.append(str(uuid.UUID(str(request.header("X-Amzn-SageMaker-Inference-Id")))))
    assert sent == {path.read_bytes(): {content_type} for path, content_type in photos.items()}
    # A new id per file (moto's 500s below are retried once: the retry keeps the file's id).
    assert len(set(inference_ids)) == len(photos)
    # moto 5.2.5 answers 500 to binary bodies: the launcher must say so, file by file.
    assert run.returncode == 1
    for path in photos:
        assert f"{path}: error (inference id " in run.stdout
        assert "An error occurred (500) when calling the InvokeEndpoint" in run.stdout
    assert f"error: {len(photos)} of {len(photos)} requests to endpoint digits failed" in (
        run.stdout
    )


def test_cleanup_deletes_endpoint_config_model_and_autoscaling(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy(capsys, "digits", "--autoscale", "1:3")
    deploy(capsys, "neighbour")

    run = launch("cleanup", "--region", REGION, "--endpoint-name", "digits")

    assert run.returncode == 0, run.stdout
    client = sagemaker()
    assert not_found(client.describe_endpoint, EndpointName="digits")
    assert not_found(client.describe_endpoint_config, EndpointConfigName="digits")
    assert not_found(client.describe_model, ModelName="digits")
    scaling = autoscaling()
    assert (
        scaling.describe_scalable_targets(
            ServiceNamespace="sagemaker",
            ResourceIds=["endpoint/digits/variant/AllTraffic"],
        )["ScalableTargets"]
        == []
    )
    assert scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    assert client.describe_endpoint(EndpointName="neighbour")["EndpointStatus"] == "InService"
    for line in (
        "Deleted scaling policy digits-invocations-per-instance",
        "Deleted scalable target endpoint/digits/variant/AllTraffic",
        "Deleted endpoint digits",
        "Deleted endpoint config digits",
        "Deleted model digits",
    ):
        assert line in run.stdout

    again = launch("cleanup", "--region", REGION, "--endpoint-name", "digits")
    assert again.returncode == 1
    assert "Nothing to clean up: no endpoint, endpoint config or model named digits" in (
        again.stdout
    )


def test_cleanup_removes_what_a_half_finished_deploy_left(aws: MotoServer) -> None:
    sagemaker().create_model(
        ModelName="halfway",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": MODEL_DATA},
    )
    run = launch("cleanup", "--region", REGION, "--endpoint-name", "halfway")
    assert run.returncode == 0, run.stdout
    assert run.stdout.strip().splitlines()[-1] == "Deleted model halfway"
    assert not_found(sagemaker().describe_model, ModelName="halfway")


def upload(prefix: str, files: dict[str, bytes]) -> None:
    for name, body in files.items():
        s3().put_object(Bucket=BUCKET, Key=f"{prefix}/{name}", Body=body)


def describe_transform(name: str) -> dict[str, Any]:
    return dict(sagemaker().describe_transform_job(TransformJobName=name))


def test_transform_sends_image_files_one_per_request(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(
        "batch/photos",
        {
            "china.jpg": encode(photo("china"), ".jpg"),
            "nested/camera.png": encode(grey_photo("camera"), ".png"),
            "coffee.webp": encode(photo("coffee"), ".webp"),
        },
    )
    aws.forget_requests()

    code, output = launch_here(
        capsys,
        "transform",
        *settings_flags(),
        "--model-data",
        MODEL_DATA,
        "--input",
        f"s3://{BUCKET}/batch/photos/",
        "--output",
        f"s3://{BUCKET}/batch/predictions/",
        "--workers",
        "2",
        "--instance-count",
        "2",
        "--job-name",
        "photos-batch",
    )

    assert code == 0, output
    job = describe_transform("photos-batch")
    assert job["TransformJobStatus"] == "Completed"
    assert job["ModelName"] == "photos-batch"
    assert job["BatchStrategy"] == "SingleRecord"
    assert job["TransformInput"] == {
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/batch/photos/"}
        },
        "ContentType": "application/x-image",
        "SplitType": "None",
    }
    assert job["TransformOutput"] == {
        "S3OutputPath": f"s3://{BUCKET}/batch/predictions/",
        "Accept": "application/json",
        "AssembleWith": "None",
    }
    assert job["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2}
    assert job["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    [model] = aws.calls("CreateModel")
    assert model["PrimaryContainer"] == {
        "Image": IMAGE,
        "ModelDataUrl": MODEL_DATA,
        "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
    }
    # The model existed only for the job.
    assert aws.operations().index("SageMaker.DeleteModel") > aws.operations().index(
        "SageMaker.CreateTransformJob"
    )
    assert not_found(sagemaker().describe_model, ModelName="photos-batch")
    assert "Transform job photos-batch: " in output and "SingleRecord" in output
    assert f"Results: s3://{BUCKET}/batch/predictions/" in output


def json_lines(*names: str) -> bytes:
    lines = [
        json.dumps({"b64": base64.b64encode(encode(photo(n), ".jpg")).decode()}) for n in names
    ]
    return ("\n".join(lines) + "\n").encode()


def test_transform_batches_json_lines_by_line(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(
        "batch/lines",
        {"part-0.jsonl": json_lines("china", "flower"), "part-1.jsonl": json_lines("chelsea")},
    )
    code, output = launch_here(
        capsys,
        "transform",
        *settings_flags(),
        "--model-data",
        MODEL_DATA,
        "--input",
        f"s3://{BUCKET}/batch/lines",
        "--output",
        f"s3://{BUCKET}/batch/lines-out",
        "--job-name",
        "lines-batch",
    )

    assert code == 0, output
    job = describe_transform("lines-batch")
    assert job["BatchStrategy"] == "MultiRecord"
    assert job["TransformInput"]["ContentType"] == "application/jsonlines"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformOutput"]["Accept"] == "application/jsonlines"
    assert job["TransformOutput"]["AssembleWith"] == "Line"


def test_transform_refuses_a_mixed_prefix_unless_told_what_it_holds(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(
        "batch/mixed",
        {"china.jpg": encode(photo("china"), ".jpg"), "part-0.jsonl": json_lines("flower")},
    )
    aws.forget_requests()
    arguments = [
        *settings_flags(),
        "--model-data",
        MODEL_DATA,
        "--input",
        f"s3://{BUCKET}/batch/mixed",
        "--output",
        f"s3://{BUCKET}/batch/mixed-out",
    ]

    code, output = launch_here(capsys, "transform", *arguments)
    assert code == 2
    assert "not all images or all JSON Lines" in output
    assert f"s3://{BUCKET}/batch/mixed/part-0.jsonl" in output
    assert not [op for op in aws.operations() if op.startswith("SageMaker.")]

    code, output = launch_here(
        capsys,
        "transform",
        *arguments,
        "--content-type",
        "application/jsonlines",
        "--job-name",
        "told",
    )
    assert code == 0, output
    assert describe_transform("told")["BatchStrategy"] == "MultiRecord"


@pytest.mark.parametrize(
    ("input_uri", "output_uri", "expected"),
    [
        (f"s3://{BUCKET}/batch/photos", f"s3://{BUCKET}/batch/photos/out", "is inside --input"),
        (f"s3://{BUCKET}/batch/empty", f"s3://{BUCKET}/batch/out", "no files under it"),
    ],
)
def test_a_bad_transform_request_creates_nothing(
    aws: MotoServer,
    capsys: pytest.CaptureFixture[str],
    input_uri: str,
    output_uri: str,
    expected: str,
) -> None:
    code, output = launch_here(
        capsys,
        "transform",
        *settings_flags(),
        "--model-data",
        MODEL_DATA,
        "--input",
        input_uri,
        "--output",
        output_uri,
    )
    assert code == 2
    assert expected in output
    assert not [op for op in aws.operations() if op.startswith("SageMaker.")]


def test_the_documented_caller_policy_covers_every_call_of_the_walkthrough(
    aws: MotoServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from launch.common import ecr

    monkeypatch.setenv("SMVISION_REGION", REGION)
    create_moto_best_job()
    upload("batch/photos", {"china.jpg": encode(photo("china"), ".jpg")})
    image = tmp_path / "coffee.png"
    image.write_bytes(encode(photo("coffee"), ".png"))
    aws.forget_requests()
    data = f"s3://{BUCKET}/datasets/digits"

    assert ecr.main(["repository", "smvision"]) == 0
    assert ecr.main(["password"]) == 0
    steps = [
        [
            "train",
            "--algorithm",
            "svm",
            "--train",
            f"{data}/train",
            "--validation",
            f"{data}/validation",
            "--job-name",
            "walkthrough",
        ],
        [
            "tune",
            "--algorithm",
            "svm",
            "--train",
            f"{data}/train",
            "--validation",
            f"{data}/validation",
            "--job-name",
            "walkthrough-tuning",
        ],
        ["deploy", "--model-data", MODEL_DATA, "--endpoint-name", "digits", "--autoscale", "1:4"],
        [
            "transform",
            "--model-data",
            MODEL_DATA,
            "--input",
            f"s3://{BUCKET}/batch/photos/",
            "--output",
            f"s3://{BUCKET}/batch/out/",
        ],
        ["cleanup", "--endpoint-name", "digits"],
    ]
    for step in steps:
        code, output = launch_here(capsys, step[0], *settings_flags(), *step[1:])
        assert code == 0, output
    # moto answers 500 to image bodies (see the module docstring); the request is made.
    code, output = launch_here(
        capsys, "invoke", "--region", REGION, "--endpoint-name", "digits", str(image)
    )
    assert code == 1 and "InvokeEndpoint" in output

    called = {iam_action(request) for request in aws.requests()}
    assert {
        "sagemaker:CreateTrainingJob",
        "sagemaker:InvokeEndpoint",
        "s3:GetObject",
        "application-autoscaling:PutScalingPolicy",
        "ecr:CreateRepository",
    } <= called
    missing = called - documented_caller_policy()
    assert not missing, f"{CALLER_POLICY} lacks {sorted(missing)}"


def test_transform_carries_tta_and_coverage_as_the_model_environment(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch transform forwards no custom attributes: --tta and --coverage become the
    model's SMVISION_TTA and SMVISION_COVERAGE, which serve takes as its defaults."""
    upload("batch/answers", {"china.jpg": encode(photo("china"), ".jpg")})
    arguments = [
        "transform",
        *settings_flags(),
        "--model-data",
        MODEL_DATA,
        "--input",
        f"s3://{BUCKET}/batch/answers/",
        "--output",
        f"s3://{BUCKET}/batch/answered/",
        "--job-name",
        "answers-batch",
    ]
    aws.forget_requests()
    code, output = launch_here(capsys, *arguments, "--coverage", "1.5")
    assert code != 0 and "--coverage '1.5'" in output
    assert not aws.calls("CreateModel")
    code, output = launch_here(capsys, *arguments, "--tta", "flip", "--coverage", "0.9")
    assert code == 0, output
    [model] = aws.calls("CreateModel")
    assert model["PrimaryContainer"]["Environment"] == {
        "SMVISION_TTA": "flip",
        "SMVISION_COVERAGE": "0.9",
    }
