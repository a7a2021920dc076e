"""`python -m launch rekognition ...`: analysis of many images and Custom Labels.

Against the moto server (tests/support/moto_server.py) where moto 5.2.5 implements the call:
DetectLabels, DetectText and S3. moto analyzes no image: DetectLabels answers the same
"Mobile Phone" label for any image and DetectText the same words, so these tests assert
what was sent (moto's request recorder: S3Object or bytes, what was downloaded) and what
was written, not what Rekognition would see. Where moto has no implementation
(DetectFaces, throttling, every Custom Labels call), botocore's Stubber checks each request
against Rekognition's service model and answers with a response the model validates.
"""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import cv2
import pytest
from botocore.stub import ANY, Stubber
from PIL import Image

from launch import cli
from launch.common.errors import LaunchError
from launch.rekognition import analyze, custom_labels, prepare, retry, zero_shot
from launch.rekognition.sources import ImageRef, Labelled
from tests.support.custom_labels import (
    PROJECT,
    PROJECT_ARN,
    SUMMARY_KEY,
    VERSION_ARN,
    summary_file,
    trained_version,
)
from tests.support.moto_server import (
    BUCKET,
    REGION,
    MotoServer,
    documented_caller_policy,
    iam_action,
    moto_session,
)
from tests.support.photos import encode, photo

ROOT = Path(__file__).resolve().parents[2]
MOTO_LABEL = "Mobile Phone"  # moto's one DetectLabels answer


def stubbed_rekognition() -> tuple[Any, Stubber]:
    client = boto3.session.Session(region_name=REGION).client("rekognition")
    return client, Stubber(client)


def record_operations(client: Any) -> list[str]:
    """The IAM action of every call the client makes, as it makes it."""
    called: list[str] = []
    client.meta.events.register(
        "before-call.rekognition", lambda model, **_: called.append(f"rekognition:{model.name}")
    )
    return called


@functools.cache
def big_png() -> bytes:
    """A real photo enlarged five times: a 7.7 MB PNG, over Rekognition's 5 MB."""
    enlarged = cv2.resize(photo("china"), None, fx=5, fy=5, interpolation=cv2.INTER_CUBIC)
    data = encode(enlarged, ".png")
    assert len(data) > prepare.MAX_BYTES
    return data


def digit_png(digits: Path) -> bytes:
    return next((digits / "test" / "3").glob("*.png")).read_bytes()


# Making images acceptable -----------------------------------------------------------------


def test_an_acceptable_image_is_sent_as_it_is() -> None:
    data = encode(photo("coffee"), ".jpg")
    assert prepare.prepare(data, "coffee.jpg") == prepare.Prepared(data, None)


def test_an_image_over_5_mb_becomes_a_jpeg_under_it() -> None:
    result = prepare.prepare(big_png(), "big.png")

    assert result.change is not None
    assert "over Rekognition's 5 MB limit for image bytes" in result.change
    assert "PNG 3200x2135" in result.change and "-> JPEG 3200x2135" in result.change
    assert len(result.data) <= prepare.MAX_BYTES
    assert Image.open(io.BytesIO(result.data)).format == "JPEG"


def test_a_jpeg_still_too_large_is_downscaled_until_it_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real limit needs a photo of tens of megapixels; a lower one exercises the loop.
    monkeypatch.setattr(prepare, "MAX_BYTES", 60_000)
    data = encode(photo("china"), ".jpg")
    assert len(data) > prepare.MAX_BYTES

    result = prepare.prepare(data, "china.jpg")

    assert len(result.data) <= 60_000
    width, height = Image.open(io.BytesIO(result.data)).size
    assert width < 640 and height < 427 and abs(width / height - 640 / 427) < 0.02
    assert result.change is not None and f"-> JPEG {width}x{height}" in result.change


def test_other_formats_and_tiny_images_become_pngs(digits: Path) -> None:
    bmp = prepare.prepare(encode(photo("chelsea"), ".bmp"), "cat.bmp")
    tiny = prepare.prepare(digit_png(digits), "digit.png")

    assert bmp.change is not None and "BMP is not JPEG or PNG" in bmp.change
    assert Image.open(io.BytesIO(bmp.data)).format == "PNG"
    assert Image.open(io.BytesIO(bmp.data)).size == (451, 300)
    assert tiny.change is not None and "8x8 is under Rekognition's 80-pixel minimum" in tiny.change
    assert Image.open(io.BytesIO(tiny.data)).size == (80, 80)


