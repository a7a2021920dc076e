"""`python -m smvision.local train` used as a hostile user uses it (issue 22): nothing lost,
nothing left running, a non-zero status and a sentence whenever a job does not finish.

"Training in flight" is certain by construction: the algorithm is the digits svm as
tests.support.gated_algorithm.GatedSVM, whose `fit` waits at a FIFO that the test never
releases, so the signal always lands while the job trains.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import psutil
import pytest

from smvision.local.job_dir import run_foreground, train_command
from tests.support.gated_algorithm import FIT_GATE, SPEC, make_gate, waiter_at, write_plugin_site
from tests.support.training_jobs import JobResult, TrainJob, run_local_train

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"image_size": "16"}


def contents(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def finished_job(digits: Path, tmp_path: Path) -> Path:
    """A job directory that holds a trained model, its output and its input."""
    job_dir = tmp_path / "existing"
    job = run_local_train("svm", {"train": digits / "validation"}, job_dir, SMALL)
    assert job.returncode == 0, job.output[-2000:]
    return job_dir


def test_a_missing_channel_or_one_that_holds_the_job_leaves_an_existing_job_as_it_was(
    finished_job: Path,
) -> None:
    before = contents(finished_job)
    job = run_local_train("svm", {"train": Path("/no/such/dir")}, finished_job, SMALL)
    assert job.returncode != 0
    assert "--channel train=/no/such/dir: no such file or directory" in job.output
    assert contents(finished_job) == before

    job = run_local_train("svm", {"train": finished_job.parent}, finished_job, SMALL)
    assert job.returncode != 0
    assert f"--channel train={finished_job.parent} holds the job directory" in job.output
    assert contents(finished_job) == before


def test_channels_inside_the_job_itself_are_copied_before_it_is_laid_out_afresh(
    finished_job: Path,
) -> None:
    """Restarting a job from its own input/ (and continuing its own model/) loses nothing."""
    ml = finished_job / "opt" / "ml"
    images = contents(ml / "input" / "data" / "train")
    model = contents(ml / "model")
    job = run_local_train(
        "svm",
        {"train": ml / "input" / "data" / "train", "model": ml / "model"},
        finished_job,
        SMALL,
    )
    assert job.returncode == 0, job.output[-3000:]
    assert contents(ml / "input" / "data" / "train") == images
    assert contents(ml / "input" / "data" / "model") == model
    assert "is recorded as the parent" in job.output


# Stopping a job --------------------------------------------------------------------------


class GatedJob:
    """A local training job of GatedSVM, started in a process group of its own, held in
    `fit` at its gate."""

    def __init__(self, digits: Path, tmp_path: Path, *extra: str) -> None:
        site = write_plugin_site(
            tmp_path / "site", {SPEC.name: "tests.support.gated_algorithm:SPEC"}
        )
        self.gate = make_gate(tmp_path / "fit-gate")
        self.job_dir = tmp_path / "gated-job"
        paths = [str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), FIT_GATE: str(self.gate)}
        command = train_command(SPEC.name, {"train": digits / "validation"}, self.job_dir, SMALL)
        # A file, not a pipe: a process the wrapper leaves behind would hold a pipe open.
        self.log = tmp_path / "gated-job.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*command, *extra],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_training(self) -> None:
        """Returns once `fit` waits at the gate (it never goes on)."""
        os.close(waiter_at(self.gate, timeout=300))

    def finish(self) -> JobResult:
        returncode = self.process.wait(timeout=300)
        return JobResult(returncode, self.log.read_text(), self.job_dir / "opt" / "ml")

    def nothing_waits_at_the_gate(self) -> bool:
        """True when no process of the job is left in `fit` (none holds the FIFO open)."""
        try:
            os.close(os.open(self.gate, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as error:
            return error.errno == errno.ENXIO
        return False

    def kill(self) -> None:
        """Whatever is left of the job's process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def gated_job(digits: Path, tmp_path: Path) -> Iterator[Callable[..., GatedJob]]:
    started: list[GatedJob] = []

    def start(*extra: str) -> GatedJob:
        job = GatedJob(digits, tmp_path, *extra)
        started.append(job)
        return job

    yield start
    for job in started:
        job.kill()


def assert_stopped(job: GatedJob, result: JobResult, signal_name: str, status: int) -> None:
    assert result.returncode == status, result.output[-3000:]
    assert job.nothing_waits_at_the_gate(), "the training script outlived the wrapper"
    assert f"stopped by {signal_name}" in result.failure, result.failure or result.output[-3000:]
    assert list((result.ml / "model").iterdir()) == []


def test_ctrl_c_stops_the_job_with_a_failure_and_a_non_zero_status(
    gated_job: Callable[..., GatedJob],
) -> None:
    """Ctrl-C: SIGINT to the terminal's foreground process group, every process of the job."""
    job = gated_job()
    job.wait_until_training()
    os.killpg(job.process.pid, signal.SIGINT)
    result = job.finish()
    assert_stopped(job, result, "SIGINT", 128 + signal.SIGINT)


