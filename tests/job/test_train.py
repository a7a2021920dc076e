"""Training through `python -m smvision.local train`: the toolkit's `train` over a real /opt/ml.

Each test runs the same command the image runs, as a subprocess, on real images.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from smvision.algorithms.base import RunContext
from smvision.algorithms.rf import RandomForestAlgorithm
from smvision.core.metrics import CROSS_VALIDATION, METRIC_DEFINITIONS
from smvision.data import dataset
from smvision.data.dataset import Dataset
from smvision.local.job_dir import lay_out_job, train_command
from smvision.local.samples import digits_images
from smvision.schema import hyperparameters
from smvision.training.toolkit_entry import ENTRY_SCRIPT, ENTRY_SCRIPT_DIR
from tests.support.pictures import assert_picture
from tests.support.training_jobs import JobResult, TrainJob

PLATFORM_KEYS = {
    "_tuning_objective_metric": "validation:accuracy",
    "sagemaker_region": '"us-east-1"',
    "sagemaker_job_name": '"smvision-test"',
}


def assert_complete_model(job: JobResult, algorithm: str) -> None:
    assert job.returncode == 0, job.output[-3000:]
    assert job.failure == ""
    metadata = job.metadata
    assert metadata["algorithm"] == algorithm
    assert metadata["class_names"] == [str(d) for d in range(10)]
    assert {
        "image_size",
        "channels",
        "preprocessing",
        "hyperparameters",
        "versions",
        "metrics",
    } <= set(metadata)
    assert metadata["versions"]["opencv-python-headless"].startswith("4.")
    output = job.ml / "output" / "data"
    assert (output / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in job.ml.parent.glob(".model-staging-*")]


def test_svm_on_digits_with_every_channel(train_job: TrainJob, digits: Path) -> None:
    job = train_job(
        "svm",
        {"train": digits / "train", "validation": digits / "validation", "test": digits / "test"},
        PLATFORM_KEYS,
    )
    assert_complete_model(job, "svm")
    metrics = job.metrics()
    assert metrics["test:accuracy"][-1] >= 0.97
    assert set(metrics) >= {
        "train:accuracy",
        "train:loss",
        "validation:accuracy",
        "validation:loss",
        "validation:macro_f1",
        "test:accuracy",
        "test:loss",
        "test:macro_f1",
    }
    assert {name: len(values) for name, values in metrics.items() if len(values) != 1} == {}
    evaluation = job.evaluation
    assert set(evaluation) == {
        "validation",
        "test",
        "train_class_counts",
        "conformal",
        "out_of_distribution",
        "data_report",
    }
    assert evaluation["train_class_counts"]["3"] == 110
    test = evaluation["test"]
    assert test["count"] == 360 and test["accuracy"] == pytest.approx(
        metrics["test:accuracy"][-1], abs=1e-6
    )
    assert sum(map(sum, test["confusion_matrix"]["matrix"])) == 360
    assert set(test["per_class"]) == {str(d) for d in range(10)}
    assert test["predictions"][0]["source"].startswith("0/digit-")
    hyperparameters = json.loads((job.ml / "input/config/hyperparameters.json").read_text())
    assert hyperparameters["_tuning_objective_metric"] == "validation:accuracy"
    assert job.metadata["hyperparameters"]["C"] == "10.0"
    assert "_tuning_objective_metric" not in job.metadata["hyperparameters"]
    pictures = job.ml / "output" / "data"
    assert_picture(pictures / "confusion_matrix.png", 1000, 900)  # two splits, two panels each
    assert_picture(pictures / "mistakes.png", 600, 250)
    assert not (pictures / "feature_importance.png").exists()  # an RBF SVM has none


def test_metric_definitions_read_real_job_output(train_job: TrainJob, digits: Path) -> None:
    job = train_job(
        "svm",
        {"train": digits / "train", "test": digits / "test"},
        {"image_size": "32", "cv_folds": "2"},
    )
    assert job.returncode == 0, job.output[-2000:]
    lines = job.output.splitlines()
    read = {}
    for definition in METRIC_DEFINITIONS:
        values = [
            float(m.group(1)) for line in lines for m in [re.search(definition["Regex"], line)] if m
        ]
        if values:
            read[definition["Name"]] = values[-1]
    assert read == {name: values[-1] for name, values in job.metrics().items()}
    assert {"train:accuracy", "validation:accuracy", "validation:loss", "test:accuracy"} <= set(
        read
    )
    assert set(CROSS_VALIDATION) <= set(read)
    cv = job.evaluation["cross_validation"]
    assert cv["folds"] == 2 and cv["images"] == 1078  # train, with the part held out of it
    assert read["cv:accuracy_mean"] == pytest.approx(cv["accuracy"]["mean"], abs=1e-6)
    assert read["cv:macro_f1_std"] == pytest.approx(cv["macro_f1"]["std"], abs=1e-6)
    assert cv["accuracy"]["mean"] > 0.9 and len(cv["accuracy"]["per_fold"]) == 2


def test_rf_splits_validation_from_train_and_reads_npz(train_job: TrainJob, tmp_path: Path) -> None:
    """Also: every per-image feature kind, cross-validation, class weights, and the pictures."""
    pixels, labels = digits_images()
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "digits.npz", x=pixels, y=labels)
    job = train_job(
        "rf",
        {"train": tmp_path / "npz"},
        {
            "n_estimators": "60",
            "validation_fraction": "0.25",
            "features": "hog+pixels+gabor+edges",
            "cv_folds": "3",
            "class_weight": "balanced",
        },
    )
    assert_complete_model(job, "rf")
    assert "held out 450 of 1797 train images" in job.output
    assert "3-fold cross-validation on 1797 images" in job.output
    evaluation = job.evaluation
    assert evaluation["validation"]["count"] == 450
    assert job.metrics()["validation:accuracy"][-1] > 0.9
    assert evaluation["cross_validation"]["accuracy"]["mean"] > 0.9
    assert job.metadata["hyperparameters"]["class_weight"] == "balanced"
    importance = evaluation["feature_importance"]
    assert set(importance["by_kind"]) == {"hog", "pixels", "gabor", "edges"}
    assert sum(importance["by_kind"].values()) == pytest.approx(1.0)
    top = importance["top"]
    assert len(top) == 20 and top[0]["importance"] >= top[-1]["importance"] > 0
    placed = [t for t in top if t["place"] is not None]
    assert placed and all(0 <= t["place"]["top"] < t["place"]["bottom"] <= 64 for t in placed), (
        placed
    )
    assert all(t["name"].startswith(t["kind"]) for t in top)
    pictures = job.ml / "output" / "data"
    assert_picture(pictures / "feature_importance.png", 1200, 450)
    assert_picture(pictures / "mistakes.png", 600, 250)  # validation: there is no test
    assert_picture(pictures / "confusion_matrix.png", 1000, 450)


def test_class_weight_balanced_lifts_the_rare_classes(digits: Path) -> None:
    """rf on four digits, two of them with 6 training images: balanced weights find more of them."""
    names = ["3", "5", "8", "9"]

    def load(split: str, limit: int) -> Dataset:
        kept: dict[str, int] = {}
        samples = []
        for sample in dataset.list_channel(digits / split, split):
            if sample.label in names:
                kept[sample.label] = kept.get(sample.label, 0) + 1
                if sample.label in ("3", "5") or kept[sample.label] <= limit:
                    samples.append(sample)
        return dataset.load(samples, names, 32, 1, split, 0.0)

    train, test = load("train", 6), load("test", 1000)
    recall = {}
    for weight in ("none", "balanced"):
        hp = hyperparameters.parse(
            {"algorithm": "rf", "image_size": "32", "class_weight": weight, "min_samples_leaf": "3"}
        )
        model = RandomForestAlgorithm(32, 1, len(names))
        model.fit(train, None, hp, cast(RunContext, QuietRun()))
        predicted = model.predict_proba(test.all_images()).argmax(axis=1)
        rare = np.isin(test.labels, [2, 3])
        recall[weight] = float((predicted[rare] == test.labels[rare]).mean())
    assert recall["balanced"] > recall["none"] + 0.2, recall


class QuietRun:
    """What a classical fit uses of its job: nothing to report here."""

    pretrained_dir = None
    parent = None
    memory_budget = None

    def metric(self, name: str, value: float) -> None:
        pass

    def info(self, message: str) -> None:
        pass


def test_cnn_reports_every_epoch_and_plots_curves(train_job: TrainJob, digits: Path) -> None:
    """Also: every augmentation, label smoothing, and the pictures."""
    augmentation = {
        "augment": "True",
        "rotation_range": "10",
        "width_shift_range": "0.05",
        "height_shift_range": "0.1",
        "zoom_range": "0.05",
        "random_crop": "0.1",
        "contrast_range": "0.1",
        "label_smoothing": "0.1",
    }
    job = train_job(
        "cnn",
        {"train": digits / "train", "validation": digits / "validation", "test": digits / "test"},
        {"epochs": "3", "image_size": "16", "batch_size": "32", **augmentation, **PLATFORM_KEYS},
    )
    assert_complete_model(job, "cnn")
    metrics = job.metrics()
    # One line per epoch (patience 5 cannot stop 3 epochs early), and validation once more
    # from the final evaluation, which evaluation.json holds.
    for name in ("train:accuracy", "train:loss"):
        assert len(metrics[name]) == 3, (name, metrics[name])
    for name in ("validation:accuracy", "validation:loss"):
        assert len(metrics[name]) == 3 + 1, (name, metrics[name])
        measure = name.partition(":")[2]
        assert metrics[name][-1] == pytest.approx(job.evaluation["validation"][measure], rel=1e-5)
    assert [f"epoch {n}/3 (" in job.output for n in (1, 2, 3)] == [True] * 3
    assert job.metadata["channels"] == 1
    assert metrics["test:accuracy"][-1] > 0.5
    assert job.metadata["hyperparameters"]["label_smoothing"] == "0.1"
    pictures = job.ml / "output" / "data"
    assert_picture(pictures / "training_curves.png", 1000, 350)
    assert_picture(pictures / "saliency.png", 1000, 550)  # two rows: right and wrong
    assert_picture(pictures / "mistakes.png", 600, 250)


def _resnet_weights(path: Path) -> Path:
    """ResNet50 weights without the top, made here (no download): random, but a real file."""
    import keras

    path.mkdir(parents=True)
    base = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    base.save_weights(path / "resnet50_notop.weights.h5")
    return path


def test_resnet50_uses_the_pretrained_channel_and_fine_tunes(
    train_job: TrainJob, digits: Path, tmp_path: Path
) -> None:
    pretrained = _resnet_weights(tmp_path / "pretrained")
    job = train_job(
        "resnet50",
        {"train": digits / "train", "validation": digits / "validation", "pretrained": pretrained},
        {
            "image_size": "32",
            "epochs": "1",
            "fine_tune_epochs": "1",
            "fine_tune_layers": "10",
            "batch_size": "64",
        },
    )
    assert_complete_model(job, "resnet50")
    assert "ResNet50 starting weights:" in job.output and "resnet50_notop.weights.h5" in job.output
    assert "(fine-tune 1/1)" in job.output
    assert job.metadata["channels"] == 3
    pictures = job.ml / "output" / "data"
    assert_picture(pictures / "saliency.png", 1000, 250)  # validation: there is no test
    assert_picture(pictures / "mistakes.png", 600, 250)


def test_resnet50_refuses_weights_that_do_not_fit(
    train_job: TrainJob, digits: Path, tmp_path: Path
) -> None:
    (tmp_path / "pretrained").mkdir()
    (tmp_path / "pretrained" / "wrong.h5").write_bytes(b"not hdf5")
    job = train_job(
        "resnet50",
        {"train": digits / "test", "pretrained": tmp_path / "pretrained"},
        {"image_size": "32", "epochs": "1"},
    )
    assert job.returncode != 0
    assert "wrong.h5 does not fit ResNet50" in job.failure
    assert list((job.ml / "model").iterdir()) == []


@pytest.mark.parametrize(
    "case",
    ["algorithm", "value", "missing_train", "empty_train", "single_class", "image_size", "corrupt"],
)
def test_failures_come_before_training_clear_and_leave_no_model(
    case: str, train_job: TrainJob, digits: Path, tmp_path: Path
) -> None:
    algorithm, channels, hps, expected = "svm", {"train": digits / "test"}, {}, ""
    if case == "algorithm":
        algorithm, expected = (
            "xgboost",
            "Hyperparameter 'algorithm' has value 'xgboost'; use one of svm, rf, cnn, resnet50.",
        )
    elif case == "value":
        hps, expected = {"C": "lots"}, "Hyperparameter 'C' has value 'lots'"
    elif case == "missing_train":
        channels, expected = {"validation": digits / "validation"}, "Channel 'train' is missing"
    elif case == "empty_train":
        (tmp_path / "empty" / "cats").mkdir(parents=True)
        channels, expected = {"train": tmp_path / "empty"}, "Channel 'train' at"
    elif case == "single_class":
        channels, expected = {"train": digits / "test" / "7"}, "single class"
        shutil.copytree(digits / "test" / "7", tmp_path / "one" / "7")
        channels = {"train": tmp_path / "one"}
    elif case == "image_size":
        algorithm, hps, expected = (
            "resnet50",
            {"image_size": "24"},
            "resnet50 needs at least 32 pixels",
        )
    elif case == "corrupt":
        shutil.copytree(digits / "test", tmp_path / "corrupt")
        for path in sorted((tmp_path / "corrupt").rglob("*.png"))[:5]:
            path.write_bytes(path.read_bytes()[:40])
        channels, expected = {"train": tmp_path / "corrupt"}, "5 unreadable images of 360"
    job = train_job(algorithm, channels, hps)
    assert job.returncode != 0
    assert expected in job.failure, job.failure or job.output[-2000:]
    assert job.failure.count("\n") == 1, job.failure  # one sentence, one line
    assert list((job.ml / "model").iterdir()) == []
    assert job.metrics() == {}  # found before any training: no epoch or fit reported


def test_a_few_unreadable_files_are_skipped_and_named(
    train_job: TrainJob, digits: Path, tmp_path: Path
) -> None:
    shutil.copytree(digits / "train", tmp_path / "train")
    broken = sorted((tmp_path / "train").rglob("*.png"))[3]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    job = train_job("svm", {"train": tmp_path / "train"}, {"image_size": "32"})
    assert job.returncode == 0, job.output[-2000:]
    assert (
        f"Skipping unreadable image in channel 'train': {broken.parent.name}/{broken.name}"
        in job.output
    )


def test_lst_layout_trains(train_job: TrainJob, digits: Path, tmp_path: Path) -> None:
    channel = tmp_path / "lst"
    channel.mkdir()
    lines = []
    for index, path in enumerate(sorted((digits / "train").rglob("*.png"))):
        shutil.copy(path, channel / path.name)
        lines.append(f"{index}\t{path.parent.name}\t{path.name}")
    (channel / "train.lst").write_text("\n".join(lines))
    job = train_job("svm", {"train": channel, "test": digits / "test"}, {"image_size": "32"})
    assert_complete_model(job, "svm")
    assert job.metrics()["test:accuracy"][-1] > 0.95


def test_sigkill_mid_training_then_restart_resumes_from_the_checkpoint(
    digits: Path, tmp_path: Path
) -> None:
    job_dir = tmp_path / "spot-job"
    command = train_command(
        "cnn",
        {"train": digits / "train", "validation": digits / "validation"},
        job_dir,
        {
            "epochs": "6",
            "image_size": "16",
            "batch_size": "32",
            "augment": "false",
            "early_stopping_patience": "0",
        },
    )
    state = job_dir / "opt/ml/checkpoints/state.json"
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["epoch_in_phase"] >= 2:
            break
        assert first.poll() is None, first.stdout.read() if first.stdout else ""
        time.sleep(0.2)  # waits on the job writing state.json (another process's file)
    else:
        pytest.fail("no checkpoint after two epochs")
    os.killpg(first.pid, signal.SIGKILL)  # what a spot interruption does to every process
    first.communicate()  # reaps it and closes its pipe
    saved_epoch = json.loads(state.read_text())["epoch_in_phase"]
    assert 2 <= saved_epoch < 6

    second = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert f"Resuming from checkpoint: phase 'train' after epoch {saved_epoch} of 6" in output
    epochs_run = re.findall(r"epoch (\d+)/6 \(train", output)
    assert epochs_run == [str(e) for e in range(saved_epoch + 1, 7)]
    metadata = json.loads((job_dir / "opt/ml/model/metadata.json").read_text())
    assert metadata["metrics"]["validation:accuracy"] > 0.5
    assert (job_dir / "opt/ml/model/model.keras").stat().st_size > 10_000


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    code = (
        "import smvision, smvision.training.main, smvision.local, smvision.algorithms, "
        "smvision.schema.hyperparameters, smvision.core.contract, smvision.data.dataset, "
        "smvision.algorithms.features; "
        "import sys; print('tensorflow' in sys.modules)"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("SAGEMAKER_BASE_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert list(tmp_path.iterdir()) == []


def test_serving_variables_in_a_training_job_are_not_its_concern(
    train_job: TrainJob, digits: Path
) -> None:
    # SageMaker passes one environment to both; only `serve` reads these limits.
    job = train_job(
        "svm",
        {"train": digits / "test"},
        {"image_size": "16"},
        env={"SAGEMAKER_MODEL_SERVER_WORKERS": "0", "SAGEMAKER_BIND_TO_PORT": "http"},
    )
    assert job.returncode == 0, job.failure or job.output[-3000:]
    assert job.metadata["algorithm"] == "svm"


def test_a_malformed_host_list_ends_in_the_failure_file(digits: Path, tmp_path: Path) -> None:
    # The toolkit's `train` rewrites SM_HOSTS from resourceconfig.json, so this runs the
    # script it calls (the image's entry script) the way the toolkit does.
    contract = lay_out_job(tmp_path / "job", {"train": digits / "test"}, {"algorithm": "svm"})
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(contract.base_dir),
        "SM_HOSTS": "algo-1,algo-2",
        "SM_CURRENT_HOST": "algo-1",
    }
    completed = subprocess.run(
        [sys.executable, str(ENTRY_SCRIPT_DIR / ENTRY_SCRIPT), "--algorithm", "svm"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    failure = contract.failure_file.read_text() if contract.failure_file.exists() else ""
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "SM_HOSTS has value 'algo-1,algo-2'" in failure, completed.stderr[-3000:]
    assert "Traceback" not in completed.stdout + completed.stderr
    assert list(contract.model_dir.iterdir()) == []
