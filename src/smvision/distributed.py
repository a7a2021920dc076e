"""The cluster a job runs on, and the TensorFlow strategy that spans it.

SageMaker describes the hosts in resourceconfig.json (and SM_HOSTS / SM_CURRENT_HOST).
One host: the default strategy, or MirroredStrategy when it has several GPUs. Several
hosts: MultiWorkerMirroredStrategy for cnn and resnet50 with TF_CONFIG built from the
host list on a fixed port; svm and rf train on the first host while the others idle.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from smvision.contract import Contract
from smvision.hyperparameters import Hyperparameters

log = logging.getLogger(__name__)

# Tests run several workers as processes on one machine, where SageMaker's host names
# (algo-1, algo-2) do not resolve; they map each host to an address:port here. Used
# only by tests: a real job never sets it.
TEST_ADDRESSES_ENV = "SMVISION_TEST_HOST_ADDRESSES"
RESOLVE_TIMEOUT_S = 300.0


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
    return Cluster(hosts, current, resources.host_index, len(hosts), port)


def tf_config(cluster: Cluster, addresses: list[str]) -> dict[str, Any]:
    return {
        "cluster": {"worker": addresses},
        "task": {"type": "worker", "index": cluster.worker_index},
    }


def worker_addresses(
    cluster: Cluster,
    environ: Mapping[str, str] | None = None,
    timeout_s: float = RESOLVE_TIMEOUT_S,
    resolve: Callable[[str], str] = socket.gethostbyname,
) -> list[str]:
    """host:port for every worker, retrying name resolution while the cluster boots."""
    env = os.environ if environ is None else environ
    override = env.get(TEST_ADDRESSES_ENV)
    if override:
        mapping = json.loads(override)
        return [str(mapping[host]) for host in cluster.hosts]
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
        config = tf_config(cluster, worker_addresses(cluster))
        os.environ["TF_CONFIG"] = json.dumps(config)
        log.info("Multi-worker training: TF_CONFIG=%s", os.environ["TF_CONFIG"])
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("%d GPUs: MirroredStrategy over %s", len(gpus), [g.name for g in gpus])
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
