"""`python -m launch compare` against a moto server: jobs created together, one report.

What moto 5.2.5 does and does not, and how each test copes:
- Every training job is Completed at once, with no BillableTimeInSeconds and no files in
  S3. The end-to-end test runs the real command in this process (`launch.cli.main`) on a
  boto3 session with one test hook: when a job is created, the hook puts the job's
  output.tar.gz where SageMaker would, holding an evaluation.json written by
  smvision.model.evaluation.evaluate from a real classifier's predictions on the digits test
  images (a small scikit-learn model per algorithm: nothing here trains the image's own
  algorithms). One job gets no output, as a job that wrote none.
- The running, failed and billed paths, and Ctrl-C while following, are driven by
  botocore's Stubber: DescribeTrainingJob answers validated against SageMaker's model.
- DetectLabels answers "Mobile Phone" for any image, so the Rekognition row's numbers
  follow from the label map the test writes, not from the images.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import cv2
import numpy as np
import pytest
from botocore.stub import Stubber
from rich.console import Console

from launch import cli
from launch.common.errors import LaunchError
from launch.common.pricing import Prices, parse_prices
from launch.common.settings import resolve
from launch.compare import command as compare
from launch.compare import rows as compare_rows
from launch.training.follow_many import StillRunning, follow_jobs
from launch.training.outputs import OutputMissing, read_evaluation
from smvision.comparison.__main__ import main as redraw
from smvision.model.evaluation import evaluate
from smvision.schema import specs
from tests.support.custom_labels import (
    PROJECT,
    PROJECT_ARN,
    SUMMARY_KEY,
    summary_file,
    trained_version,
)
from tests.support.moto_server import (
    BUCKET,
    IMAGE,
    REGION,
    ROLE,
    MotoServer,
    documented_caller_policy,
    iam_action,
    moto_session,
    settings_flags,
)

DATA = f"s3://{BUCKET}/datasets/digits"
CLASSIFIERS = {"svm": "svc", "rf": "forest", "cnn": "logistic"}
# Test images per class, in the jobs' evaluations and in S3 for Rekognition alike.
TEST_PER_CLASS = 8


@pytest.fixture(scope="module")
def evaluations(digits: Path) -> dict[str, dict[str, Any]]:
    """evaluation.json per algorithm, as train.py writes it, from real predictions."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    models = {
        "svc": CalibratedClassifierCV(SVC(), ensemble=False),
        "forest": RandomForestClassifier(n_estimators=20, random_state=0),
        "logistic": LogisticRegression(max_iter=2000),
    }
    train = _split(digits, "train")
    test = _split(digits, "test", TEST_PER_CLASS)
    class_names = sorted({label for _, label, _ in train})
    found = {}
    for algorithm, model_name in CLASSIFIERS.items():
        model = models[model_name].fit(
            np.stack([x for x, _, _ in train]), [class_names.index(y) for _, y, _ in train]
        )
        proba = model.predict_proba(np.stack([x for x, _, _ in test]))
        labels = np.array([class_names.index(y) for _, y, _ in test])
        found[algorithm] = {
            "test": evaluate(proba, labels, class_names, [source for _, _, source in test])
        }
    return found


def _split(
    digits: Path, split: str, per_class: int | None = None
) -> list[tuple[np.ndarray, str, str]]:
    rows = []
    for file in _files(digits, split, per_class):
        image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        assert image is not None, file
        rows.append(
            (
                image.astype(np.float64).ravel() / 255,
                file.parent.name,
                f"{file.parent.name}/{file.name}",
            )
        )
    return rows


