"""Several hosts: MultiWorkerMirroredStrategy for the Keras models, one trainer for sklearn.

Two-worker jobs run as two real processes on this machine, each with its own job
directory and resourceconfig.json (hosts algo-1, algo-2). TensorFlow's servers listen on
0.0.0.0:PORT, so two workers on one machine need two ports, which SageMaker's one
`distributed_port` for every host cannot give; the tests describe the cluster to each
worker with TensorFlow's own TF_CONFIG (127.0.0.1 and two free ports), which smvision
honours when the environment sets it, as a Kubernetes operator would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from smvision.core import contract
from smvision.local.job_dir import train_command
from smvision.schema import hyperparameters
from smvision.training import distributed
from tests.support.training_jobs import JobResult, TrainJob

CNN = {
    "epochs": "8",
    "image_size": "16",
    "batch_size": "32",
    "augment": "false",
    "early_stopping_patience": "0",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_cluster(
    algorithm: str, channels: dict[str, Path], root: Path, hps: dict[str, str], hosts: int = 2
) -> list[subprocess.Popen[str]]:
    names = [f"algo-{i + 1}" for i in range(hosts)]
    addresses = [f"127.0.0.1:{_free_port()}" for _ in names]
    processes = []
    for index, name in enumerate(names):
        command = train_command(algorithm, channels, root / name, hps)
        command += ["--hosts", ",".join(names), "--current-host", name]
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                command,
                env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        )
    return processes


def finish(
    processes: list[subprocess.Popen[str]], root: Path, timeout: float = 900
) -> list[JobResult]:
    results = []
    for index, process in enumerate(processes):
        output, _ = process.communicate(timeout=timeout)
        results.append(
            JobResult(process.returncode, output, root / f"algo-{index + 1}" / "opt" / "ml")
        )
    return results


def test_two_cnn_workers_converge_like_one(
    train_job: TrainJob, digits: Path, tmp_path: Path
) -> None:
    channels = {
        "train": digits / "train",
        "validation": digits / "validation",
        "test": digits / "test",
    }
    started = time.monotonic()
    single = train_job("cnn", channels, CNN)
    single_seconds = time.monotonic() - started
    assert single.returncode == 0, single.output[-3000:]

    started = time.monotonic()
    chief, worker = finish(
        start_cluster("cnn", channels, tmp_path / "cluster", CNN), tmp_path / "cluster"
    )
    pair_seconds = time.monotonic() - started
    assert chief.returncode == 0, chief.output[-3000:]
    assert worker.returncode == 0, worker.output[-3000:]

    assert "2 replica(s), per-replica batch 32, global batch 64" in chief.output
    assert '"task": {"type": "worker", "index": 1}' in worker.output
    # Only the first host reports metrics and writes model/ and output/data/.
    assert worker.metrics() == {}
    assert list((worker.ml / "model").iterdir()) == []
    assert list((worker.ml / "output" / "data").iterdir()) == []
    assert list((worker.ml / "checkpoints").iterdir()) == []
    assert "Worker 2 of 2 done" in worker.output
    assert chief.metadata["train_images"] == single.metadata["train_images"] == 1078

    one, two = single.metrics()["test:accuracy"][-1], chief.metrics()["test:accuracy"][-1]
    print(
        f"\n1 worker: test accuracy {one:.4f} in {single_seconds:.0f} s; "
        f"2 workers: {two:.4f} in {pair_seconds:.0f} s"
    )
    assert abs(one - two) <= 0.01
    assert two >= 0.95


def test_killed_cluster_resumes_from_the_chiefs_checkpoint(digits: Path, tmp_path: Path) -> None:
    channels = {"train": digits / "train", "validation": digits / "validation"}
    hps = CNN | {"epochs": "5"}
    root = tmp_path / "cluster"
    processes = start_cluster("cnn", channels, root, hps)
    state = root / "algo-1" / "opt/ml/checkpoints/state.json"
    deadline = time.monotonic() + 600
    while not (state.exists() and json.loads(state.read_text())["epoch_in_phase"] >= 2):
        assert time.monotonic() < deadline, "no checkpoint after two epochs"
        assert all(p.poll() is None for p in processes), finish(processes, root)[0].output[-3000:]
        time.sleep(0.2)  # waits on the chief writing state.json (another process's file)
    for process in processes:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()  # reaps it and closes its pipe
    saved = json.loads(state.read_text())["epoch_in_phase"]
    # A restarted SageMaker job gives every host the same checkpoint prefix from S3.
    shutil.copytree(
        root / "algo-1/opt/ml/checkpoints", root / "algo-2/opt/ml/checkpoints", dirs_exist_ok=True
    )

    chief, worker = finish(start_cluster("cnn", channels, root, hps), root)
    for job in (chief, worker):
        assert job.returncode == 0, job.output[-3000:]
        assert f"Resuming from checkpoint: phase 'train' after epoch {saved} of 5" in job.output
    assert (chief.ml / "model" / "model.keras").exists()


def test_sklearn_trains_on_the_first_host_while_the_others_idle(
    digits: Path, tmp_path: Path
) -> None:
    root = tmp_path / "cluster"
    first, second = finish(
        start_cluster("svm", {"train": digits / "train"}, root, {"image_size": "32"}), root
    )
    assert first.returncode == 0 and second.returncode == 0, (
        first.output[-2000:] + second.output[-2000:]
    )
    assert first.metadata["algorithm"] == "svm"
    assert "Host algo-2 idles: svm trains on one host, algo-1" in second.output
    assert list((second.ml / "model").iterdir()) == []
    assert second.metrics() == {}


def test_tf_config_from_the_resource_config(tmp_path: Path) -> None:
    ml = tmp_path / "opt" / "ml"
    (ml / "input/config").mkdir(parents=True)
    (ml / "input/config/resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2", "algo-3"]})
    )
    cluster = distributed.plan(
        contract.load({"SAGEMAKER_BASE_DIR": str(ml)}),
        hyperparameters.parse({"algorithm": "cnn", "distributed_port": "9999"}),
    )
    assert (cluster.worker_index, cluster.worker_count, cluster.is_chief) == (1, 3, False)
    network = {"algo-1": "10.0.0.1", "algo-2": "10.0.0.2", "algo-3": "10.0.0.3"}
    assert distributed.tf_config_for(cluster, {}, resolve=network.__getitem__) == {
        "cluster": {"worker": ["algo-1:9999", "algo-2:9999", "algo-3:9999"]},
        "task": {"type": "worker", "index": 1},
    }


def test_a_tf_config_in_the_environment_describes_the_cluster_when_it_fits() -> None:
    cluster = distributed.Cluster(("algo-1", "algo-2"), "algo-2", 1, 2, 8890)
    given = {
        "cluster": {"worker": ["10.1.0.7:2222", "10.1.0.8:2222"]},
        "task": {"type": "worker", "index": 1},
    }

    def unreachable(host: str) -> str:
        raise AssertionError(f"resolved {host} although TF_CONFIG names the workers")

    environ = {"TF_CONFIG": json.dumps(given)}
    assert distributed.tf_config_for(cluster, environ, resolve=unreachable) == given


def _tf_config(workers: dict[str, list[str]], task_type: str, index: int) -> str:
    return json.dumps({"cluster": workers, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize(
    "tf_config, words",
    [
        ("{cluster", "is not JSON"),
        (
            _tf_config({"worker": ["a:1"]}, "worker", 0),
            "names 1 worker(s) but the job has 2 hosts (algo-1, algo-2)",
        ),
        (
            _tf_config({"worker": ["a:1", "b:1"]}, "worker", 0),
            "gives this host task index 0, but algo-2 is host 2 of 2 (index 1)",
        ),
        (
            _tf_config({"chief": ["a:1"], "worker": ["b:1"]}, "worker", 1),
            "needs a 'worker' list and a worker task alone",
        ),
    ],
    ids=["not-json", "worker-count", "task-index", "chief"],
)
def test_a_tf_config_that_contradicts_the_hosts_is_refused(tf_config: str, words: str) -> None:
    cluster = distributed.Cluster(("algo-1", "algo-2"), "algo-2", 1, 2, 8890)
    with pytest.raises(distributed.ClusterError) as refused:
        distributed.tf_config_for(cluster, {"TF_CONFIG": tf_config})
    assert "TF_CONFIG" in str(refused.value) and words in str(refused.value)


def test_unresolvable_hosts_fail_after_a_bounded_wait() -> None:
    cluster = distributed.Cluster(("algo-1", "algo-2"), "algo-1", 0, 2, 8890)
    attempts: list[float] = []

    def not_yet(host: str) -> str:
        attempts.append(time.monotonic())
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: Name or service not known")

    started = time.monotonic()
    with pytest.raises(distributed.ClusterError, match=r"Host algo-1 did not resolve within 2 s"):
        distributed.worker_addresses(cluster, timeout_s=2, resolve=not_yet)
    gave_up = time.monotonic()
    # It retried, waiting 0.5 s, then twice as long each time...
    waits = [later - earlier for earlier, later in zip(attempts, attempts[1:])]
    assert waits and all(wait >= 0.5 * 2**i for i, wait in enumerate(waits)), waits
    assert attempts[-1] <= started + 2  # ...tried no more after the deadline...
    assert gave_up + 0.5 * 2 ** len(waits) > started + 2  # ...nor gave up while a wait fit
