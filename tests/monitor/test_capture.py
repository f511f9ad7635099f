"""Capture on a real local deployment: every answered row is spooled, then stored once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.monitor.conftest import rows_request
from workbench.core.workspace import Workspace
from workbench.deploy.capture import ROTATE_ENV
from workbench.deploy.types import ModelRef
from workbench.errors import DeployError

pytestmark = pytest.mark.slow

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]


def test_every_answer_is_recorded_and_wrong_shapes_are_errors(ws: Workspace, iris_deployment: str) -> None:
    dep = ws.deployments
    answer = dep.predict(iris_deployment, rows_request([SETOSA, VIRGINICA], request_id="req-1"))
    assert answer["id"] == "req-1"
    with pytest.raises(DeployError, match="expects 4 features, got 3"):
        dep.predict(iris_deployment, rows_request([[5.1, 3.5, 1.4]], request_id="bad-1"))
    spool = ws.paths.monitor_spool / iris_deployment / "r1-0.jsonl"
    lines = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [(r["request_id"], r["row_index"], r["status"]) for r in lines] == [
        ("req-1", 0, "ok"), ("req-1", 1, "ok"), ("bad-1", 0, "error")]
    assert lines[0]["features"] == {"f0": 5.1, "f1": 3.5, "f2": 1.4, "f3": 0.2}
    assert (lines[0]["output"], lines[1]["output"]) == (0, 2)
    assert (lines[0]["deployment"], lines[0]["revision"], lines[0]["model"], lines[0]["version"]) == (
        "iris", 1, "iris", "2")
    assert lines[0]["latency_ms"] > 0

    report = ws.predictions.ingest()
    assert (report.added, report.lines) == (3, 3)
    assert ws.predictions.ingest().added == 0  # from the offset: nothing twice
    rows = ws.predictions.query(iris_deployment, newest_first=False)
    assert [(r.request_id, r.row_index, r.status, r.output) for r in rows] == [
        ("req-1", 0, "ok", 0), ("req-1", 1, "ok", 2), ("bad-1", 0, "error", None)]
    assert rows[2].error == "expects 4 features, got 3"
    assert rows[0].version == 2 and rows[0].features["f3"] == 0.2
    errors = ws.predictions.query(iris_deployment, where="status == error")
    assert [r.request_id for r in errors] == ["bad-1"]
    assert [r.row_index for r in ws.predictions.query(iris_deployment, where="f0 > 6")] == [1]
    counts = ws.predictions.counts(["iris"])["iris"]
    assert (counts.predictions, counts.errors) == (3, 1)


def test_spool_files_rotate_and_are_deleted_once_read(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    monkeypatch.setenv(ROTATE_ENV, "1500")  # a new file every five requests or so
    ws.deployments.deploy(iris_models[1], name="small", timeout=120)
    try:
        for n in range(20):
            ws.deployments.predict("small", rows_request([SETOSA], request_id=f"s{n}"))
        folder = ws.paths.monitor_spool / "small"
        assert len(list(folder.glob("*.jsonl"))) >= 3
        assert ws.predictions.ingest().added == 20
        [left] = list(folder.glob("*.jsonl"))  # only the file the server still writes to
        assert left.name.startswith("r1-0.")
        for n in range(20, 25):
            ws.deployments.predict("small", rows_request([SETOSA], request_id=f"s{n}"))
        assert ws.predictions.ingest().added == 5
    finally:
        ws.deployments.undeploy("small")
    ids = sorted(int(r.request_id[1:]) for r in ws.predictions.query("small"))
    assert ids == list(range(25))
