"""The cluster a job runs on, and the TensorFlow strategy that spans it.

SageMaker describes the hosts in resourceconfig.json (and SM_HOSTS / SM_CURRENT_HOST).
One host: the default strategy, or MirroredStrategy when it has several GPUs. Several
hosts: MultiWorkerMirroredStrategy for cnn and resnet50 with TF_CONFIG built from the
host list on a fixed port; svm and rf train on the first host while the others idle.

A TF_CONFIG already in the environment describes the cluster instead, as TensorFlow
defines it: whoever set it (a Kubernetes operator, or several workers on one machine,
which need a port each where a host list has one for all) knows the workers' addresses.
It must agree with the host list on the number of workers and on this worker's index.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from smvision.core.contract import Contract
from smvision.schema.hyperparameters import Hyperparameters
from smvision.training import watchdog

log = logging.getLogger(__name__)

TF_CONFIG_ENV = "TF_CONFIG"
RESOLVE_TIMEOUT_S = 300.0
# The distributed_timeout default, for a cluster whose algorithm has no such hyperparameter.
JOIN_TIMEOUT_S = 900.0


class ClusterError(RuntimeError):
    """A cluster the job cannot run on (unresolvable hosts, bad host list)."""


@dataclass(frozen=True)
class Cluster:
    hosts: tuple[str, ...]
    current_host: str
    worker_index: int
    worker_count: int
    port: int
    idle_reason: str | None = None
    # How long this host waits for the others to join the training cluster.
    join_timeout_s: float = JOIN_TIMEOUT_S

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0


def plan(contract: Contract, hp: Hyperparameters) -> Cluster:
    """Who trains on this host, from the resource config and the algorithm."""
    resources = contract.resource_config()
    hosts, current = resources.hosts, resources.current_host
    spans_hosts = hp.spec.spans_hosts
    port = hp.integer("distributed_port") if spans_hosts else 0
    if len(hosts) == 1:
        return Cluster(hosts, current, 0, 1, port)
    if not spans_hosts:
        if resources.is_first_host:
            log.info(
                "%d hosts: %s trains on %s alone (it does not spread one model over "
                "hosts); the others idle.",
                len(hosts),
                hp.algorithm,
                current,
            )
            return Cluster(hosts, current, 0, 1, port)
        reason = (
            f"Host {current} idles: {hp.algorithm} trains on one host, {hosts[0]}, which "
            f"writes the model; use --instance-count 1 for {hp.algorithm} to avoid paying "
            "for idle hosts."
        )
        return Cluster(hosts, current, resources.host_index, 1, port, idle_reason=reason)
    timeout = float(str(hp.values.get("distributed_timeout", JOIN_TIMEOUT_S)))
    return Cluster(hosts, current, resources.host_index, len(hosts), port, None, timeout)


def joined_within(cluster: Cluster, failure_file: Path) -> AbstractContextManager[None]:
    """End the job, with a sentence in `failure_file`, unless the block (the creation of
    the multi-worker strategy, which waits for every host) ends within the cluster's join
    timeout: TensorFlow's own wait has no end (watchdog.py)."""
    others = [host for host in cluster.hosts if host != cluster.current_host]
    message = (
        f"Host {cluster.current_host} waited {cluster.join_timeout_s:.0f} s for the other "
        f"hosts ({', '.join(others)}) to join the training cluster on port "
        f"{cluster.port or 'of TF_CONFIG'}, and not all did; check that every instance "
        "started and that the port is open between them, or raise distributed_timeout."
    )
    return watchdog.deadline(cluster.join_timeout_s, failure_file, message)


def tf_config(cluster: Cluster, addresses: list[str]) -> dict[str, Any]:
    return {
        "cluster": {"worker": addresses},
        "task": {"type": "worker", "index": cluster.worker_index},
    }


def tf_config_for(
    cluster: Cluster,
    environ: Mapping[str, str] | None = None,
    resolve: Callable[[str], str] = socket.gethostbyname,
    timeout_s: float = RESOLVE_TIMEOUT_S,
) -> dict[str, Any]:
    """This worker's TF_CONFIG: the environment's own if it has one, else from the hosts."""
    env = os.environ if environ is None else environ
    given = env.get(TF_CONFIG_ENV, "").strip()
    if given:
        return _checked_tf_config(given, cluster)
    return tf_config(cluster, worker_addresses(cluster, timeout_s, resolve))


def _checked_tf_config(raw: str, cluster: Cluster) -> dict[str, Any]:
    fix = f"unset {TF_CONFIG_ENV} (smvision builds it from the hosts) or correct it"
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ClusterError(
            f"{TF_CONFIG_ENV} in the environment is not JSON ({error}); {fix}."
        ) from error
    spec = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    workers = spec.get("worker") if isinstance(spec, dict) else None
    if not (
        isinstance(spec, dict)
        and set(spec) == {"worker"}
        and isinstance(workers, list)
        and isinstance(task, dict)
        and task.get("type") == "worker"
    ):
        raise ClusterError(
            f"{TF_CONFIG_ENV} in the environment has value {raw!r}; it needs a 'worker' list "
            f"and a worker task alone, as smvision trains on workers only; {fix}."
        )
    if len(workers) != cluster.worker_count:
        raise ClusterError(
            f"{TF_CONFIG_ENV} in the environment names {len(workers)} worker(s) but the job has "
            f"{cluster.worker_count} hosts ({', '.join(cluster.hosts)}); {fix}."
        )
    if task.get("index") != cluster.worker_index:
        raise ClusterError(
            f"{TF_CONFIG_ENV} in the environment gives this host task index "
            f"{task.get('index')!r}, but {cluster.current_host} is host "
            f"{cluster.worker_index + 1} of {cluster.worker_count} (index "
            f"{cluster.worker_index}); {fix}."
        )
    return cast(dict[str, Any], config)


def worker_addresses(
    cluster: Cluster,
    timeout_s: float = RESOLVE_TIMEOUT_S,
    resolve: Callable[[str], str] = socket.gethostbyname,
) -> list[str]:
    """host:port for every worker, retrying name resolution while the cluster boots."""
    deadline = time.monotonic() + timeout_s
    addresses = []
    for host in cluster.hosts:
        delay = 0.5
        while True:
            try:
                resolve(host)
                break
            except OSError as error:
                if time.monotonic() + delay > deadline:
                    raise ClusterError(
                        f"Host {host} did not resolve within {timeout_s:.0f} s ({error}); "
                        "SageMaker names hosts algo-1, algo-2, ... and they resolve only "
                        "inside a training job or a network that defines them."
                    ) from error
                log.info("Waiting for host %s to resolve (%s)", host, error)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        addresses.append(f"{host}:{cluster.port}")
    return addresses


def create_strategy(cluster: Cluster) -> Any:
    """The tf.distribute strategy for this host; call before any other TensorFlow op."""
    import tensorflow as tf

    if cluster.worker_count > 1:
        os.environ[TF_CONFIG_ENV] = json.dumps(tf_config_for(cluster))
        log.info("Multi-worker training: TF_CONFIG=%s", os.environ[TF_CONFIG_ENV])
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("%d GPUs: MirroredStrategy over %s", len(gpus), [g.name for g in gpus])
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
