"""The local target for real: MLServer processes serving scikit-learn models trained here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import REQUEST, answers
from workbench.core.workspace import Workspace
from workbench.deploy import local
from workbench.deploy.types import ModelRef
from workbench.errors import DeployError, UnknownIdError

pytestmark = pytest.mark.slow


def test_deploy_predict_scale_metrics_rollback_undeploy(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    v1, v2 = iris_models
    dep = ws.deployments
    info = dep.deploy(v1, name="iris", replicas=1)
    try:
        assert (info.state, info.ready, info.replicas, info.revision) == ("available", 1, 1, 1)
        assert answers(dep.predict("iris", REQUEST)) == [0, 0]

        info = dep.deploy(v2, name="iris")
        assert (info.version, info.revision) == ("2", 2)
        assert answers(dep.predict("iris", REQUEST)) == [0, 2]
        # The model folder the server reads is read-only.
        folder = ws.paths.store_dir / "deploy" / "iris" / "r2"
        assert not (folder.stat().st_mode & 0o222)

        info = dep.scale("iris", 2)
        assert (info.replicas, info.ready, len(info.endpoints)) == (2, 2, 2)
        assert len(set(info.endpoints)) == 2
        dep.metrics("iris")
        for _ in range(6):  # round-robin: both replicas answer
            assert answers(dep.predict("iris", REQUEST)) == [0, 2]
        snap = dep.metrics("iris")
        assert snap.replicas_scraped == 2
        assert snap.requests_total >= 7
        assert snap.request_rate is not None and snap.request_rate > 0
        assert snap.latency_p50 is not None and 0 < snap.latency_p50 < 5
        assert snap.error_rate == 0

        info = dep.rollback("iris")
        assert (info.version, info.replicas, info.ready) == ("1", 2, 2)
        assert answers(dep.predict("iris", REQUEST)) == [0, 0]
        actions = [(r.revision, r.action, r.version, r.result) for r in dep.history("iris")]
        assert actions == [
            (1, "deploy", "1", "available"),
            (2, "deploy", "2", "available"),
            (3, "scale", "2", "available"),
            (4, "rollback", "1", "available"),
        ]
        listed = dep.list()
        assert [d.name for d in listed] == ["iris"] and listed[0].to_json()["ready"] == 2
    finally:
        replicas = [local.Replica.from_json(r) for r in _runtime(ws)["replicas"]]
        dep.undeploy("iris")
    assert not any(local.alive(r) for r in replicas)
    assert dep.list() == []
    with pytest.raises(UnknownIdError):
        dep.predict("iris", REQUEST)


def test_unloadable_model_names_the_framework_version(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    bad = ws.root / "bad.joblib"
    bad.write_bytes(b"this is not a pickle")
    from tests.deploy.conftest import register_file

    ref = register_file(ws, bad, "broken", "1")
    with pytest.raises(DeployError) as err:
        ws.deployments.deploy(ref, timeout=60)
    assert f"saved with sklearn {ref.framework_version}" in err.value.one_line()
    (row,) = ws.deployments.list()
    assert row.state == "failed" and row.ready == 0
    assert ws.deployments.history("broken")[0].result == "failed"
    # A failed new revision leaves the old one serving.
    v1, _ = iris_models
    ws.deployments.deploy(v1, name="keep")
    try:
        bad_v2 = ModelRef(**{**ref.__dict__, "name": "iris"})
        with pytest.raises(DeployError):
            ws.deployments.deploy(bad_v2, name="keep", timeout=60)
        info = ws.deployments.get("keep")
        assert (info.version, info.ready, info.state) == ("1", 1, "degraded")
        assert answers(ws.deployments.predict("keep", REQUEST)) == [0, 0]
    finally:
        ws.deployments.undeploy("keep")


def _runtime(ws: Workspace) -> dict[str, list[dict[str, object]]]:
    import json

    row = ws.db.execute("SELECT runtime FROM deployments WHERE name='iris'").fetchone()
    data: dict[str, list[dict[str, object]]] = json.loads(row[0])
    return data
