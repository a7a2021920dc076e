"""A running multi-model server's /models API, and models laid out as SageMaker unpacks
them under /opt/ml/models (the server tier's multi-model tests)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.server_process import RunningServer, resident_mib

MULTI_MODEL = {"SAGEMAKER_MULTI_MODEL": "true"}
HTTP_TIMEOUT = httpx.Timeout(300.0)


class Models:
    """The model API of one running multi-model server."""

    def __init__(
        self,
        server: RunningServer,
        root: Path,
        gate: Path | None = None,
        batches: Path | None = None,
        predict_gate: Path | None = None,
    ) -> None:
        self.server = server
        self.root = root  # the server's /opt/ml/models
        self.client = httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT)
        # GatedSVM's load gate and batch log, where the server has them.
        self.gate = gate
        self.batches = batches
        self.predict_gate = predict_gate

    def url(self, folder: str) -> str:
        return str(self.root / folder / "model")

    def load(self, name: str, folder: str | None = None, url: str | None = None) -> httpx.Response:
        return self.client.post(
            "/models", json={"model_name": name, "url": url or self.url(folder or name)}
        )

    def invoke(
        self,
        name: str,
        body: bytes | Iterator[bytes],
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.client.post(
            f"/models/{name}/invoke",
            content=body,
            headers={"Content-Type": content_type, **(headers or {})},
        )

    def listed(self, **params: str) -> dict[str, Any]:
        response = self.client.get("/models", params=params)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    def unload(self, name: str) -> httpx.Response:
        return self.client.delete(f"/models/{name}")

    def worker_resident_mib(self) -> float:
        (worker,) = self.server.worker_pids()
        return resident_mib(worker)


def lay_out_models(root: Path, models: dict[str, Path]) -> Path:
    """/opt/ml/models/NAME/model for each model, as SageMaker unpacks a model.tar.gz."""
    for name, model_dir in models.items():
        shutil.copytree(model_dir, root / name / "model")
    return root
