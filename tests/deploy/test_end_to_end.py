"""The whole loop as a user types it: train with ``workbench run``, deploy, predict, scale, roll back.

Every step is the real ``workbench`` CLI in its own process. The training script is an ordinary
scikit-learn script (argparse + ``joblib.dump``) that knows nothing about Workbench: the model
registry picks the ``.joblib`` output up, the deploy resolves it through the registry and serves it
with MLServer from the serving venv (built once per session by the ``serve_venv`` fixture, which is
the same cached venv the CLI finds). Replicas run as plain processes here; the Docker mode (uid
1000770000:0, read-only root and model folder) has its own test in ``test_docker.py``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_workbench

pytestmark = pytest.mark.slow

TRAIN = '''\
import argparse

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, default=1.0)
args = parser.parse_args()
x, y = load_iris(return_X_y=True)
model = LogisticRegression(C=args.C, max_iter=1000).fit(x, y)
print(f"accuracy: {model.score(x, y):.4f}")
joblib.dump(model, "model.joblib")
'''

# Four flowers: a heavily regularised model (C=0.001) and a loose one (C=10) disagree on the third.
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.0, 2.2, 5.0, 1.5]]
ENV = {"WORKBENCH_LOCAL_RUNTIME": "process"}


def wb(cwd: Path, *argv: str, timeout: float = 300) -> str:
    """Run ``workbench ARGV`` in ``cwd``; fail the test with its stderr unless it exits 0."""
    res = run_workbench(cwd, *argv, timeout=timeout, env=ENV)
    assert res.returncode == 0, f"workbench {' '.join(argv)} exited {res.returncode}:\n{res.stderr}"
    return res.stdout


def wb_json(cwd: Path, *argv: str) -> Any:
    return json.loads(wb(cwd, *argv, "--json"))


def predict(cwd: Path) -> list[int]:
    body = json.loads(wb(cwd, "predict", "iris", "request.json", "--json"))
    assert body["model_name"] == "iris"
    return [int(v) for v in body["outputs"][0]["data"]]


def local_answers(path: Path) -> list[int]:
    """What the trained file itself answers, loaded in this process (same scikit-learn)."""
    import joblib

    return [int(v) for v in joblib.load(path).predict(ROWS)]


def train(project: Path, c: float) -> tuple[dict[str, Any], list[int]]:
    """``workbench run -- python train.py --C c``; the model version it registered and its answers."""
    run = json.loads(wb(project, "run", "--json", "--", sys.executable, "train.py", "--C", str(c)))
    assert (run["status"], run["params"], list(run["metrics"])) == ("succeeded", {"C": c}, ["accuracy"])
    (model,) = wb_json(project, "show", run["id"])["models"]
    return model, local_answers(project / "model.joblib")


def test_train_deploy_predict_scale_rollback_undeploy(tmp_path: Path, serve_venv: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    wb(project, "init")
    (project / "train.py").write_text(TRAIN)
    (project / "request.json").write_text(json.dumps(ROWS))

    v1, answers_v1 = train(project, 0.001)
    assert (v1["name"], v1["version"], v1["framework"]) == ("model", 1, "sklearn")
    assert v1["run_id"] and v1["framework_version"]
    pids: list[int] = []
    try:
        deployed = wb_json(project, "deploy", "model", "--name", "iris")
        assert (deployed["version"], deployed["run_id"], deployed["ready"]) == ("1", v1["run_id"], 1)
        assert predict(project) == answers_v1

        (row,) = wb_json(project, "deployments")
        assert (row["name"], row["model"], row["state"], row["ready"]) == ("iris", "model", "available", 1)
        assert row["artifact_hash"] == v1["hash"]
        metrics = row["metrics"]
        assert metrics["replicas_scraped"] == 1 and metrics["requests_total"] >= 1
        assert metrics["errors_total"] == 0 and metrics["latency_p50"] > 0

        v2, answers_v2 = train(project, 10.0)
        assert v2["version"] == 2 and v2["hash"] != v1["hash"]
        assert answers_v2 != answers_v1, "the two hyperparameter settings should disagree on a row"
        deployed = wb_json(project, "deploy", "model:2", "--name", "iris")
        assert (deployed["version"], deployed["revision"], deployed["run_id"]) == ("2", 2, v2["run_id"])
        assert predict(project) == answers_v2

        scaled = wb_json(project, "scale", "iris", "2")
        assert (scaled["replicas"], scaled["ready"], len(set(scaled["endpoints"]))) == (2, 2, 2)
        for _ in range(4):
            assert predict(project) == answers_v2
        (row,) = wb_json(project, "deployments")
        assert (row["ready"], row["metrics"]["replicas_scraped"]) == (2, 2)
        pids = _replica_pids(project)
        assert len(pids) == 2 and all(_is_mlserver(p) for p in pids)

        rolled = wb_json(project, "rollback", "iris")
        assert (rolled["version"], rolled["replicas"], rolled["ready"]) == ("1", 2, 2)
        assert predict(project) == answers_v1
        assert not any(_is_mlserver(p) for p in pids), "the version-2 replicas were not stopped"
        pids = _replica_pids(project)

        history = wb_json(project, "deployments", "iris")
        assert [(h["action"], h["version"], h["result"]) for h in history] == [
            ("deploy", "1", "available"),
            ("deploy", "2", "available"),
            ("scale", "2", "available"),
            ("rollback", "1", "available"),
        ]
        assert history[0]["run_id"] == v1["run_id"] and history[1]["run_id"] == v2["run_id"]

        assert "undeployed" in wb(project, "undeploy", "iris")
        assert wb_json(project, "deployments") == []
        assert not any(_is_mlserver(p) for p in pids)
        res = run_workbench(project, "predict", "iris", "request.json", env=ENV)
        assert res.returncode == 2 and "no deployment named 'iris'" in res.stderr
    finally:
        _stop_leftovers(project, pids)


def _replica_pids(project: Path) -> list[int]:
    import sqlite3

    with sqlite3.connect(project / ".workbench" / "workbench.db") as db:
        (runtime,) = db.execute("SELECT runtime FROM deployments WHERE name = 'iris'").fetchone()
    return [int(r["pid"]) for r in json.loads(runtime)["replicas"]]


def _is_mlserver(pid: int) -> bool:
    try:
        return b"mlserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_leftovers(project: Path, pids: list[int]) -> None:
    """After a failure half-way: undeploy as a user would, then make sure no server outlives the test."""
    import signal

    if (project / ".workbench").exists():
        run_workbench(project, "undeploy", "iris", env=ENV, timeout=60)
        try:
            pids = pids + _replica_pids(project)
        except Exception:
            pass
    for pid in pids:
        if _is_mlserver(pid):
            os.killpg(pid, signal.SIGKILL)