def test_a_file_that_is_no_image_is_refused_by_name() -> None:
    with pytest.raises(prepare.ImageRejected, match="notes.jpg: Pillow cannot read it"):
        prepare.prepare(b"shopping list", "notes.jpg")


# Throttling --------------------------------------------------------------------------------


def test_throttling_is_retried_with_growing_jittered_waits(tmp_path: Path) -> None:
    client, stubber = stubbed_rekognition()
    data = encode(photo("coffee"), ".jpg")
    expected = {"Image": {"Bytes": data}, "MaxLabels": 10, "MinConfidence": 70.0}
    stubber.add_client_error("detect_labels", "ThrottlingException", expected_params=expected)
    stubber.add_client_error(
        "detect_labels", "ProvisionedThroughputExceededException", expected_params=expected
    )
    stubber.add_response(
        "detect_labels", {"Labels": [{"Name": "Cup", "Confidence": 97.5}]}, expected
    )
    waits: list[float] = []
    analyzer = analyze.Analyzer(
        client,
        None,
        analyze.Request(),
        retry.Backoff(attempts=4, base_s=0.5, cap_s=20),
        waits.append,
    )

    with stubber:
        record = analyzer.analyze(ImageRef("coffee.jpg", path=_file(data, "coffee.jpg", tmp_path)))

    stubber.assert_no_pending_responses()
    assert record["error"] is None
    assert record["labels"] == [{"Name": "Cup", "Confidence": 97.5}]
    assert len(waits) == 2
    assert 0 <= waits[0] <= 0.5 and 0 <= waits[1] <= 1.0


def test_waits_double_up_to_the_cap() -> None:
    backoff = retry.Backoff(attempts=10, base_s=0.5, cap_s=4)
    assert [backoff.wait_s(n, lambda: 1.0) for n in range(6)] == [0.5, 1, 2, 4, 4, 4]


def test_an_image_throttled_every_time_fails_alone(tmp_path: Path) -> None:
    client, stubber = stubbed_rekognition()
    for _ in range(3):
        stubber.add_client_error("detect_labels", "ThrottlingException")
    stubber.add_response("detect_labels", {"Labels": []})
    images = [
        ImageRef(name, path=_file(encode(photo(name), ".jpg"), f"{name}.jpg", tmp_path))
        for name in ("coffee", "chelsea")
    ]
    analyzer = analyze.Analyzer(
        client, None, analyze.Request(), retry.Backoff(attempts=3), lambda seconds: None
    )
    out = io.StringIO()

    with stubber:
        summary = analyze.run(analyzer, images, out, concurrency=1)

    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["error"].startswith("Throttled: DetectLabels was throttled 3 times in a row")
    assert "lower --concurrency" in first["error"]
    assert second == {"image": "chelsea", "sent_as": "bytes", "labels": [], "error": None}
    assert (summary.images, summary.failed, summary.calls) == (2, 1, 1)


# Against the moto server -------------------------------------------------------------------

