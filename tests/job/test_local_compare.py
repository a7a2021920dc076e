"""`python -m smvision.local compare`: the plan, the progress lines, and one real comparison."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from smvision.comparison.plots import PLOT_FILES
from smvision.local.compare.plan import PlanError, make_plan
from smvision.local.compare.progress import read_line
from smvision.schema import specs
from smvision.schema.specs import IMAGENET_NOTOP_FILE
from tests.support.pictures import assert_picture

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("0", "1", "7")


def test_plan_routes_each_hyperparameter_to_the_algorithms_that_have_it(tmp_path: Path) -> None:
    plan = make_plan(
        ["svm", "RF", "cnn"],
        [("seed", "7"), ("C", "3"), ("rf:n_estimators", "50"), ("cnn:epochs", "2")],
        {"train": tmp_path, "test": tmp_path},
    )
    assert plan.algorithms == ("svm", "rf", "cnn")
    assert plan.hyperparameters == {
        "svm": {"seed": "7", "C": "3"},
        "rf": {"seed": "7", "n_estimators": "50"},
        "cnn": {"seed": "7", "epochs": "2"},
    }
    assert plan.evaluated_channel == "test"


def test_the_fixed_feature_rows_join_when_imagenet_weights_are_at_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without weights the four algorithms; with a pretrained channel, or the file in the
    image's Keras cache, svm and rf on deep features too, as configurations."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert make_plan(None, [], {"train": tmp_path}).algorithms == specs.names()
    given = make_plan(None, [("svm:C", "3")], {"train": tmp_path, "pretrained": tmp_path})
    assert given.algorithms == (*specs.names(), "svm+deep", "rf+deep")
    assert given.hyperparameters["svm"] == {"C": "3"}
    assert given.hyperparameters["svm+deep"] == {"C": "3", "features": "deep"}
    assert given.configuration("rf+deep").algorithm == "rf"
    baked = tmp_path / "keras" / "models" / IMAGENET_NOTOP_FILE
    baked.parent.mkdir(parents=True)
    baked.write_bytes(b"")
    assert "svm+deep" in make_plan(None, [], {"train": tmp_path}).algorithms
    chosen = make_plan(["svm+HOG+deep", "resnet50"], [], {"train": tmp_path})
    assert chosen.algorithms == ("svm+hog+deep", "resnet50")
    assert chosen.hyperparameters["svm+hog+deep"] == {"features": "hog+deep"}


@pytest.mark.parametrize(
    ("algorithms", "hps", "channels", "message"),
    [
        (["svm", "lasso"], [], ("train",), "--algorithms names 'lasso'; choose from svm, rf"),
        (["svm", "svm"], [], ("train",), "names 'svm' twice"),
        (["svm+deep", "svm+DEEP"], [], ("train",), "names 'svm+deep' twice"),
        (["cnn+deep"], [], ("train",), "'cnn+deep' joins features to cnn, which takes none"),
        (["svm+sift"], [], ("train",), "Hyperparameter 'features' has value 'sift'"),
        (["svm"], [("rf:n_estimators", "5")], ("train",), "names algorithm 'rf', which is not"),
        (["svm"], [("svm:epochs", "5")], ("train",), "'epochs' is not used by algorithm 'svm'"),
        (["svm", "rf"], [("epochs", "5")], ("train",), "none of svm, rf takes 'epochs'"),
        (["svm"], [], ("test",), "--channel train=DIR is required"),
        (["svm"], [], ("train", "extra"), "Unknown channel(s) extra"),
    ],
    ids=[
        "unknown-algorithm",
        "twice",
        "configuration-twice",
        "features-of-a-network",
        "unknown-features",
        "not-running",
        "unknown-key",
        "no-user",
        "no-train",
        "unknown-channel",
    ],
)
def test_plan_refuses_what_no_job_could_use(
    tmp_path: Path,
    algorithms: list[str],
    hps: list[tuple[str, str]],
    channels: tuple[str, ...],
    message: str,
) -> None:
    with pytest.raises(PlanError) as error:
        make_plan(algorithms, hps, {name: tmp_path for name in channels})
    assert message in str(error.value)


def test_plan_refuses_a_missing_channel_directory(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no such file or directory"):
        make_plan(["svm"], [], {"train": tmp_path / "absent"})


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory: pytest.TempPathFactory, digits: Path) -> Path:
    """Three classes of the digits, a quarter of each split: a comparison in seconds."""
    root = tmp_path_factory.mktemp("small-digits")
    for split in ("train", "test"):
        for label in CLASSES:
            files = sorted((digits / split / label).iterdir())
            (root / split / label).mkdir(parents=True)
            for file in files[: max(8, len(files) // 4)]:
                shutil.copy(file, root / split / label / file.name)
    return root


@dataclass(frozen=True)
class Compared:
    completed: subprocess.CompletedProcess[str]
    out: Path
    wall_seconds: float  # the whole command, start to exit, as this test measured it


@pytest.fixture(scope="module")
def compared(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Compared:
    out = tmp_path_factory.mktemp("compare")
    command = [
        sys.executable,
        "-m",
        "smvision.local",
        "compare",
        "--channel",
        f"train={small_digits / 'train'}",
        "--channel",
        f"test={small_digits / 'test'}",
        "--algorithms",
        "svm,rf,cnn",
        "--hp",
        "rf:n_estimators=40",
        "--hp",
        "cnn:epochs=0",  # a value the cnn's job refuses: its row fails, the rest go on
        "--out",
        str(out),
    ]
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    return Compared(completed, out, time.monotonic() - started)


def test_compare_measures_every_algorithm_and_reports_the_failed_one(
    compared: Compared, small_digits: Path
) -> None:
    completed, out, wall = compared.completed, compared.out, compared.wall_seconds
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "Failed: cnn" in completed.stdout
    report = json.loads((out / "comparison.json").read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == ["svm", "rf", "cnn"]
    test_count = sum(1 for _ in (small_digits / "test").rglob("*.png"))
    for name in ("svm", "rf"):
        row = rows[name]
        assert row["failure"] is None
        assert row["derived"]["split"] == "test" and row["derived"]["count"] == test_count
        assert 0.8 <= row["derived"]["accuracy"] <= 1.0
        # validation_fraction (0.2) of the train channel is held out for validation.
        train_files = sum(1 for _ in (small_digits / "train").rglob("*.png"))
        assert 0.7 * train_files < row["train_images"] < 0.9 * train_files
        model_dir = out / "jobs" / name / "opt" / "ml" / "model"
        assert row["model_bytes"] == sum(
            f.stat().st_size for f in model_dir.rglob("*") if f.is_file()
        )
        # Each figure is measured within the command's own run, in the unit it names.
        assert 0 < row["training_seconds"] < wall
        assert row["training_images_per_second"] == pytest.approx(
            row["train_images"] / row["training_seconds"]
        )
        # The training script alone imports scikit-learn and OpenCV: far above 50 MB.
        assert row["peak_memory_bytes"] > 50e6
        assert 0 < row["latency_p50_ms"] < wall * 1000
        assert row["batch32_images_per_second"] > 32 / wall  # a batch of 32 took under `wall`
        assert 0 < row["seconds_to_ready"] < wall
        # image_size auto: the 8x8 digits go up to the 32 pixels HOG needs, no further.
        metadata = json.loads((model_dir / "metadata.json").read_text())
        assert metadata["image_size"] == 32 and metadata["hyperparameters"]["image_size"] == "auto"
        assert "median longer side is 8 px" in metadata["image_size_reason"]
        assert row["notes"][0].startswith("image_size 32, 1 channel(s) (image_size auto: ")
    assert (
        json.loads(
            (
                out / "jobs" / "rf" / "opt" / "ml" / "input" / "config" / "hyperparameters.json"
            ).read_text()
        )["n_estimators"]
        == "40"
    )
    failed = rows["cnn"]
    assert failed["scores"] is None
    assert failed["failure"].startswith("Hyperparameter 'epochs' has value '0'")
    assert (
        failed["failure"]
        == (out / "jobs" / "cnn" / "opt" / "ml" / "output" / "failure").read_text().strip()
    )
    # The jobs and their servers ran one after the other, all within the command's run.
    assert sum(rows[n]["training_seconds"] + rows[n]["seconds_to_ready"] for n in ("svm", "rf")) < (
        wall
    )
    markdown = (out / "comparison.md").read_text()
    assert f"- **cnn**: {failed['failure']}" in markdown
    assert report["recommended"] in ("svm", "rf")
    for file in PLOT_FILES.values():
        assert_picture(out / file)
    for name in ("svm", "rf"):
        assert f"{name}: test accuracy" in completed.stdout


def test_progress_reads_the_stages_of_real_job_logs(
    compared: Compared,
) -> None:
    out = compared.out
    lines = (out / "jobs" / "svm" / "train.log").read_text().splitlines()
    stages = [update.stage for line in lines if (update := read_line(line, epochs=1))]
    assert len(stages) == 4, stages
    assert stages[0].startswith("data loaded: 64 train, 15 validation, 26 test at 32 px")
    assert stages[1].endswith("hog features from 64 images; fitting")
    assert stages[2].startswith("trained in ") and stages[3].startswith("model written")
    epoch = read_line(
        "2026-01-01 00:00:00,000 INFO smvision.training.main: epoch 3/12 (head 3/12) "
        "train:loss=0.1 train 1.0s (900 images/s), epoch 1.2s",
        epochs=1,
    )
    assert epoch is not None and (epoch.step, epoch.epochs) == (4, 12)


# A child that starts a grandchild; the grandchild touches 200 MB, says so, and holds it
# until its stdin closes.
GRANDCHILD = (
    "import sys; block = bytearray(200 * 2**20); block[::4096] = b'x' * len(block[::4096]); "
    "print('held', flush=True); sys.stdin.read()"
)
HOLDER = f"""
import subprocess, sys
subprocess.run([sys.executable, "-c", {GRANDCHILD!r}], stdout=sys.stdout, stdin=sys.stdin)
"""


def test_tree_memory_counts_every_process_below_the_job() -> None:
    """A grandchild holds 200 MB until told to stop: the tree's sum must include it."""
    from smvision.local.compare.peak_memory import descendants, tree_resident_bytes

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert len(descendants(holder.pid)) == 1
        assert tree_resident_bytes(holder.pid) > 200 * 2**20
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
        assert holder.stdout is not None
        holder.stdout.close()
