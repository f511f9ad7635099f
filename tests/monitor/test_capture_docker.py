"""Capture in the Docker local target: the restricted container (arbitrary uid in group 0, read-only
root) appends to the spool folder mounted read-write, and Workbench ingests what it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_docker import docker_client  # noqa: F401  (fixture)
from tests.monitor.conftest import rows_request
from workbench.core.workspace import Workspace
from workbench.deploy.types import ModelRef

pytestmark = pytest.mark.slow


def test_a_container_replica_spools_its_answers(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path,
    docker_client: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "docker")
    ws.deployments.deploy(iris_models[1], name="iris", timeout=120)
    try:
        for n in range(3):
            ws.deployments.predict("iris", rows_request([[6.7, 3.0, 5.2, 2.3]], request_id=f"d{n}"))
    finally:
        ws.deployments.undeploy("iris")
    assert ws.predictions.ingest().added == 3
    assert [(r.request_id, r.output) for r in ws.predictions.query("iris", newest_first=False)] == [
        ("d0", 2), ("d1", 2), ("d2", 2)]
