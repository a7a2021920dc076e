"""`serve`: what `docker run IMAGE serve` runs on an endpoint or in batch transform.

A gunicorn master on 0.0.0.0:${SAGEMAKER_BIND_TO_PORT:-8080} supervises uvicorn workers
that each run the ASGI app of `smvision.serving.app` over the model in /opt/ml/model
(SAGEMAKER_BASE_DIR honoured). SIGTERM stops accepting, lets in-flight requests finish
and exits within 30 s. The settings come from `smvision.serving.settings`, which reads
SAGEMAKER_MODEL_SERVER_WORKERS, SAGEMAKER_MODEL_SERVER_TIMEOUT and
SAGEMAKER_MAX_PAYLOAD_IN_MB through `smvision.core.contract`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.errors import HaltServer
from uvicorn_worker import UvicornWorker

from smvision.core import contract as contract_module
from smvision.core.contract import ContractError
from smvision.core.logs import configure_logging
from smvision.serving.app import BATCHER_STOP_S, ServingApp
from smvision.serving.settings import (
    GRACEFUL_SHUTDOWN_S,
    KEEPALIVE_S,
    ModelDirectoryError,
    ServerSettings,
    settings_from,
)

log = logging.getLogger("smvision.serve")

SHARED_MEMORY_DIR = Path("/dev/shm")


class Worker(UvicornWorker):  # type: ignore[misc]
    """uvicorn under gunicorn, on uvloop and httptools (pinned in base.txt).

    Named, not "auto", so a missing one fails loudly instead of falling back to the pure
    Python parser: that fallback measured 192 against 336 requests/s (svm, 8 clients)."""

    CONFIG_KWARGS = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "ws": "none",
        "server_header": False,
        # Requests still running this long after SIGTERM (a model load stuck in its files,
        # a long asynchronous request) are cancelled, so the lifespan shutdown stops the
        # models before gunicorn's SIGKILL at GRACEFUL_SHUTDOWN_S; uvicorn would wait forever.
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S - BATCHER_STOP_S - 2,
    }


class ServeApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn configured in code: no config file, no command line of its own."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            self.cfg.set(key, value)

    def load(self) -> ServingApp:
        return ServingApp(self.settings)


def gunicorn_options(settings: ServerSettings) -> dict[str, Any]:
    return {
        "bind": [f"0.0.0.0:{settings.port}"],
        "workers": settings.workers,
        "worker_class": Worker,
        "timeout": settings.heartbeat_timeout_s,
        "graceful_timeout": GRACEFUL_SHUTDOWN_S,
        "keepalive": KEEPALIVE_S,
        # Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
        # connections over them. On one shared socket the first worker to wake accepted every
        # waiting connection, and keep-alive kept them there: in 4 of 12 runs of 8 clients one
        # svm worker did all the work while the other idled (bench/NOTES.md).
        "reuse_port": True,
        "errorlog": "-",
        "accesslog": None,
        "loglevel": "info",
        "proc_name": "smvision-serve",
        "control_socket_disable": True,  # gunicorn would otherwise create ~/.gunicorn/gunicorn.ctl
        # The heartbeat file is touched every few seconds; keep it off the container's
        # overlay file system where that can stall. Else tempfile's directory ($TMPDIR,
        # /tmp): a serverless container may have nothing else writable.
        "worker_tmp_dir": str(SHARED_MEMORY_DIR) if _writable(SHARED_MEMORY_DIR) else None,
    }


def _writable(directory: Path) -> bool:
    return directory.is_dir() and os.access(directory, os.W_OK)


def port_taken(port: int) -> OSError | None:
    """Why the port cannot be bound, if something listens on it already.

    With a socket per worker, gunicorn's master binds nothing: without this check a port
    in use would make each worker fail and be restarted forever, and a second `serve`
    (SO_REUSEPORT too) would silently share the port with the first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            return error
    return None


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    if argv is None:
        argv = sys.argv[1:]
    if argv:
        print(
            f"serve takes no arguments (got {' '.join(argv)}); it reads SAGEMAKER_* variables.",
            file=sys.stderr,
        )
        return 2
    try:
        settings = settings_from(contract_module.load())
    except (ContractError, ModelDirectoryError) as error:
        log.error("%s", error)
        return 2
    taken = port_taken(settings.port)
    if taken is not None:
        log.error(
            "Port %d is not free (%s); stop what listens there or set SAGEMAKER_BIND_TO_PORT.",
            settings.port,
            taken.strerror,
        )
        return 1
    log.info(
        "Serving %s on port %d: %d worker(s) of %d decoding thread(s), timeout %g s, "
        "payload limit %g MB.",
        (
            f"the models SageMaker loads into {settings.model_dir} (multi-model)"
            if settings.multi_model
            else f"the {settings.algorithm} model in {settings.model_dir} "
            f"({settings.model.describe()})"
        ),
        settings.port,
        settings.workers,
        settings.threads_per_worker,
        settings.timeout_s,
        settings.max_payload_mb,
    )
    try:
        ServeApplication(settings).run()
    except HaltServer as halt:  # gunicorn lets this out when a second worker fails while it halts
        log.error("serve stopped: %s", halt.reason)
        return int(halt.exit_status)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
