"""The whole loop for real: train with a tracked run, deploy, answer traffic, notice drift.

A plain scikit-learn script reads ``data/train.csv`` and writes ``model.joblib`` under
``ws.runs.execute``; registering the model fixes its reference profile from that CSV (the
registration hook the Workspace wires into tracking). The version is deployed on the local target
(a real MLServer behind the front door, capture on), a client sends in-distribution rows and then rows
with one feature shifted, and ``workbench monitor --json`` (the real CLI process) reads the captured
predictions back: ``ok`` first, then that one feature ``drifting`` while the others stay ``ok``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_workbench
from tests.monitor.conftest import rows_request
from workbench.core.workspace import Workspace

pytestmark = pytest.mark.slow

TRAIN = """\
import csv, joblib
from sklearn.linear_model import LogisticRegression
with open("data/train.csv") as f:
    rows = list(csv.reader(f))[1:]
x = [[float(v) for v in r[:4]] for r in rows]
y = [int(r[4]) for r in rows]
joblib.dump(LogisticRegression(max_iter=500).fit(x, y), "model.joblib")
"""
FEATURES = 4


def _traffic(ws: Workspace, rng: np.random.Generator, count: int, shift: int | None = None) -> None:
    """``count`` rows in requests of 50, drawn like the training data (feature ``shift`` moved 3 sd)."""
    for _ in range(count // 50):
        rows = rng.normal(size=(50, FEATURES))
        if shift is not None:
            rows[:, shift] += 3.0
        answer = ws.deployments.predict("clf", rows_request(rows.round(4).tolist()))
        assert len(answer["outputs"][0]["data"]) == 50


def _monitor(root: Path) -> dict[str, object]:
    res = run_workbench(root, "monitor", "clf", "--window", "500", "--json",
                        env={"WORKBENCH_LOCAL_RUNTIME": "process"})
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    report: dict[str, object] = data[0] if isinstance(data, list) else data
    return report


def test_train_deploy_serve_and_drift_is_noticed(
    ws: Workspace, serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    rng = np.random.default_rng(3)
    train = rng.normal(size=(2000, FEATURES))
    labels = (train[:, 0] + train[:, 1] > 0).astype(int)
    (ws.root / "data").mkdir()
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.5f}" for v in row) + f",{lab}"
                                 for row, lab in zip(train, labels, strict=True)]
    (ws.root / "data" / "train.csv").write_text("\n".join(lines) + "\n")
    (ws.root / "train.py").write_text(TRAIN)
    run = ws.runs.execute([sys.executable, "train.py"])
    assert run.status == "succeeded", run.reason
    (model,) = ws.runs.models()
    profile = ws.db.execute("SELECT source FROM monitor_profiles WHERE model = ?", (model.name,)).fetchone()
    assert profile is not None and "data/train.csv" in profile[0]  # fixed when the run registered it

    ws.deployments.deploy(f"{model.name}:{model.latest_version}", name="clf", replicas=1, timeout=180)
    try:
        _traffic(ws, rng, 500)
        calm = _monitor(ws.root)
        assert calm["state"] == "ok", calm
        assert {f["state"] for f in calm["features"]} == {"ok"}  # type: ignore[union-attr]

        _traffic(ws, rng, 500, shift=2)
        shifted = _monitor(ws.root)
        states = {f["name"]: f["state"] for f in shifted["features"]}  # type: ignore[union-attr]
        assert shifted["state"] == "drifting", shifted
        assert states.pop("f2", states.pop("c", None)) == "drifting", states
        assert set(states.values()) <= {"ok", "warning"} and "drifting" not in [
            states.get(k) for k in ("f0", "f1", "f3", "a", "b", "d")]
        stored = ws.db.execute("SELECT COUNT(*) FROM predictions WHERE deployment = 'clf'").fetchone()[0]
        assert stored == 1000  # every answered row, counted back
    finally:
        ws.deployments.undeploy("clf")