def output_archive(evaluation: dict[str, Any]) -> bytes:
    """output.tar.gz as SageMaker packs /opt/ml/output/data."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = json.dumps(evaluation).encode()
        member = tarfile.TarInfo("evaluation.json")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def session_that_writes_outputs(evaluations: dict[str, dict[str, Any]], skip: set[str]) -> Any:
    """A moto session whose CreateTrainingJob is followed by the job's output.tar.gz in S3
    (for every algorithm but those in `skip`), where SageMaker would upload it."""

    def open_session(region: str) -> Any:
        session = moto_session(region)
        s3 = session.client("s3")

        def put_output(params: dict[str, Any], **_: Any) -> None:
            algorithm = params["HyperParameters"]["algorithm"]
            if algorithm in skip:
                return
            output = params["OutputDataConfig"]["S3OutputPath"].removeprefix(f"s3://{BUCKET}/")
            s3.put_object(
                Bucket=BUCKET,
                Key=f"{output}/{params['TrainingJobName']}/output/output.tar.gz",
                Body=output_archive(evaluations[algorithm]),
            )

        session.events.register("provide-client-params.sagemaker.CreateTrainingJob", put_output)
        return session

    return open_session


def _files(digits: Path, split: str, per_class: int | None) -> list[Path]:
    return [
        file
        for folder in sorted((digits / split).iterdir())
        for file in sorted(folder.glob("*.png"))[:per_class]
    ]


def upload_test_images(s3: Any, digits: Path, per_class: int = 8) -> list[str]:
    """The first images of each class of the digits' test split, as the --test prefix."""
    labels = []
    for file in _files(digits, "test", per_class):
        s3.put_object(
            Bucket=BUCKET,
            Key=f"datasets/digits/test/{file.parent.name}/{file.name}",
            Body=file.read_bytes(),
        )
        labels.append(file.parent.name)
    return labels


def label_map(path: Path) -> Path:
    # moto labels every image "Mobile Phone": every image is predicted "0".
    names = [
        "Mobile Phone",
        "Number",
        "Text",
        "Symbol",
        "Handwriting",
        "Alphabet",
        "Digit",
        "Font",
        "Sign",
        "Logo",
    ]
    path.write_text("".join(f'"{digit}" = ["{name}"]\n' for digit, name in enumerate(names)))
    return path


