"""The drift monitor: the baseline `train` writes, and `monitor` over captured requests.

The model is the session's svm trained on the digits (train, validation and test splits)
by the image's own `train`; captured requests are made by sending images to the real
`serve` over HTTP and writing request and answer as SageMaker's data capture does
(tests.support.capture). The undrifted set is the test split, which the model never trained on;
the drifted ones are the same digits darkened or rotated, and faces (scikit-image's
LFW subset) sent to the digits model.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tarfile
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from smvision.core import contract
from smvision.core.media import CSV, JSON, JSON_LINES
from smvision.data import images
from smvision.local.samples import faces_images
from smvision.monitor import analysis, baseline, distributions, drift, drift_report, features
from smvision.monitor.capture import read_captured
from smvision.monitor.main import build_parser, run
from smvision.monitor.thresholds import Thresholds
from smvision.serving.codecs import encode_predictions
from tests.support.capture import Exchange, send, write_capture
from tests.support.photos import encode, grey_photo, photo
from tests.support.serving import JobDirs, ServerPool

ENDPOINT = "digits"
NAMES = ["cat", "dog", "fish"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# Measuring images ---------------------------------------------------------------------


def test_features_measure_light_contrast_sharpness_and_sizes_of_real_photos() -> None:
    coffee = photo("coffee")
    dark = (coffee * 0.4).astype(np.uint8)
    blurred = cv2.GaussianBlur(coffee, (0, 0), 12)  # blur that survives the shrink to 64 px
    prepared = np.stack([images.prepare(i, 64, 3) for i in (coffee, dark, blurred)])
    sizes = np.array([[coffee.shape[1], coffee.shape[0]]] * 3)
    measured = features.measure(prepared, sizes)

    assert set(measured) == set(features.feature_names(3))
    assert measured["width"].tolist() == [600.0] * 3 and measured["height"].tolist() == [400.0] * 3
    assert measured["aspect_ratio"][0] == pytest.approx(1.5)
    assert measured["brightness"][1] == pytest.approx(0.4 * measured["brightness"][0], rel=0.02)
    assert measured["contrast"][1] < 0.5 * measured["contrast"][0]
    assert measured["sharpness"][2] < 0.5 * measured["sharpness"][0]
    assert measured["mean_red"][0] > measured["mean_blue"][0]  # coffee is brown

    camera = images.prepare(grey_photo("camera")[:, :, None], 64, 1)
    grey = features.measure(camera[None], np.array([[512, 512]]))
    assert set(grey) == set(features.feature_names(1)) and "mean_grey" not in grey


def test_a_summary_keeps_enough_of_a_distribution_for_a_two_sample_test() -> None:
    values = np.random.default_rng(0).gamma(2.0, 30.0, size=3000)
    summary = distributions.summarize(values)
    rebuilt = distributions.sample(summary)
    assert len(rebuilt) == 3000
    np.testing.assert_allclose(
        np.quantile(rebuilt, distributions.PROBABILITIES), summary["quantiles"], rtol=0.02, atol=0.5
    )
    check = drift.compare_feature("brightness", summary, values[:500], Thresholds())
    assert check.test == drift.KS and not check.violated and check.statistic < 0.06


def test_each_statistic_has_its_named_test_and_thresholds() -> None:
    thresholds = Thresholds()
    eights = distributions.summarize(np.full(1000, 8.0))
    same = drift.compare_feature("width", eights, np.full(50, 8.0), thresholds)
    assert (same.test, same.statistic, same.violated) == (drift.PSI, 0.0, False)
    larger = drift.compare_feature("width", eights, np.full(50, 25.0), thresholds)
    assert larger.test == drift.PSI and larger.violated and larger.statistic > 5
    assert "width drifted from the baseline: population stability index PSI =" in (
        larger.description
    )

    baseline_counts = {"cat": 100, "dog": 100, "fish": 100}
    alike = drift.compare_classes(baseline_counts, {"cat": 30, "dog": 34, "fish": 36}, thresholds)
    assert alike.test == drift.CHI_SQUARE and not alike.violated
    skewed = drift.compare_classes(baseline_counts, {"cat": 90, "dog": 5, "fish": 5}, thresholds)
    assert skewed.violated and skewed.p_value is not None and skewed.p_value < 1e-10
    lenient = drift.compare_classes(
        baseline_counts, {"cat": 90, "dog": 5, "fish": 5}, Thresholds(chi2_alpha=1e-300)
    )
    assert not lenient.violated  # the threshold is an option


# Reading captured data ----------------------------------------------------------------


def answer(probabilities: list[list[float]], accept: str) -> bytes:
    """What `serve` answers for these probabilities (its own encoder)."""
    return encode_predictions(np.array(probabilities), NAMES, accept, None)


def exchange(
    body: bytes, content_type: str, reply: bytes, reply_type: str, time: datetime
) -> Exchange:
    return Exchange(body, content_type, reply, reply_type, "id-" + time.isoformat(), time)


def test_capture_files_are_read_in_every_body_encoding_and_bad_records_are_named(
    tmp_path: Path,
) -> None:
    start = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    png = encode(grey_photo("camera"), ".png")
    jpeg = encode(photo("coffee"), ".jpg")
    instances = json.dumps(
        {
            "instances": [
                {"b64": base64.b64encode(png).decode()},
                {"b64": base64.b64encode(jpeg).decode()},
            ]
        }
    ).encode()
    records = [
        exchange(png, "image/png", answer([[0.1, 0.7, 0.2]], JSON), JSON, start),
        exchange(
            instances,
            JSON,
            answer([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]], JSON_LINES),
            JSON_LINES,
            start + timedelta(minutes=10),
        ),
        exchange(
            jpeg, "image/jpeg", answer([[0.3, 0.3, 0.4]], CSV), CSV, start + timedelta(hours=1)
        ),
        exchange(
            png[:-40],
            "image/png",
            answer([[0.1, 0.7, 0.2]], JSON),
            JSON,
            start + timedelta(hours=1, minutes=5),
        ),
        exchange(png, "image/png", b'{"error": "boom"}', JSON, start + timedelta(hours=2)),
    ]
    write_capture(tmp_path, ENDPOINT, records)
    late = next((tmp_path / ENDPOINT).rglob("*.jsonl"))
    late.write_text(late.read_text() + "{not json\n")

    captured = read_captured(tmp_path, 32, 1)
    assert (captured.files, captured.records) == (3, 5)
    assert captured.shapes == [(512, 512, 1), (512, 512, 1), (400, 600, 3), (400, 600, 3)]
    assert [(p.label, p.probability) for p in captured.predictions] == [
        ("dog", 0.7),
        ("cat", 0.8),
        ("fish", 0.6),
        ("fish", 0.4),
    ]
    reasons = [why for _, why in captured.skipped]
    assert any("truncated" in why for why in reasons)
    assert "the endpoint answered an error: boom" in reasons
    assert any(why.startswith("not JSON") for why in reasons)
    assert all(where.endswith(".jsonl:" + where.rsplit(":", 1)[1]) for where, _ in captured.skipped)

    window = read_captured(
        tmp_path, 32, 1, start + timedelta(minutes=5), start + timedelta(hours=1)
    )
    assert [p.label for p in window.predictions] == ["cat", "fish"]


def test_captured_images_are_measured_as_they_are_decoded_not_kept(tmp_path: Path) -> None:
    """300 captured photos of 600 x 400 (206 MiB decoded): reading them holds their features
    and a chunk of 32-pixel model inputs, not the photos (tracemalloc sees numpy's and
    OpenCV's arrays)."""
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    jpeg = encode(photo("coffee"), ".jpg")
    count = 300
    write_capture(
        tmp_path,
        ENDPOINT,
        [
            exchange(
                jpeg,
                "image/jpeg",
                answer([[0.2, 0.5, 0.3]], JSON),
                JSON,
                start + timedelta(seconds=index),
            )
            for index in range(count)
        ],
    )
    decoded = count * photo("coffee").nbytes
    tracemalloc.start()
    try:
        captured = read_captured(tmp_path, 32, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(captured.shapes) == count and len(captured.values["brightness"]) == count
    print(
        f"\nReading {count} captured photos ({decoded / 2**20:.0f} MiB decoded): peak "
        f"{peak / 2**20:.1f} MiB traced"
    )
    assert peak < decoded / 10


# The monitor as a program ---------------------------------------------------------------


def monitor(args: list[str], base_dir: Path, environ: dict[str, str] | None = None) -> int:
    return run(
        build_parser().parse_args(args),
        contract.load({contract.BASE_DIR_ENV: str(base_dir)}),
        environ or {},
    )


@pytest.fixture(scope="module")
def trained(serving_jobs: JobDirs) -> Path:
    return serving_jobs("svm") / "opt" / "ml" / "model"


def test_training_writes_the_baseline(trained: Path, digits: Path) -> None:
    document = baseline.read(trained)
    train_count = len(list((digits / "train").rglob("*.png")))
    validation_count = len(list((digits / "validation").rglob("*.png")))
    assert document["images"] == {"split": "train", "count": train_count, "measured": train_count}
    assert set(document["features"]) == set(features.feature_names(1))
    assert document["features"]["width"]["quantiles"] == [8.0] * 101  # 8x8 scans
    assert sum(document["class_priors"].values()) == pytest.approx(1.0)
    assert document["model"]["count"] == validation_count
    assert sum(document["model"]["predicted_classes"].values()) == validation_count
    median = distributions.median(document["model"]["confidence"])
    assert median is not None and 0.5 < median <= 1.0


def test_the_baseline_is_read_from_a_model_tar_gz_and_a_bad_one_is_named(
    trained: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as packed:
        for path in sorted(trained.iterdir()):
            packed.add(path, arcname=path.name)
    assert baseline.read(archive) == baseline.read(trained)
    assert baseline.read(tmp_path) == baseline.read(trained)  # a folder holding the archive

    old = tmp_path / "old" / "model.tar.gz"
    old.parent.mkdir()
    with tarfile.open(old, "w:gz") as packed:
        packed.add(trained / contract.METADATA_FILE, arcname=contract.METADATA_FILE)
    with pytest.raises(
        baseline.BaselineError,
        match="holds no baseline.json: the model was trained before smvision wrote baselines",
    ):
        baseline.read(old)
    (tmp_path / "other.json").write_text('{"version": 0}')
    with pytest.raises(baseline.BaselineError, match="is not a version-1 smvision baseline"):
        baseline.read(tmp_path / "other.json")


def test_a_monitor_that_cannot_start_says_why_in_the_jobs_exit_message(
    trained: Path, tmp_path: Path
) -> None:
    base = tmp_path / "opt" / "ml"
    script = [sys.executable, "-m", "smvision.monitor.main"]
    env = {"SAGEMAKER_BASE_DIR": str(base), "PATH": "/usr/bin:/bin"}
    missing = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2
    message = (base / "output" / "message").read_text()
    assert message.startswith(f"No baseline at {base}/processing/input/baseline;")

    bad = subprocess.run(
        [*script, "--baseline", str(trained), "--ks-alpha", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "--ks-alpha 5 is not a probability" in (base / "output" / "message").read_text()


# Drift, end to end through a real serve ---------------------------------------------------


def digit_files(digits: Path, split: str) -> list[Path]:
    return sorted((digits / split).rglob("*.png"))


def read_scan(path: Path) -> np.ndarray:
    scan = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert scan is not None, path
    return np.asarray(scan, np.uint8)


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def captured_sets(
    servers: ServerPool, digits: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Each set of images sent through the real `serve`, captured as SageMaker would."""
    test_scans = [read_scan(f) for f in digit_files(digits, "test")]
    faces, _ = faces_images()
    sets = {
        "undrifted": [png(scan) for scan in test_scans],
        "darkened": [png((scan * 0.35).astype(np.uint8)) for scan in test_scans],
        "rotated": [png(cv2.rotate(scan, cv2.ROTATE_90_CLOCKWISE)) for scan in test_scans],
        "faces": [png(face) for face in faces],
    }
    server = servers("svm")
    root = tmp_path_factory.mktemp("captured")
    start = datetime.now(UTC)
    with httpx.Client(timeout=120) as client:
        for name, bodies in sets.items():
            exchanges = [
                send(client, server.url, body, "image/png", time=start + timedelta(seconds=i))
                for i, body in enumerate(bodies)
            ]
            write_capture(root / name, ENDPOINT, exchanges)
    return {name: root / name for name in sets}


def local_monitor(model_dir: Path, captured: Path, out: Path, options: Sequence[str] = ()) -> str:
    """`python -m smvision.local monitor`, which must succeed; its output."""
    command = [
        sys.executable,
        "-m",
        "smvision.local",
        "monitor",
        "--model-dir",
        str(model_dir),
        "--captured",
        str(captured),
        "--out",
        str(out),
        *options,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def outputs(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        json.loads((out / drift_report.REPORT_FILE).read_text()),
        json.loads((out / drift_report.VIOLATIONS_FILE).read_text()),
    )


def test_an_undrifted_sample_raises_no_violation(
    trained: Path, captured_sets: dict[str, Path], tmp_path: Path
) -> None:
    local_monitor(trained, captured_sets["undrifted"], tmp_path)
    document, violations = outputs(tmp_path)
    assert violations == {"violations": []}
    assert document["captured"]["images"] == 360 and document["captured"]["skipped_records"] == 0
    checked = {check["feature_name"]: check["test"] for check in document["checks"]}
    assert checked == {
        **{name: drift.named_test(name) for name in features.feature_names(1)},
        "confidence": drift.KS,
        "predicted_class": drift.CHI_SQUARE,
    }
    for plot in (drift_report.FEATURES_PLOT, drift_report.PREDICTIONS_PLOT):
        assert (tmp_path / plot).read_bytes().startswith(PNG_SIGNATURE)


def test_darkened_digits_drift_in_light_and_contrast(
    trained: Path, captured_sets: dict[str, Path], tmp_path: Path
) -> None:
    printed = local_monitor(trained, captured_sets["darkened"], tmp_path)
    _, violations = outputs(tmp_path)
    flagged = {v["feature_name"] for v in violations["violations"]}
    assert {"brightness", "contrast", "sharpness"} <= flagged
    assert not flagged & {"width", "height", "aspect_ratio"}
    assert {v["constraint_check_type"] for v in violations["violations"]} == {
        "baseline_drift_check"
    }
    brightness = next(v for v in violations["violations"] if v["feature_name"] == "brightness")
    assert brightness["description"].startswith(
        "brightness drifted from the baseline: Kolmogorov-Smirnov D = 1.000"
    )
    assert "DRIFT brightness drifted from the baseline" in printed


def test_the_local_monitor_forwards_its_thresholds_and_window(
    trained: Path, captured_sets: dict[str, Path], tmp_path: Path
) -> None:
    """The darkened digits drift, but not when the threshold asks for more images than were
    captured, nor outside the time window: the options reach the image's monitor."""
    local_monitor(trained, captured_sets["darkened"], tmp_path / "few", ["--min-images", "361"])
    assert outputs(tmp_path / "few")[1] == {"violations": []}
    local_monitor(
        trained, captured_sets["darkened"], tmp_path / "later", ["--since", "2999-01-01T00:00:00Z"]
    )
    document, violations = outputs(tmp_path / "later")
    assert violations == {"violations": []} and document["captured"]["images"] == 0


def test_the_local_monitor_refuses_a_threshold_that_is_not_a_probability(
    trained: Path, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "smvision.local",
        "monitor",
        "--model-dir",
        str(trained),
        "--captured",
        str(tmp_path),
        "--out",
        str(tmp_path / "out"),
        "--ks-alpha",
        "2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "--ks-alpha 2 is not a probability" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "expected", "unchanged"),
    [
        ("rotated", {"predicted_class"}, {"brightness", "width", "height"}),
        (
            "faces",
            {"width", "height", "brightness", "contrast", "predicted_class"},
            {"aspect_ratio"},
        ),
    ],
)
def test_rotated_digits_and_other_classes_drift(
    trained: Path,
    captured_sets: dict[str, Path],
    tmp_path: Path,
    name: str,
    expected: set[str],
    unchanged: set[str],
) -> None:
    assert (
        monitor(
            [
                "--baseline",
                str(trained),
                "--captured",
                str(captured_sets[name]),
                "--output",
                str(tmp_path),
            ],
            tmp_path / "opt" / "ml",
        )
        == 0
    )
    _, violations = outputs(tmp_path)
    flagged = {v["feature_name"] for v in violations["violations"]}
    assert expected <= flagged and not unchanged & flagged


def test_without_validation_predictions_only_the_images_are_compared(
    trained: Path, captured_sets: dict[str, Path]
) -> None:
    reference = {**baseline.read(trained), "model": None}  # a job without validation data
    captured = read_captured(
        captured_sets["rotated"], int(reference["image_size"]), int(reference["channels"])
    )
    result = analysis.analyse(reference, captured, Thresholds())
    assert [c.feature_name for c in result.checks] == list(features.feature_names(1))
    assert not result.violations  # rotation changes what the model says, not the pixels
    assert any("confidence and predicted classes were not compared" in n for n in result.notes)


def test_the_window_and_the_processing_layout_come_from_model_monitors_variables(
    trained: Path, captured_sets: dict[str, Path], tmp_path: Path
) -> None:
    base = tmp_path / "opt" / "ml"
    environ = {
        "dataset_source": str(captured_sets["darkened"]),
        "output_path": str(tmp_path / "result"),
        "baseline_statistics": str(trained / contract.BASELINE_FILE),
        "start_time": "2000-01-01T00:00:00Z",
        "end_time": "2000-01-01T01:00:00Z",
    }
    assert monitor([], base, environ) == 0
    document, violations = outputs(tmp_path / "result")
    assert document["captured"]["records"] == 0 and violations == {"violations": []}
    assert document["window"] == {
        "since": "2000-01-01T00:00:00+00:00",
        "until": "2000-01-01T01:00:00+00:00",
    }
    assert any("too few to test" in note for note in document["notes"])