def test_sigterm_to_the_wrapper_stops_the_training_script_too(
    gated_job: Callable[..., GatedJob],
) -> None:
    """SIGTERM to the wrapper alone (kill PID, a supervisor): it reaches train.py."""
    job = gated_job()
    job.wait_until_training()
    job.process.send_signal(signal.SIGTERM)
    result = job.finish()
    assert_stopped(job, result, "SIGTERM", 128 + signal.SIGTERM)


def test_max_run_stops_a_job_that_trains_too_long(gated_job: Callable[..., GatedJob]) -> None:
    """--max-run, as SageMaker's MaxRuntimeInSeconds: SIGTERM when it passes, and the reason."""
    job = gated_job("--max-run", "1")
    result = job.finish()
    assert result.returncode == 124, result.output[-3000:]
    assert job.nothing_waits_at_the_gate()
    assert result.failure.startswith("Training ran past --max-run 1 s"), result.failure
    assert list((result.ml / "model").iterdir()) == []


def test_the_wrapper_kills_a_child_that_ignores_sigterm_once_the_grace_period_ends(
    tmp_path: Path,
) -> None:
    """A child and its own child that ignore SIGTERM: the wrapper (run_foreground, here in
    this process) passes the signal on, then kills both when the grace period ends. The
    child sends the wrapper SIGTERM itself once both ignore it, so the order is certain."""
    pids = tmp_path / "pids"
    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, sys, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); "
        "time.sleep(600)'], "  # waits on the wrapper's SIGKILL: the grandchild lives till then
        "stdout=subprocess.PIPE)\n"
        "child.stdout.readline()\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "os.kill(os.getppid(), signal.SIGTERM)\n"
        "time.sleep(600)\n"  # waits on the wrapper's SIGKILL, as its child does
    )
    status = run_foreground([sys.executable, "-c", script], dict(os.environ), grace_s=1.0)
    assert status == 128 + signal.SIGTERM
    for pid in map(int, pids.read_text().split()):
        assert not running(pid)


def running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


# Small data sets: the guide's svm ------------------------------------------------------------


def few_per_class(digits: Path, destination: Path, count: int, classes: range = range(10)) -> Path:
    """The first `count` training scans of each digit, as class folders."""
    for digit in classes:
        scans = sorted((digits / "train" / str(digit)).glob("*.png"))[:count]
        (destination / str(digit)).mkdir(parents=True)
        for scan in scans:
            (destination / str(digit) / scan.name).write_bytes(scan.read_bytes())
    return destination


def test_svm_trains_on_three_images_per_class_and_says_how_it_calibrates(
    train_job: TrainJob, digits: Path, tmp_path: Path
) -> None:
    train = few_per_class(digits, tmp_path / "few", 3)
    job = train_job("svm", {"train": train}, {"image_size": "16"})
    assert job.returncode == 0, job.failure or job.output[-3000:]
    in_train = 2  # validation_fraction 0.2 holds one image of each class out
    assert (
        f"svm: the smallest class has {in_train} training images, too few for Platt scaling"
        in job.output
    )
    assert f"temperature scaling (one parameter for all classes) on {in_train}-fold" in job.output
    assert job.metadata["class_names"] == [str(d) for d in range(10)]


def test_svm_refuses_a_class_of_one_image_with_a_sentence(
    train_job: TrainJob, digits: Path, tmp_path: Path
) -> None:
    train = few_per_class(digits, tmp_path / "few", 4)
    for extra in sorted((train / "7").iterdir())[1:]:
        extra.unlink()
    job = train_job("svm", {"train": train}, {"image_size": "16"})
    assert job.returncode != 0, job.output[-3000:]
    assert job.failure.startswith(
        "svm needs at least 2 training images of every class to calibrate its probabilities"
    ), job.failure
    assert "and class '7' has 1; add images of it" in job.failure
    assert list((job.ml / "model").iterdir()) == []


@pytest.mark.parametrize(
    ("algorithm", "per_class", "single", "advice"),
    [
        ("rf", 4, True, "use cv_folds=0 to turn cross-validation off, or add images of class '7'"),
        ("svm", 3, False, "use cv_folds=3, or 0 to turn it off"),
    ],
    ids=["one-image-class", "svm-folds-too-small-to-calibrate"],
)
def test_cv_folds_advice_names_a_value_the_schema_accepts(
    algorithm: str,
    per_class: int,
    single: bool,
    advice: str,
    train_job: TrainJob,
    digits: Path,
    tmp_path: Path,
) -> None:
    train = few_per_class(digits, tmp_path / "few", per_class)
    if single:
        for extra in sorted((train / "7").iterdir())[1:]:
            extra.unlink()
    folds = "3" if single else "2"
    job = train_job(algorithm, {"train": train}, {"image_size": "16", "cv_folds": folds})
    assert job.returncode != 0, job.output[-3000:]
    assert job.failure.startswith(f"Hyperparameter 'cv_folds' has value '{folds}'"), job.failure
    assert advice in job.failure, job.failure
    assert "cv_folds=1" not in job.failure


# Large images --------------------------------------------------------------------------------