def test_compare_creates_every_job_then_reports_each_with_rekognition(
    aws: MotoServer,
    s3: Any,
    digits: Path,
    tmp_path: Path,
    evaluations: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    truth = upload_test_images(s3, digits, TEST_PER_CLASS)
    aws.forget_requests()
    out = tmp_path / "report"

    code = cli.main(
        [
            "compare",
            *settings_flags(),
            "--train",
            f"{DATA}/train",
            "--validation",
            f"{DATA}/validation",
            "--test",
            f"{DATA}/test",
            "--algorithms",
            "svm,rf,cnn",
            "--instance-type",
            "cnn=ml.g5.xlarge",
            "--hp",
            "epochs=3",
            "--hp",
            "svm:C=5",
            "--hp",
            "image_size=32",
            "--rekognition",
            str(label_map(tmp_path / "map.toml")),
            "--price",
            "ml.g5.xlarge=1.5",
            "--out",
            str(out),
        ],
        open_session=session_that_writes_outputs(evaluations, skip={"rf"}),
    )

    printed = capsys.readouterr()
    assert code == 0, printed.err
    sent = {body["HyperParameters"]["algorithm"]: body for body in aws.calls("CreateTrainingJob")}
    assert list(sent) == ["svm", "rf", "cnn"]
    stamps = {"-".join(body["TrainingJobName"].split("-")[2:]) for body in sent.values()}
    assert len(stamps) == 1  # one timestamp: the jobs of one comparison
    assert {a: b["TrainingJobName"].split("-")[1] for a, b in sent.items()} == {
        "svm": "svm",
        "rf": "rf",
        "cnn": "cnn",
    }
    assert {a: b["ResourceConfig"]["InstanceType"] for a, b in sent.items()} == {
        "svm": "ml.m5.xlarge",
        "rf": "ml.m5.xlarge",
        "cnn": "ml.g5.xlarge",
    }
    assert {a: b["HyperParameters"] for a, b in sent.items()} == {
        "svm": {"algorithm": "svm", "C": "5.0", "image_size": "32"},
        "rf": {"algorithm": "rf", "image_size": "32"},
        "cnn": {"algorithm": "cnn", "epochs": "3", "image_size": "32"},
    }
    for body in sent.values():
        assert {
            c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
            for c in body["InputDataConfig"]
        } == {"train": f"{DATA}/train", "validation": f"{DATA}/validation", "test": f"{DATA}/test"}
    requests = [r for r in aws.requests() if r.target.startswith("SageMaker.")]
    operations = [r.target.split(".")[1] for r in requests]
    last_create = max(i for i, op in enumerate(operations) if op == "CreateTrainingJob")
    # Created together: every job exists before the display follows any of them, and the
    # display follows each of the three.
    followed = {
        r.json()["TrainingJobName"]
        for r in requests[last_create + 1 :]
        if r.target.endswith(".DescribeTrainingJob")
    }
    assert followed == {body["TrainingJobName"] for body in sent.values()}
    assert operations[:last_create].count("DescribeTrainingJob") <= 2

    report = json.loads((out / "comparison.json").read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == ["svm", "rf", "cnn", "rekognition"]
    for algorithm in ("svm", "cnn"):
        assert rows[algorithm]["derived"]["accuracy"] == pytest.approx(
            evaluations[algorithm]["test"]["accuracy"]
        )
        assert rows[algorithm]["derived"]["macro_f1"] == pytest.approx(
            evaluations[algorithm]["test"]["macro_f1"]
        )
        assert rows[algorithm]["where"] == "sagemaker"
        assert rows[algorithm]["training_cost_usd"] is None  # moto bills nothing
        assert any("no BillableTimeInSeconds" in note for note in rows[algorithm]["notes"])
    assert "$1.5/h from --price" in rows["cnn"]["notes"][0]
    assert "$0.23/h on-demand, us-east-1, as of 2026-11-29" in rows["svm"]["notes"][0]
    assert "output.tar.gz cannot be read" in rows["rf"]["failure"]
    rekognition = rows["rekognition"]
    assert rekognition["derived"]["count"] == len(truth)
    assert rekognition["derived"]["accuracy"] == pytest.approx(truth.count("0") / len(truth))
    assert rekognition["cost_per_1000_images_usd"] == pytest.approx(1.0)
    assert rekognition["derived"]["versus_best"]["shared_images"] == len(truth)
    assert f"{len(truth)} calls cost ${len(truth) * 0.001:.4f}" in rekognition["notes"][0]
    answers = (out / "rekognition_labels.jsonl").read_text().splitlines()
    assert len(answers) == len(truth)
    markdown = (out / "comparison.md").read_text()
    assert "rekognition" in markdown and "output.tar.gz cannot be read" in markdown
    assert f"Report: {out / 'comparison.md'} and comparison.json" in printed.out
    assert f"python -m smvision.comparison {out}" in printed.out
    assert not list(out.glob("*.png"))  # plots need matplotlib, which imports numpy
    called = {iam_action(request) for request in aws.requests()}
    assert {"sagemaker:CreateTrainingJob", "rekognition:DetectLabels"} <= called
    assert called <= documented_caller_policy()
    for algorithm in ("svm", "rf", "cnn"):
        assert f"{algorithm}: Completed" in printed.out

    assert redraw([str(out)]) == 0  # where matplotlib is installed

    assert sorted(p.name for p in out.glob("*.png")) == [
        "accuracy_vs_latency.png",
        "accuracy_vs_training_time.png",
        "per_class_f1.png",
    ]
    assert "![per class f1](per_class_f1.png)" in (out / "comparison.md").read_text()
    assert json.loads((out / "comparison.json").read_text())["rows"] == report["rows"]


@pytest.mark.parametrize("trained", [True, False], ids=["trained", "no-such-project"])
def test_a_custom_labels_project_is_a_row_and_its_failure_stops_nothing(
    aws: MotoServer,
    s3: Any,
    tmp_path: Path,
    evaluations: dict[str, Any],
    trained: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rekognition = boto3.session.Session(region_name=REGION).client("rekognition")
    stubber = Stubber(rekognition)
    stubber.add_response(
        "describe_projects",
        {
            "ProjectDescriptions": [{"ProjectArn": PROJECT_ARN, "Status": "CREATED"}]
            if trained
            else []
        },
        {"ProjectNames": [PROJECT]},
    )
    if trained:
        stubber.add_response(
            "describe_project_versions",
            {
                "ProjectVersionDescriptions": [
                    trained_version("TRAINING_IN_PROGRESS"),
                    trained_version("TRAINING_COMPLETED"),
                ]
            },
            {"ProjectArn": PROJECT_ARN},
        )
        s3.put_object(Bucket=BUCKET, Key=SUMMARY_KEY, Body=summary_file({"0": 0.9, "1": 0.8}, 40))
    writes_outputs = session_that_writes_outputs(evaluations, skip=set())

    def open_session(region: str) -> Any:
        session = writes_outputs(region)
        real_client = session.client
        session.client = lambda name, *args, **kw: (
            rekognition if name == "rekognition" else real_client(name, *args, **kw)
        )
        return session

    with stubber:
        code = cli.main(
            [
                "compare",
                *settings_flags(),
                "--train",
                f"{DATA}/train",
                "--algorithms",
                "svm",
                "--custom-labels",
                PROJECT,
                "--out",
                str(tmp_path),
            ],
            open_session=open_session,
        )

    assert code == 0, capsys.readouterr().err
    stubber.assert_no_pending_responses()
    rows = {
        row["name"]: row for row in json.loads((tmp_path / "comparison.json").read_text())["rows"]
    }
    assert rows["svm"]["derived"]["accuracy"] == pytest.approx(
        evaluations["svm"]["test"]["accuracy"]
    )
    custom = rows["rekognition-custom-labels"]
    if trained:
        assert custom["failure"] is None
        assert custom["training_cost_usd"] == pytest.approx(0.75)
        assert "0 0.900, 1 0.800; macro-F1 0.850" in custom["notes"][0]
    else:
        assert f"Custom Labels project '{PROJECT}' does not exist" in custom["failure"]


def test_a_map_that_does_not_fit_the_test_classes_starts_no_job(
    aws: MotoServer, s3: Any, digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upload_test_images(s3, digits, per_class=1)
    partial = tmp_path / "map.toml"
    partial.write_text('"0" = ["Zero"]\n"1" = ["One"]\n"cat" = ["Cat"]\n')

    code = cli.main(
        [
            "compare",
            *settings_flags(),
            "--train",
            f"{DATA}/train",
            "--test",
            f"{DATA}/test",
            "--rekognition",
            str(partial),
            "--out",
            str(tmp_path),
        ],
        open_session=moto_session,
    )

    error = capsys.readouterr().err
    assert code == 2
    assert "maps no label to class '2', '3'" in error
    assert "names class 'cat', which --test" in error
    assert aws.calls("CreateTrainingJob") == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--algorithms", "svm,knn"], "--algorithms 'svm,knn': knn is not an algorithm"),
        (["--algorithms", "cnn+deep"], "'cnn+deep' joins features to cnn, which takes none"),
        (["--instance-type", "rf=ml.c5.xlarge"], "names 'rf', which is not compared"),
        (["--hp", "epoch=3"], "none of svm, cnn takes 'epoch'. Did you mean 'epochs'?"),
        (["--hp", "rf:n_estimators=5"], "names algorithm 'rf', which is not compared"),
        (["--hp", "cnn:epochs=0"], "Hyperparameter 'epochs' has value '0'"),
        (["--rekognition", "map.toml"], "--rekognition scores Rekognition on the test images"),
        (["--price", "ml.m5.xlarge=cheap"], "--price 'ml.m5.xlarge=cheap' is not"),
        (["--custom-labels", "my project"], "--custom-labels 'my project' is not a valid"),
    ],
    ids=[
        "algorithm",
        "configuration",
        "instance-type",
        "hp-key",
        "hp-algorithm",
        "hp-value",
        "no-test",
        "price",
        "project",
    ],
)
def test_a_bad_option_is_refused_before_any_aws_call(
    aws: MotoServer, extra: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--algorithms", "svm,cnn"] if "--algorithms" not in extra else []

    code = cli.main(
        ["compare", *settings_flags(), "--train", f"{DATA}/train", *base, *extra],
        open_session=moto_session,
    )

    assert code == 2
    assert expected in capsys.readouterr().err
    assert aws.requests() == []


def test_with_pretrained_weights_the_fixed_feature_rows_are_jobs_of_their_own() -> None:
    """--pretrained adds svm+deep and rf+deep to the default rows: svm and rf jobs with
    features=deep, named for the configuration; --algorithms takes them by name too."""
    settings = resolve(
        {"role": ROLE, "bucket": BUCKET, "image_uri": IMAGE, "region": REGION}, {}, None
    )
    flags = ["compare", *settings_flags(), "--train", f"{DATA}/train"]
    args = cli.build_parser().parse_args([*flags, "--pretrained", f"{DATA}/weights"])
    planned = compare.plan(args, settings, START)
    assert planned.names == (*specs.names(), "svm+deep", "rf+deep")
    deep = planned.jobs[planned.names.index("svm+deep")]
    assert deep.job_name.startswith("smvision-svm-deep-")
    assert deep.definition.spec.algorithm == "svm"
    assert deep.definition.spec.hyperparameters["features"] == "deep"
    assert "pretrained" in deep.definition.spec.channels
    assert compare.plan(cli.build_parser().parse_args(flags), settings, START).names == (
        specs.names()
    )
    chosen = cli.build_parser().parse_args([*flags, "--algorithms", "resnet50,rf+deep"])
    assert compare.plan(chosen, settings, START).names == ("resnet50", "rf+deep")


def test_ctrl_c_while_jobs_are_created_names_each_and_how_to_stop_it(
    aws: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def open_session(region: str) -> Any:
        session = moto_session(region)
        creates = iter(range(10))

        def interrupt_the_second(**_: Any) -> None:
            if next(creates) == 1:
                raise KeyboardInterrupt

        session.events.register(
            "provide-client-params.sagemaker.CreateTrainingJob", interrupt_the_second
        )
        return session

    code = cli.main(
        ["compare", *settings_flags(), "--train", f"{DATA}/train", "--algorithms", "svm,rf,cnn"],
        open_session=open_session,
    )

    error = capsys.readouterr().err
    assert code == 130
    [first] = [body["TrainingJobName"] for body in aws.calls("CreateTrainingJob")]
    assert "These training jobs keep running on SageMaker, and billing:" in error
    assert f"aws sagemaker stop-training-job --region {REGION} --training-job-name {first}" in error
    assert "smvision-cnn-" not in error  # never asked for


# Following and costing, driven by Stubber ----------------------------------------------------

START = datetime(2026, 11, 29, 10, 0, 0)


def described(name: str, status: str, secondary: str, **extra: Any) -> dict[str, Any]:
    """A DescribeTrainingJob answer with the fields SageMaker's model requires."""
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "ModelArtifacts": {
            "S3ModelArtifacts": f"s3://{BUCKET}/smvision/training/{name}/output/model.tar.gz"
        },
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": START,
        **extra,
    }


def test_following_shows_each_change_and_prices_billable_seconds(
    s3: Any, evaluations: dict[str, Any]
) -> None:
    sagemaker = boto3.session.Session(region_name=REGION).client("sagemaker")
    stubber = Stubber(sagemaker)
    svm, cnn = "smvision-svm-20261129-100000-000", "smvision-cnn-20261129-100000-000"
    done = {
        "BillableTimeInSeconds": 600,
        "TrainingTimeInSeconds": 590,
        "TrainingStartTime": START,
        "TrainingEndTime": START + timedelta(seconds=590),
        "FinalMetricDataList": [{"MetricName": "train:images_per_second", "Value": 812.5}],
    }
    answers = [
        described(svm, "InProgress", "Starting"),
        described(cnn, "InProgress", "Starting"),
        described(svm, "InProgress", "Training"),
        described(cnn, "InProgress", "Starting"),
        described(svm, "Completed", "Completed", **done),
        described(cnn, "Failed", "Failed", FailureReason="AlgorithmError: out of memory"),
    ]
    for answer in answers:
        stubber.add_response(
            "describe_training_job", answer, {"TrainingJobName": answer["TrainingJobName"]}
        )
    waits: list[float] = []
    console = Console(file=io.StringIO(), width=200)

    with stubber:
        result = follow_jobs(sagemaker, {"svm": svm, "cnn": cnn}, REGION, 30, waits.append, console)

    stubber.assert_no_pending_responses()
    assert waits == [30, 30]
    lines = console.file.getvalue()  # type: ignore[attr-defined]
    for line in (
        "svm: InProgress / Starting",
        "svm: InProgress / Training",
        "svm: Completed",
        "cnn: InProgress / Starting",
        "cnn: Failed - AlgorithmError: out of memory",
    ):
        assert line in lines
    assert lines.count("cnn: InProgress / Starting") == 1  # a change, not every poll
    s3.put_object(
        Bucket=BUCKET,
        Key=f"smvision/training/{svm}/output/output.tar.gz",
        Body=output_archive(evaluations["svm"]),
    )
    s3.put_object(
        Bucket=BUCKET, Key=f"smvision/training/{svm}/output/model.tar.gz", Body=b"x" * 1234
    )
    args = cli.build_parser().parse_args(
        ["compare", *settings_flags(), "--train", f"{DATA}/train", "--algorithms", "svm,cnn"]
    )
    settings = resolve(
        {"role": ROLE, "bucket": BUCKET, "image_uri": IMAGE, "region": REGION}, {}, None
    )
    jobs = [
        dataclasses.replace(job, job_name=name)
        for job, name in zip(compare.plan(args, settings, START).jobs, (svm, cnn), strict=True)
    ]

    rows = compare_rows.sagemaker_rows(s3, jobs, result, {}, Prices())

    assert rows[0].training_cost_usd == pytest.approx(600 * 0.23 / 3600)
    assert rows[0].training_seconds == 590
    assert rows[0].training_images_per_second == 812.5
    assert rows[0].model_bytes == 1234
    assert rows[0].scores is not None
    assert rows[0].scores.accuracy == pytest.approx(evaluations["svm"]["test"]["accuracy"])
    assert rows[1].failure == f"Training job {cnn} ended Failed: AlgorithmError: out of memory"


def test_ctrl_c_while_following_names_the_running_jobs_and_how_to_stop_them() -> None:
    sagemaker = boto3.session.Session(region_name=REGION).client("sagemaker")
    stubber = Stubber(sagemaker)
    jobs = {"svm": "job-svm", "rf": "job-rf", "cnn": "job-cnn"}
    for name, status in (
        ("job-svm", "Completed"),
        ("job-rf", "InProgress"),
        ("job-cnn", "InProgress"),
    ):
        stubber.add_response(
            "describe_training_job", described(name, status, status), {"TrainingJobName": name}
        )

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    with stubber, pytest.raises(StillRunning) as raised:
        follow_jobs(sagemaker, jobs, REGION, 30, ctrl_c, Console(file=io.StringIO()))

    message = str(raised.value)
    assert raised.value.jobs == {"rf": "job-rf", "cnn": "job-cnn"}
    for name in ("job-rf", "job-cnn"):
        assert (
            f"aws sagemaker stop-training-job --region {REGION} --training-job-name {name}"
            in message
        )
    assert "job-svm" not in message


# Prices and outputs, on their own -----------------------------------------------------------


def test_cost_is_billable_seconds_times_instances_times_the_hourly_price() -> None:
    prices = parse_prices(["ml.g5.xlarge=2.0", "ml.c9.huge=0"])

    assert prices.training_cost("ml.p3.2xlarge", 2, 1800) == pytest.approx(3.825)
    assert prices.training_cost("ml.g5.xlarge", 1, 900) == pytest.approx(0.5)
    assert prices.training_cost("ml.c9.huge", 1, 900) == 0
    assert prices.training_cost("ml.m9.unknown", 1, 900) is None
    assert prices.training_cost("ml.m5.xlarge", 1, None) is None
    assert "pass --price ml.m9.unknown=USD_PER_HOUR" in prices.source("ml.m9.unknown")


@pytest.mark.parametrize(
    "pair", ["m5.xlarge=0.2", "ml.m5.xlarge=-1", "ml.m5.xlarge=nan", "ml.m5.xlarge"]
)
def test_a_bad_price_is_refused(pair: str) -> None:
    with pytest.raises(LaunchError, match="--price"):
        parse_prices([pair])


@pytest.mark.parametrize("member", ["evaluation.json", "./evaluation.json"])
def test_evaluation_is_read_from_the_output_archive(
    s3: Any, evaluations: dict[str, Any], member: str
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (
            (member, json.dumps(evaluations["rf"]).encode()),
            ("confusion_matrix.png", b"\x89PNG"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key="out/job/output/output.tar.gz", Body=buffer.getvalue())
    job = {"ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/out/job/output/model.tar.gz"}}

    assert read_evaluation(s3, job) == evaluations["rf"]


def test_an_archive_without_evaluation_says_why(s3: Any) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz"):
        pass
    s3.put_object(Bucket=BUCKET, Key="out/job/output/output.tar.gz", Body=buffer.getvalue())
    job = {"ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/out/job/output/model.tar.gz"}}

    with pytest.raises(OutputMissing, match="holds no evaluation.json"):
        read_evaluation(s3, job)
