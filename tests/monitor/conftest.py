"""Fixtures for the monitoring tests: a real local MLServer deployment of an iris classifier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import iris_models, serve_venv  # noqa: F401  (fixtures)
from workbench.core.workspace import Workspace
from workbench.deploy.types import ModelRef


def rows_request(rows: list[list[float]], request_id: str | None = None) -> dict[str, object]:
    """A V2 request for a batch of rows (FP64)."""
    body: dict[str, object] = {
        "inputs": [{"name": "x", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                    "data": [v for row in rows for v in row]}]
    }
    if request_id:
        body["id"] = request_id
    return body


@pytest.fixture
def iris_deployment(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """``iris`` (the real classifier, version 2) served by one MLServer process with capture on."""
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    ws.deployments.deploy(iris_models[1], name="iris", replicas=1, timeout=120)
    try:
        yield "iris"
    finally:
        ws.deployments.undeploy("iris")
