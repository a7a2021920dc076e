"""Multi-model, serverless and asynchronous endpoints, and `add-model`, against a moto server.

The models are real (an svm trained on the digits, packed as SageMaker packs
/opt/ml/model) and so are the answers the launchers read: the real server's, for the
same files, queued into moto as what the endpoint answered. What moto 5.2.5 cannot do,
and how each is checked instead:
- It answers InvokeEndpoint and InvokeEndpointAsync with what a test queues, without a
  container: the answers queued here are the real server's, and the image itself is run
  with the serverless limits, as a user, on a read-only root
  (tests/container/test_serve_modes_image.py).
- It writes an async answer to a bucket of its own, not to the endpoint's --output
  prefix, and never to --failure: the test checks that `deploy` sent both prefixes and
  that `invoke --async` reads whichever location InvokeEndpointAsync returned.
- It accepts any ServerlessConfig concurrency and any AsyncInferenceConfig: the launcher's
  checks of what AWS allows are tested on their own (no request is made).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.archives import model_archive
from tests.support.moto_server import (
    BUCKET,
    IMAGE,
    MotoServer,
    aws_client,
    clean_aws,
    documented_caller_policy,
    iam_action,
    launch_here,
    settings_flags,
)
from tests.support.photos import encode, grey_photo, photo
from tests.support.serving import JobDirs, ServerPool

MODEL_KEY = "smvision/training/digits-svm/output/model.tar.gz"
MODEL_DATA = f"s3://{BUCKET}/{MODEL_KEY}"
PREFIX = f"s3://{BUCKET}/smvision/models/"


@pytest.fixture
def aws(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serving_jobs: JobDirs
) -> MotoServer:
    server = clean_aws(moto_server, tmp_path, monkeypatch)
    aws_client("s3").put_object(
        Bucket=BUCKET, Key=MODEL_KEY, Body=model_archive(serving_jobs("svm"))
    )
    server.forget_requests()
    return server


def json_lines_file(folder: Path) -> Path:
    """Three real photographs, one base64 file per line."""
    path = folder / "photos.jsonl"
    images = [
        encode(photo("china"), ".jpg"),
        encode(grey_photo("camera"), ".png"),
        encode(photo("coffee"), ".png"),
    ]
    path.write_text(
        "".join(json.dumps({"b64": base64.b64encode(data).decode()}) + "\n" for data in images)
    )
    return path


def served_answer(servers: ServerPool, body: bytes, content_type: str, accept: str) -> str:
    """What the real server answers for `body`: the answer an endpoint would give."""
    server = servers("svm")
    response = httpx.post(
        f"{server.url}/invocations",
        content=body,
        timeout=120,
        headers={"Content-Type": content_type, "Accept": accept},
    )
    assert response.status_code == 200, response.text
    return response.text


def no_aws(region: str) -> Any:
    raise AssertionError(f"an AWS session was opened for {region}")


def labels_printed(output: str) -> list[str]:
    return [line.split("\t")[1] for line in output.splitlines() if line.count("\t") == 3]


def test_deploy_multi_model_serves_every_model_under_the_prefix(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("site-1.tar.gz", "site-2.tar.gz", "notes.txt"):
        aws_client("s3").copy_object(
            Bucket=BUCKET,
            Key=f"smvision/models/{name}",
            CopySource={"Bucket": BUCKET, "Key": MODEL_KEY},
        )

    code, output = launch_here(
        capsys,
        "deploy",
        *settings_flags(),
        "--multi-model",
        "--model-prefix",
        PREFIX.rstrip("/"),
        "--endpoint-name",
        "sites",
    )

    assert code == 0, output
    container = aws_client("sagemaker").describe_model(ModelName="sites")["PrimaryContainer"]
    assert (container["Image"], container["Mode"], container["ModelDataUrl"]) == (
        IMAGE,
        "MultiModel",
        PREFIX,
    )
    assert container.get("Environment", {}) == {}
    [variant] = aws_client("sagemaker").describe_endpoint_config(EndpointConfigName="sites")[
        "ProductionVariants"
    ]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.xlarge", 1)
    assert f"Models: 2 model.tar.gz under {PREFIX} now" in output
    assert "Instance type: ml.m5.xlarge, the launchers' default for models of any" in output
    assert "Endpoint sites: multi-model 1 x ml.m5.xlarge serving" in output
    assert "--endpoint-name sites --target-model NAME.tar.gz IMAGE..." in output


def test_add_model_copies_or_uploads_and_never_replaces(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, output = launch_here(
        capsys,
        "add-model",
        "--region",
        "us-east-1",
        "--model-data",
        MODEL_DATA,
        "--model-prefix",
        PREFIX,
        "--name",
        "north/site-17",
    )
    assert code == 0, output
    copied = aws_client("s3").get_object(Bucket=BUCKET, Key="smvision/models/north/site-17.tar.gz")
    original = aws_client("s3").get_object(Bucket=BUCKET, Key=MODEL_KEY)["Body"].read()
    assert copied["Body"].read() == original
    assert f"Model north/site-17.tar.gz: {PREFIX}north/site-17.tar.gz" in output
    assert "--target-model north/site-17.tar.gz IMAGE..." in output

    local = tmp_path / "model.tar.gz"
    local.write_bytes(original)
    code, output = launch_here(
        capsys,
        "add-model",
        "--region",
        "us-east-1",
        "--model-data",
        str(local),
        "--model-prefix",
        PREFIX,
        "--name",
        "site-18.tar.gz",
    )
    assert code == 0, output
    uploaded = aws_client("s3").get_object(Bucket=BUCKET, Key="smvision/models/site-18.tar.gz")
    assert uploaded["Body"].read() == original

    aws.forget_requests()
    code, output = launch_here(
        capsys,
        "add-model",
        "--region",
        "us-east-1",
        "--model-data",
        MODEL_DATA,
        "--model-prefix",
        PREFIX,
        "--name",
        "site-18",
    )
    assert code == 1
    assert "site-18.tar.gz exists already; an endpoint that loaded it keeps serving" in output
    assert "(such as site-18-v2)" in output
    assert [r.method for r in aws.requests()] == ["HEAD"]


def test_invoke_names_the_target_model_and_reads_json_lines_answers(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], tmp_path: Path, servers: ServerPool
) -> None:
    lines = json_lines_file(tmp_path)
    answer = served_answer(
        servers, lines.read_bytes(), "application/jsonlines", "application/jsonlines"
    )
    aws.queue_endpoint_results([{"Body": answer, "ContentType": "application/jsonlines"}])
    aws.forget_requests()

    code, output = launch_here(
        capsys,
        "invoke",
        "--region",
        "us-east-1",
        "--endpoint-name",
        "sites",
        "--target-model",
        "north/site-17.tar.gz",
        str(lines),
    )

    assert code == 0, output
    [request] = aws.requests()
    assert request.path == "/endpoints/sites/invocations"
    assert request.header("X-Amzn-SageMaker-Target-Model") == "north/site-17.tar.gz"
    assert request.header("Content-Type") == "application/jsonlines"
    assert request.header("Accept") == "application/jsonlines"
    assert request.body == lines.read_bytes()
    expected = [json.loads(line)["label"] for line in answer.splitlines()]
    assert labels_printed(output) == expected and len(expected) == 3
    assert f"{lines}:3\t" in output


def test_deploy_serverless_sets_the_serverless_limits(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = launch_here(
        capsys,
        "deploy",
        *settings_flags(),
        "--model-data",
        MODEL_DATA,
        "--serverless",
        "2048:5",
        "--endpoint-name",
        "spiky",
    )

    assert code == 0, output
    [variant] = aws_client("sagemaker").describe_endpoint_config(EndpointConfigName="spiky")[
        "ProductionVariants"
    ]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    environment = aws_client("sagemaker").describe_model(ModelName="spiky")["PrimaryContainer"][
        "Environment"
    ]
    assert environment == {
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "4",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }
    assert "Endpoint spiky: serverless, 2048 MB, up to 5 requests at once, serving" in output
    # No instance type to find: the model's training job is not looked up.
    assert "SageMaker.DescribeTrainingJob" not in aws.operations()


def test_deploy_async_and_invoke_async_through_s3(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], tmp_path: Path, servers: ServerPool
) -> None:
    code, output = launch_here(
        capsys,
        "deploy",
        *settings_flags(),
        "--model-data",
        MODEL_DATA,
        "--async",
        "--output",
        f"s3://{BUCKET}/async/out/",
        "--max-concurrent",
        "4",
        "--endpoint-name",
        "heavy",
    )
    assert code == 0, output
    config = aws_client("sagemaker").describe_endpoint_config(EndpointConfigName="heavy")
    assert config["AsyncInferenceConfig"] == {
        "OutputConfig": {
            "S3OutputPath": f"s3://{BUCKET}/async/out/",
            "S3FailurePath": f"s3://{BUCKET}/async/out/failures/",
        },
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
    }
    environment = aws_client("sagemaker").describe_model(ModelName="heavy")["PrimaryContainer"][
        "Environment"
    ]
    assert environment == {"SMVISION_ASYNC_INFERENCE": "true"}
    assert "--endpoint-name heavy --async FILE..." in output

    lines = json_lines_file(tmp_path)
    image = tmp_path / "chelsea.jpg"
    image.write_bytes(encode(photo("chelsea"), ".jpg"))
    answers = [
        served_answer(
            servers, lines.read_bytes(), "application/jsonlines", "application/jsonlines"
        ),
        served_answer(servers, image.read_bytes(), "image/jpeg", "application/json"),
    ]
    aws.queue_async_results([{"data": answers[0]}, {"data": answers[1]}])
    aws.forget_requests()

    code, output = launch_here(
        capsys,
        "invoke",
        *settings_flags(),
        "--endpoint-name",
        "heavy",
        "--async",
        "--top-k",
        "2",
        str(lines),
        str(image),
    )

    assert code == 0, output
    queued = [r for r in aws.requests() if r.path.endswith("/async-invocations")]
    assert [r.header("X-Amzn-SageMaker-Content-Type") for r in queued] == [
        "application/jsonlines",
        "image/jpeg",
    ]
    for request, path in zip(queued, (lines, image)):
        location = str(request.header("X-Amzn-SageMaker-InputLocation"))
        inference_id = str(request.header("X-Amzn-SageMaker-Inference-Id"))
        assert location == (f"s3://{BUCKET}/smvision/async-inputs/heavy/{inference_id}/{path.name}")
        key = location.split("/", 3)[3]
        assert (
            aws_client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == path.read_bytes()
        )
        assert request.header("X-Amzn-SageMaker-Custom-Attributes") == "top_k=2"
    expected = [json.loads(line)["label"] for line in answers[0].splitlines()]
    expected.append(json.loads(answers[1])["predictions"][0]["label"])
    assert labels_printed(output) == expected
    assert f"{image}: queued (inference id " in output


def test_invoke_async_reports_the_failure_the_endpoint_wrote(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = tmp_path / "broken.png"
    image.write_bytes(b"not a PNG")
    aws.queue_async_results(
        [{"data": '{"error": "The image/png body is not a readable image."}', "is_failure": True}]
    )

    code, output = launch_here(
        capsys, "invoke", *settings_flags(), "--endpoint-name", "heavy", "--async", str(image)
    )

    assert code == 1
    assert f"{image}: error (inference id " in output
    assert 'the endpoint failed it: {"error": "The image/png body is not a readable' in output
    assert "error: 1 of 1 requests to endpoint heavy failed" in output


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--model-data", MODEL_DATA, "--serverless", "1000:5"],
            "--serverless '1000:5' is not MEMORY_MB:MAX_CONCURRENCY with MEMORY_MB one of 1024,",
        ),
        (["--model-data", MODEL_DATA, "--serverless", "2048:201"], "MAX_CONCURRENCY 1 to 200"),
        (["--model-data", MODEL_DATA, "--serverless", "2048"], "such as --serverless 2048:5"),
        (
            ["--model-data", MODEL_DATA, "--serverless", "2048:5", "--autoscale", "1:2"],
            "--autoscale does not apply to a serverless endpoint",
        ),
        (
            [
                "--model-data",
                MODEL_DATA,
                "--serverless",
                "2048:5",
                "--data-capture",
                f"s3://{BUCKET}/c",
            ],
            "--data-capture does not apply to a serverless endpoint",
        ),
        (
            [
                "--model-data",
                MODEL_DATA,
                "--serverless",
                "2048:5",
                "--instance-type",
                "ml.c5.xlarge",
            ],
            "--instance-type does not apply to a serverless endpoint",
        ),
        (
            ["--model-data", MODEL_DATA, "--serverless", "2048:5", "--max-payload-mb", "5"],
            "a serverless endpoint takes at most 4 MB per request",
        ),
        (
            ["--model-data", MODEL_DATA, "--serverless", "2048:5", "--workers", "2"],
            "a serverless endpoint runs one server worker",
        ),
        (["--model-data", MODEL_DATA, "--async"], "--async needs --output S3URI"),
        (
            ["--model-data", MODEL_DATA, "--output", f"s3://{BUCKET}/o"],
            "--output applies to --async only",
        ),
        (
            [
                "--model-data",
                MODEL_DATA,
                "--async",
                "--output",
                f"s3://{BUCKET}/o",
                "--max-concurrent",
                "1001",
            ],
            "more than SageMaker's 1000",
        ),
        (["--model-data", MODEL_DATA, "--multi-model"], "--multi-model serves the models under"),
        (["--model-prefix", PREFIX], "--model-prefix names the models of a multi-model endpoint"),
        (["--model-prefix", f"{PREFIX}a.tar.gz", "--multi-model"], "names one model"),
        (
            ["--model-prefix", PREFIX, "--multi-model", "--async", "--output", f"s3://{BUCKET}/o"],
            "asynchronous endpoints serve one model",
        ),
        (
            ["--model-prefix", PREFIX, "--multi-model", "--workers", "2"],
            "a multi-model server runs one worker",
        ),
    ],
)
def test_a_mode_aws_would_refuse_opens_no_aws_session(
    capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    from launch import cli

    code = cli.main(["deploy", *settings_flags(), *extra], open_session=no_aws)
    assert code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--target-model", "/abs.tar.gz"], "--target-model '/abs.tar.gz' must be a model's path"),
        (["--target-model", "site-17"], "--target-model 'site-17' must be a model's path"),
        (["--wait-timeout", "5"], "--wait-timeout applies to --async only"),
    ],
)
def test_bad_invoke_options_open_no_aws_session(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, arguments: list[str], expected: str
) -> None:
    from launch import cli

    image = tmp_path / "camera.png"
    image.write_bytes(encode(grey_photo("camera"), ".png"))
    code = cli.main(
        ["invoke", "--region", "us-east-1", "--endpoint-name", "sites", *arguments, str(image)],
        open_session=no_aws,
    )
    assert code == 2
    assert expected in capsys.readouterr().err


def test_the_documented_caller_policy_covers_the_endpoint_modes(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = tmp_path / "coffee.png"
    image.write_bytes(encode(photo("coffee"), ".png"))
    aws.queue_async_results([{"data": "{}"}])
    aws.forget_requests()
    steps: list[list[str]] = [
        ["add-model", "--model-data", MODEL_DATA, "--model-prefix", PREFIX, "--name", "a"],
        ["deploy", "--multi-model", "--model-prefix", PREFIX, "--endpoint-name", "m"],
        ["deploy", "--model-data", MODEL_DATA, "--serverless", "1024:1", "--endpoint-name", "s"],
        [
            "deploy",
            "--model-data",
            MODEL_DATA,
            "--async",
            "--output",
            f"s3://{BUCKET}/o/",
            "--endpoint-name",
            "a",
        ],
        ["invoke", "--endpoint-name", "a", "--async", str(image)],
    ]
    for step in steps:
        code, output = launch_here(capsys, step[0], *settings_flags(), *step[1:])
        assert code in (0, 1), output  # moto's "{}" is no prediction: invoke reports it

    called: set[str] = set()
    for request in aws.requests():
        # moto writes async answers to a bucket of its own; AWS writes them to --output.
        foreign = request.path.startswith("/sagemaker-output-")
        called.add("s3:GetObject" if foreign and request.method == "GET" else iam_action(request))
    assert {"sagemaker:InvokeEndpointAsync", "s3:PutObject", "s3:ListBucket"} <= called
    missing = called - documented_caller_policy()
    assert not missing, f"docs/iam/caller-policy.json lacks {sorted(missing)}"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--instance-count", "2"], "--instance-count does not apply to --local"),
        (["--no-wait"], "--no-wait does not apply to --local"),
        (["--input", "s3://bucket/in"], "--input 's3://bucket/in' is in S3; with --local"),
        (["--output", "INPUT/out"], "is inside --input"),
        (["--output", "FULL"], "exists and is not an empty folder"),
        (["--input", "NESTED"], "holds folders but no files: local mode reads only the files"),
        (["--input", "MIXED"], "not all images or all JSON Lines"),
        (["--model-data", "absent.tar.gz"], "--model-data 'absent.tar.gz': no such file"),
    ],
)
def test_transform_local_checks_its_folders_before_starting_docker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], expected: str
) -> None:
    from launch import cli

    folders = {name: tmp_path / name for name in ("INPUT", "FULL", "NESTED", "MIXED")}
    (folders["INPUT"]).mkdir()
    (folders["INPUT"] / "camera.png").write_bytes(encode(grey_photo("camera"), ".png"))
    (folders["FULL"]).mkdir()
    (folders["FULL"] / "old.out").write_text("{}")
    (folders["NESTED"] / "cats").mkdir(parents=True)
    (folders["MIXED"]).mkdir()
    (folders["MIXED"] / "camera.png").write_bytes(encode(grey_photo("camera"), ".png"))
    (folders["MIXED"] / "part.jsonl").write_text("{}\n")
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"")
    given = {
        "--model-data": str(model),
        "--input": str(folders["INPUT"]),
        "--output": str(tmp_path / "results"),
    }
    extra = list(arguments)
    if arguments[0] in given:
        value = arguments[1].replace("INPUT/", f"{folders['INPUT']}/")
        given[arguments[0]] = str(folders.get(value, value))
        extra = []
    flat = [word for option, value in given.items() for word in (option, value)]

    code = cli.main(
        ["transform", "--local", "--image-uri", IMAGE, *flat, *extra], open_session=no_aws
    )

    assert code == 2
    assert expected in capsys.readouterr().err
