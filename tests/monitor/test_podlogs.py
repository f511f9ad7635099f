"""The cluster path: a real MLServer with capture and no spool prints marked lines on stdout; served as
pod logs by the Kubernetes API-server double, they are collected from line offsets, exactly once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.executors.kube_double import KubeDouble
from tests.monitor.conftest import rows_request
from workbench.core.workspace import Workspace
from workbench.deploy import local, serving
from workbench.deploy.capture import MARKER
from workbench.deploy.types import DeploySpec, ModelRef

pytestmark = pytest.mark.slow
NS = "ml"


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeDouble]:
    double = KubeDouble(tmp_path / "cluster")
    monkeypatch.setenv("KUBECONFIG", str(double.kubeconfig(tmp_path / "kubeconfig", NS)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    double.emulator.resources["apps/v1/deployments"] = {}
    yield double
    double.close()


def _pod_stdout(ws: Workspace, model: ModelRef, venv: Path, tmp_path: Path, requests: int) -> list[bytes]:
    """What a serving pod prints: run the real server with the capture runtime and no spool folder."""
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copyfile(ws.root / model.path, folder / model.filename)
    runtime = serving.runtime_for("sklearn")
    serving.write_model_folder(folder, "iris", model.version, model.filename, runtime, revision=1,
                               log_rate=1.0)
    replica = local.start_replica(name="iris", index=0, revision=1, model_dir=folder, venv=venv,
                                  state_dir=tmp_path / "state", mode="process", labels={})
    try:
        local.wait_ready("iris", [replica], 120, "sklearn", None)
        for n in range(requests):
            status, _ = local.http_json(f"{replica.url}/v2/models/iris/infer",
                                        rows_request([[5.1, 3.5, 1.4, 0.2 + n / 10]], request_id=f"c{n}"))
            assert status == 200
        status, _ = local.http_json(f"{replica.url}/v2/models/iris/infer", rows_request([[1.0, 2.0]], "bad"))
        assert status == 400
    finally:
        local.stop_replica(replica)
    return Path(replica.log).read_bytes().splitlines()


def test_pod_log_lines_are_ingested_from_offsets(
    ws: Workspace, kube: KubeDouble, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, tmp_path: Path
) -> None:
    lines = _pod_stdout(ws, iris_models[1], serve_venv, tmp_path, requests=6)
    marked = [ln for ln in lines if ln.startswith(MARKER.encode())]
    assert len(marked) == 7 and len(lines) > len(marked)  # MLServer's own log lines are there too
    spec = DeploySpec(name="iris", target="kubernetes", model=iris_models[1], namespace=NS)
    ws.deployments.records.record(spec, 1, "deploy", [])
    ws.deployments.records.finish("iris", 1, state="available", message="", result="available")
    labels = {"app.kubernetes.io/name": "iris"}
    kube.http("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "iris", "namespace": NS},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}}}})
    for pod in ("iris-a", "iris-b"):
        kube.http("POST", f"/api/v1/namespaces/{NS}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": NS, "labels": labels}})
    half = len(lines) // 2
    for line in lines[:half]:
        kube.log("iris-a", line)
    first = ws.predictions.ingest("iris")
    assert not first.errors, first.errors
    expected_first = sum(1 for ln in lines[:half] if ln.startswith(MARKER.encode()))
    assert first.added == expected_first
    for line in lines[half:]:
        kube.log("iris-a", line)
    kube.log("iris-b", marked[0])  # the same answer seen twice (a copied log) is stored once
    second = ws.predictions.ingest("iris")
    assert second.added == 7 - expected_first
    assert ws.predictions.ingest("iris").added == 0
    rows = ws.predictions.query("iris", newest_first=False)
    assert [r.request_id for r in rows if r.status == "ok"] == [f"c{n}" for n in range(6)]
    [bad] = [r for r in rows if r.status == "error"]
    assert bad.error == "expects 4 features, got 2"
    sources = dict(ws.db.execute("SELECT source, consumed FROM prediction_sources").fetchall())
    assert sources == {f"pod:{NS}/iris-a": len(lines), f"pod:{NS}/iris-b": 1}