def large_scan(digits: Path, width: int, height: int, suffix: str) -> bytes:
    """A digit scan of the train set blown up to width x height (the README says any size)."""
    scan = cv2.imread(str(sorted((digits / "train" / "3").glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE)
    assert scan is not None
    large = cv2.resize(scan, (width, height), interpolation=cv2.INTER_NEAREST)
    ok, encoded = cv2.imencode(suffix, large)
    assert ok
    return encoded.tobytes()


@pytest.fixture
def with_large_images(digits: Path, tmp_path: Path) -> Path:
    """The validation digits as a train channel, plus a 48-megapixel JPEG and a
    42-megapixel PNG of a 3."""
    train = tmp_path / "large"
    shutil.copytree(digits / "validation", train)
    (train / "3" / "large.jpg").write_bytes(large_scan(digits, 8000, 6000, ".jpg"))
    (train / "3" / "large.png").write_bytes(large_scan(digits, 7000, 6000, ".png"))
    return train


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_and_a_large_png_refused_by_name(
    with_large_images: Path, train_job: TrainJob
) -> None:
    job = train_job(
        "svm",
        {"train": with_large_images},
        {"image_size": "16", "scaled_jpeg_decode": "false", "validation_fraction": "0"},
    )
    assert job.returncode == 0, job.failure or job.output[-3000:]
    assert "large.jpg" not in job.output  # used, not skipped
    assert (
        "Skipping an image of channel 'train': 3/large.png is 7000x6000 = 42.0 megapixels, over "
        "the 40-megapixel limit; raise the hyperparameter max_image_megapixels (up to 178) to "
        "train on it, or resize it."
    ) in job.output
    images = len(list(with_large_images.rglob("*.png")))  # the large PNG among them
    assert f"Loaded {images} train, 0 validation" in job.output  # the JPEG in, the PNG out


def test_max_image_megapixels_raises_the_limit(
    with_large_images: Path, train_job: TrainJob
) -> None:
    job = train_job(
        "svm",
        {"train": with_large_images},
        {"image_size": "16", "max_image_megapixels": "50", "max_corrupt_fraction": "0"},
    )
    assert job.returncode == 0, job.failure or job.output[-3000:]
    assert "large.png" not in job.output and "Skipping" not in job.output


def test_large_images_over_the_limit_fail_a_job_with_the_limit_and_the_setting(
    with_large_images: Path, train_job: TrainJob
) -> None:
    job = train_job(
        "svm", {"train": with_large_images}, {"image_size": "16", "max_corrupt_fraction": "0"}
    )
    assert job.returncode != 0
    assert "3/large.png is 7000x6000 = 42.0 megapixels, over the 40-megapixel limit" in job.failure
    assert "max_image_megapixels" in job.failure
    assert "unreadable" not in job.failure, job.failure


# .lst labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["nan", "99"])
def test_a_lst_label_that_is_no_class_index_fails_the_job_by_line(
    label: str, train_job: TrainJob, digits: Path, tmp_path: Path
) -> None:
    channel = tmp_path / "lst"
    channel.mkdir()
    lines: list[str] = []
    for path in sorted((digits / "validation").rglob("*.png")):
        (channel / path.name).write_bytes(path.read_bytes())
        lines.append(f"{len(lines)}\t{path.parent.name}\t{path.name}")
    (channel / "extra.png").write_bytes(path.read_bytes())
    (channel / "train.lst").write_text("\n".join([*lines, f"{len(lines)}\t{label}\textra.png"]))
    job = train_job("svm", {"train": channel}, {"image_size": "16"})
    assert job.returncode != 0
    if label == "99":
        assert "Channel 'train' numbers its classes 0 to 9 and 99 (99 labels extra.png)" in (
            job.failure
        )
    else:
        assert f"train.lst, line {len(lines) + 1}: label '{label}' is not a class index" in (
            job.failure
        )
    assert list((job.ml / "model").iterdir()) == []


# A cluster that never comes together --------------------------------------------------------


@pytest.mark.slow
def test_a_host_whose_peer_never_joins_fails_at_distributed_timeout(
    digits: Path, tmp_path: Path
) -> None:
    """Host algo-1 of two, algo-2 never started (certain by construction): the job ends
    at distributed_timeout with a sentence, where TensorFlow alone waits on and on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workers = [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"]
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}}
    hps = {"image_size": "16", "epochs": "1", "distributed_timeout": "10"}
    command = train_command("cnn", {"train": digits / "validation"}, tmp_path / "algo-1", hps)
    host = subprocess.Popen(
        [*command, "--hosts", "algo-1,algo-2", "--current-host", "algo-1"],
        env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = host.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(host.pid, signal.SIGKILL)  # whatever a hang left behind
    failure = tmp_path / "algo-1" / "opt" / "ml" / "output" / "failure"
    assert host.returncode != 0, output[-3000:]
    assert failure.read_text().startswith(
        "Host algo-1 waited 10 s for the other hosts (algo-2) to join the training cluster"
    )
    assert list((tmp_path / "algo-1" / "opt" / "ml" / "model").iterdir()) == []