ANALYZE_PROBE = """
import json, sys
from launch import cli
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_analyze_sends_s3_images_as_objects_and_the_rest_as_prepared_bytes(
    aws: MotoServer, s3: Any, tmp_path: Path, digits: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    (folder / "coffee.jpg").write_bytes(encode(photo("coffee"), ".jpg"))
    (folder / "more" / "big.png").write_bytes(big_png())
    (folder / "more" / "cat.bmp").write_bytes(encode(photo("chelsea"), ".bmp"))
    (folder / "more" / "broken.png").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("not an image, not listed")
    single = tmp_path / "digit.png"
    single.write_bytes(digit_png(digits))
    s3.put_object(
        Bucket=BUCKET, Key="shots/a/astronaut.png", Body=encode(photo("astronaut"), ".png")
    )
    s3.put_object(Bucket=BUCKET, Key="shots/b/flower.tiff", Body=encode(photo("flower"), ".tiff"))
    aws.forget_requests()
    out = tmp_path / "labels.jsonl"

    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            ANALYZE_PROBE,
            "rekognition",
            "analyze",
            str(folder),
            str(single),
            f"s3://{BUCKET}/shots",
            "--text",
            "--out",
            str(out),
            "--concurrency",
            "3",
            "--region",
            REGION,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    # Rekognition needs neither the SageMaker SDK (seconds to import) nor numpy.
    assert not {m.split(".")[0] for m in result["modules"]} & {
        "numpy",
        "cv2",
        "tensorflow",
        "sklearn",
        "sagemaker",
    }
    records = {Path(r["image"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(records) == [
        "coffee.jpg",
        "big.png",
        "broken.png",
        "cat.bmp",
        "digit.png",
        "astronaut.png",
        "flower.tiff",
    ]
    assert records["broken.png"]["error"].startswith("ImageRejected:")
    for name, record in records.items():
        if name != "broken.png":
            assert record["error"] is None, record
            assert record["labels"][0]["Name"] == MOTO_LABEL
            assert record["text"], name
    assert records["astronaut.png"]["sent_as"] == "S3Object"
    assert "reencoded" not in records["astronaut.png"] and "reencoded" not in records["coffee.jpg"]
    assert "over Rekognition's 5 MB limit" in records["big.png"]["reencoded"]
    assert "BMP is not JPEG or PNG" in records["cat.bmp"]["reencoded"]
    assert "TIFF is not JPEG or PNG" in records["flower.tiff"]["reencoded"]
    assert "8x8 is under Rekognition's 80-pixel minimum" in records["digit.png"]["reencoded"]
    assert "7 images" in completed.stdout and "1 failed, 4 re-encoded" in completed.stdout

    sent = [r.json() for r in aws.requests() if r.target == "RekognitionService.DetectLabels"]
    assert len(sent) == 6
    objects = [body["Image"]["S3Object"] for body in sent if "S3Object" in body["Image"]]
    assert objects == [{"Bucket": BUCKET, "Name": "shots/a/astronaut.png"}]
    downloads = [
        r.path
        for r in aws.requests()
        if r.method == "GET" and "shots/" in r.path and "list-type" not in r.url
    ]
    assert downloads == [f"/{BUCKET}/shots/b/flower.tiff"]
    for body in sent:
        assert body["MaxLabels"] == 10 and body["MinConfidence"] == 70
    assert {iam_action(request) for request in aws.requests()} <= documented_caller_policy()


def test_requests_in_flight_never_exceed_the_concurrency(aws: MotoServer, tmp_path: Path) -> None:
    concurrency = 3
    together = threading.Barrier(concurrency, timeout=60)
    threads: set[str] = set()

    def hold(**_: Any) -> None:
        threads.add(threading.current_thread().name)
        together.wait()  # fails unless `concurrency` calls are in flight at once

    session = moto_session(REGION)
    session.events.register("before-call.rekognition.DetectLabels", hold)
    images = [
        ImageRef(f"{n}.jpg", path=_file(encode(photo("coffee"), ".jpg"), f"{n}.jpg", tmp_path))
        for n in range(3 * concurrency)
    ]
    analyzer = analyze.Analyzer(retry.rekognition_client(session), None, analyze.Request())

    summary = analyze.run(analyzer, images, io.StringIO(), concurrency)

    assert (summary.images, summary.failed) == (9, 0)
    # A pool of `concurrency` threads, each waiting on its own call, is the bound.
    assert len(threads) == concurrency


def test_an_s3_image_rekognition_refuses_is_downloaded_and_sent_prepared(
    s3: Any, digits: Path
) -> None:
    data = digit_png(digits)
    s3.put_object(Bucket=BUCKET, Key="tiny/3.png", Body=data)
    client, stubber = stubbed_rekognition()
    stubber.add_client_error(
        "detect_labels",
        "InvalidParameterException",
        "Request has invalid parameters",
        expected_params={
            "Image": {"S3Object": {"Bucket": BUCKET, "Name": "tiny/3.png"}},
            "MaxLabels": 10,
            "MinConfidence": 70.0,
        },
    )
    stubber.add_response(
        "detect_labels",
        {"Labels": [{"Name": "Number", "Confidence": 88.0}]},
        {"Image": {"Bytes": ANY}, "MaxLabels": 10, "MinConfidence": 70.0},
    )
    stubber.add_response(
        "detect_faces", {"FaceDetails": []}, {"Image": {"Bytes": ANY}, "Attributes": ["ALL"]}
    )
    analyzer = analyze.Analyzer(client, s3, analyze.Request(faces=True))

    with stubber:
        record = analyzer.analyze(
            ImageRef(f"s3://{BUCKET}/tiny/3.png", bucket=BUCKET, key="tiny/3.png", size=len(data))
        )

    stubber.assert_no_pending_responses()
    assert record["error"] is None
    assert record["sent_as"] == "bytes"
    assert "under Rekognition's 80-pixel minimum" in record["reencoded"]
    assert record["labels"] == [{"Name": "Number", "Confidence": 88.0}]
    assert record["faces"] == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["analyze", "{tmp}/missing", "--out", "{tmp}/o.jsonl"],
            "is neither a file, a folder nor an s3:// URI",
        ),
        (
            ["analyze", "{tmp}", "--out", "{tmp}/o.jsonl", "--min-confidence", "120"],
            "--min-confidence '120' must be a number from 0 to 100",
        ),
        (["analyze", "{tmp}", "--out", "{tmp}/no/o.jsonl"], "does not exist"),
        (
            [
                "custom-labels",
                "--project",
                "my project",
                "--train",
                "s3://b/t",
                "--test",
                "s3://b/u",
            ],
            "--project 'my project' is not a valid Custom Labels name",
        ),
        (["custom-labels", "--project", "p", "--train", "s3://b/t"], "needs --train and --test"),
        (["custom-labels", "--project", "p", "--stop", "--test", "s3://b/t"], "drop --train"),
    ],
    ids=["missing-path", "confidence", "out-folder", "project-name", "no-test", "stop-and-data"],
)
def test_bad_arguments_are_refused_before_aws(
    argv: list[str],
    message: str,
    tmp_path: Path,
    aws: MotoServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [part.replace("{tmp}", str(tmp_path)) for part in argv]

    code = _main(["rekognition", *argv, "--region", REGION, "--bucket", BUCKET])

    assert code == 2
    assert message in capsys.readouterr().err
    assert aws.requests() == []


# Custom Labels -----------------------------------------------------------------------------


def upload_digits(s3: Any, digits: Path, per_class: int = 6) -> dict[str, int]:
    """A few digits of two classes, as train and test class folders in S3."""
    counts = {}
    for split in ("train", "test"):
        files = [
            file
            for label in ("3", "8")
            for file in sorted((digits / split / label).glob("*.png"))[:per_class]
        ]
        for file in files:
            s3.put_object(
                Bucket=BUCKET,
                Key=f"digits/{split}/{file.parent.name}/{file.name}",
                Body=file.read_bytes(),
            )
        counts[split] = len(files)
    return counts


def expect_custom_labels_flow(
    stubber: Stubber, dataset_statuses: list[str], version_statuses: list[str]
) -> None:
    stubber.add_response("create_project", {"ProjectArn": PROJECT_ARN}, {"ProjectName": PROJECT})
    for kind in ("TRAIN", "TEST"):
        arn = f"{PROJECT_ARN}/dataset/{kind.lower()}/1700000000002"
        manifest = f"smvision/custom-labels/{PROJECT}/{kind.lower()}.manifest"
        stubber.add_response(
            "create_dataset",
            {"DatasetArn": arn},
            {
                "ProjectArn": PROJECT_ARN,
                "DatasetType": kind,
                "DatasetSource": {
                    "GroundTruthManifest": {"S3Object": {"Bucket": BUCKET, "Name": manifest}}
                },
            },
        )
        for status in dataset_statuses:
            stubber.add_response(
                "describe_dataset",
                {
                    "DatasetDescription": {
                        "Status": status,
                        "DatasetStats": {
                            "TotalEntries": 10,
                            "LabeledEntries": 10,
                            "ErrorEntries": 0,
                        },
                    }
                },
                {"DatasetArn": arn},
            )
    stubber.add_response(
        "create_project_version",
        {"ProjectVersionArn": VERSION_ARN},
        {
            "ProjectArn": PROJECT_ARN,
            "VersionName": "v1",
            "OutputConfig": {
                "S3Bucket": BUCKET,
                "S3KeyPrefix": f"smvision/custom-labels/{PROJECT}/output",
            },
        },
    )
    for status in version_statuses:
        stubber.add_response(
            "describe_project_versions",
            {"ProjectVersionDescriptions": [trained_version(status)]},
            {"ProjectArn": PROJECT_ARN, "VersionNames": ["v1"]},
        )


def test_custom_labels_writes_manifests_trains_and_reads_f1_per_label(
    s3: Any, digits: Path
) -> None:
    counts = upload_digits(s3, digits)
    s3.put_object(
        Bucket=BUCKET, Key=SUMMARY_KEY, Body=summary_file({"3": 0.97, "8": 0.91}, counts["test"])
    )
    client, stubber = stubbed_rekognition()
    expect_custom_labels_flow(
        stubber,
        ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"],
        ["TRAINING_IN_PROGRESS", "TRAINING_COMPLETED"],
    )
    plan = custom_labels.CustomLabelsPlan(
        PROJECT,
        "v1",
        _uri("digits/train"),
        _uri("digits/test"),
        _uri(f"smvision/custom-labels/{PROJECT}"),
    )
    waits: list[float] = []
    shown: list[str] = []
    called = record_operations(client)

    with stubber:
        result = custom_labels.train_and_evaluate(plan, client, s3, shown.append, 5, waits.append)

    stubber.assert_no_pending_responses()
    assert set(called) <= documented_caller_policy()
    assert waits == [5, 5, 5]  # each dataset once, the model once
    assert result.f1_per_label == {"3": 0.97, "8": 0.91}
    assert result.macro_f1 == pytest.approx(0.94)
    assert result.billable_training_s == 2700
    for split in ("train", "test"):
        body = s3.get_object(
            Bucket=BUCKET, Key=f"smvision/custom-labels/{PROJECT}/{split}.manifest"
        )["Body"]
        lines = [json.loads(line) for line in body.read().decode().splitlines()]
        assert len(lines) == counts[split]
        first = lines[0]
        assert first["source-ref"].startswith(f"s3://{BUCKET}/digits/{split}/3/")
        assert first["smvision-class"] == 0
        metadata = first["smvision-class-metadata"]
        assert metadata["class-name"] == "3" and metadata["confidence"] == 1
        assert metadata["type"] == "groundtruth/image-classification"
        assert metadata["human-annotated"] == "yes"
        datetime.fromisoformat(metadata["creation-date"])
        assert {line["smvision-class-metadata"]["class-name"] for line in lines} == {"3", "8"}
        assert all(
            line["smvision-class"]
            == ["3", "8"].index(line["smvision-class-metadata"]["class-name"])
            for line in lines
        )
    row = custom_labels.row(result)
    assert row.training_cost_usd == pytest.approx(0.75)  # 45 minutes at $1 an hour
    assert "3 0.970, 8 0.910; macro-F1 0.940" in row.notes[0]


def test_custom_labels_command_prints_the_evaluation(
    s3: Any, digits: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counts = upload_digits(s3, digits)
    s3.put_object(
        Bucket=BUCKET, Key=SUMMARY_KEY, Body=summary_file({"3": 1.0, "8": 0.9}, counts["test"])
    )
    client, stubber = stubbed_rekognition()
    # The CLI waits with a real sleep: every status is final at the first look.
    expect_custom_labels_flow(stubber, ["CREATE_COMPLETE"], ["TRAINING_COMPLETED"])

    with stubber:
        code = _main(
            [
                "rekognition",
                "custom-labels",
                "--project",
                PROJECT,
                "--version",
                "v1",
                "--train",
                f"s3://{BUCKET}/digits/train",
                "--test",
                f"s3://{BUCKET}/digits/test",
                "--region",
                REGION,
                "--bucket",
                BUCKET,
            ],
            rekognition=client,
        )

    output = capsys.readouterr().out
    assert code == 0, output
    stubber.assert_no_pending_responses()
    assert f"Evaluation of {VERSION_ARN} ({counts['test']} test images):" in output
    assert "  3: F1 1.000" in output and "  8: F1 0.900" in output
    assert "macro-F1 0.950" in output


def test_stop_stops_only_the_running_models(capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = stubbed_rekognition()
    stubber.add_response(
        "describe_projects",
        {"ProjectDescriptions": [{"ProjectArn": PROJECT_ARN, "Status": "CREATED"}]},
        {"ProjectNames": [PROJECT]},
    )
    running = dict(trained_version("RUNNING"), ProjectVersionArn=VERSION_ARN + "-running")
    stubber.add_response(
        "describe_project_versions",
        {"ProjectVersionDescriptions": [trained_version("TRAINING_COMPLETED"), running]},
        {"ProjectArn": PROJECT_ARN},
    )
    stubber.add_response(
        "stop_project_version",
        {"Status": "STOPPING"},
        {"ProjectVersionArn": VERSION_ARN + "-running"},
    )
    called = record_operations(client)

    with stubber:
        code = _main(
            ["rekognition", "custom-labels", "--project", PROJECT, "--stop", "--region", REGION],
            rekognition=client,
        )

    stubber.assert_no_pending_responses()
    assert code == 0
    assert f"Stopping {VERSION_ARN}-running: STOPPING" in capsys.readouterr().out
    assert set(called) <= documented_caller_policy()


def test_an_existing_project_is_refused_with_what_to_do(
    s3: Any, digits: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upload_digits(s3, digits)
    client, stubber = stubbed_rekognition()
    stubber.add_client_error(
        "create_project", "ResourceInUseException", expected_params={"ProjectName": PROJECT}
    )

    with stubber:
        code = _main(
            [
                "rekognition",
                "custom-labels",
                "--project",
                PROJECT,
                "--train",
                f"s3://{BUCKET}/digits/train",
                "--test",
                f"s3://{BUCKET}/digits/test",
                "--region",
                REGION,
                "--bucket",
                BUCKET,
            ],
            rekognition=client,
        )

    assert code == 2
    assert f"--project {PROJECT} exists already" in capsys.readouterr().err


# Helpers -----------------------------------------------------------------------------------


def _file(data: bytes, name: str, folder: Path) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _uri(key: str) -> Any:
    from launch.common.parsing import S3Uri

    return S3Uri(BUCKET, key)


def _main(argv: list[str], rekognition: Any = None) -> int:
    """`python -m launch ARGV` in this process, on the moto server, with the Rekognition
    client (a Stubber's) given in place of a new one."""

    def open_session(region: str) -> Any:
        session = moto_session(region)
        if rekognition is not None:
            real_client = session.client

            def client(name: str, *args: Any, **kwargs: Any) -> Any:
                return rekognition if name == "rekognition" else real_client(name, *args, **kwargs)

            session.client = client
        return session

    return cli.main(argv, open_session=open_session)


# Zero-shot: the label map and the row -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'cat = "Cat"\ndog = ["Dog"]\n',
            "class 'cat' must map to a list of Rekognition label names",
        ),
        (
            'cat = ["Cat", "Pet"]\ndog = ["Dog", "pet"]\n',
            "label 'pet' is mapped to both 'cat' and 'dog'",
        ),
        ('cat = ["Cat"]\n', "map at least two classes"),
        ("cat = [\n", "not valid TOML"),
    ],
    ids=["not-a-list", "shared-label", "one-class", "toml"],
)
def test_a_bad_label_map_is_refused_with_the_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "map.toml"
    path.write_text(text)

    with pytest.raises(LaunchError, match=expected):
        zero_shot.read_label_map(path)


def test_the_most_confident_mapped_label_decides_and_the_rest_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('cat = ["Cat", "Kitten"]\ndog = ["Dog"]\n')
    labels = zero_shot.read_label_map(path)
    images = zero_shot.TestSet(
        tuple(
            Labelled(ImageRef(f"s3://{BUCKET}/t/{source}"), source.split("/")[0], source)
            for source in ("cat/1.jpg", "cat/2.jpg", "dog/1.jpg", "dog/2.jpg")
        ),
        ("cat", "dog"),
    )
    records: list[dict[str, Any]] = [
        {
            "labels": [
                {"Name": "Pet", "Confidence": 99.0},
                {"Name": "dog", "Confidence": 60.0},
                {"Name": "Kitten", "Confidence": 80.0},
            ],
            "error": None,
        },
        {
            "labels": [
                {"Name": "Furniture", "Confidence": 91.0},
                {"Name": "Couch", "Confidence": 88.0},
            ],
            "error": None,
        },
        {"labels": [{"Name": "Dog", "Confidence": 97.0}], "error": None},
        {"error": "AccessDeniedException: no access to the object"},
    ]

    row = zero_shot.scored_row(images, labels, records, 3, tmp_path / "answers.jsonl")

    assert row.scores is not None
    assert [p.predicted for p in row.scores.predictions] == [
        "cat",
        zero_shot.NO_CLASS,
        "dog",
        zero_shot.FAILED,
    ]
    assert row.scores.accuracy == 0.5
    assert row.notes[1] == "2 of 4 images map to no class and count as wrong:"
    assert row.notes[2] == "cat/2.jpg (cat): no mapped label among Furniture 91%, Couch 88%"
    assert row.notes[3] == (
        "dog/2.jpg (dog): not analyzed: AccessDeniedException: no access to the object"
    )
    assert "3 calls cost $0.0030" in row.notes[0]
    assert row.cost_per_1000_images_usd == pytest.approx(1.0)
