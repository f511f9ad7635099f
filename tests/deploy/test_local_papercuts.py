"""The local target's sharp edges, each as the user meets it through the real CLI process.

A new version keeps the replica count; ``predict`` reads a file, stdin or ``--data`` and prints a table
(``--json`` the raw answer); a request with the wrong shape is one line holding the model's own
message, not MLServer's 5 KB traceback; a killed replica's URL is not listed; ``undeploy --json``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_workbench
from tests.deploy.conftest import REQUEST
from workbench.core.workspace import Workspace
from workbench.deploy import frontdoor, local
from workbench.deploy.local_rollout import server_error_line
from workbench.deploy.types import ModelRef

pytestmark = pytest.mark.slow

ENV = {"WORKBENCH_LOCAL_RUNTIME": "process"}
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def _wb(project: Path, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    res = run_workbench(project, *argv, env=ENV, input=stdin, timeout=300)
    return res.returncode, res.stdout, res.stderr


def test_local_deploy_papercuts(
    ws: Workspace, iris_models: tuple[ModelRef, ModelRef], serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    v1, v2 = iris_models
    ws.deployments.deploy(v1, name="iris", replicas=2)
    project = ws.root
    try:
        # A new version without --replicas keeps the two replicas (it used to drop them to 1).
        info = ws.deployments.deploy(v2, name="iris")
        assert (info.version, info.replicas, info.ready) == ("2", 2, 2)

        (project / "rows.json").write_text(json.dumps(ROWS))
        code, out, err = _wb(project, "predict", "iris", "rows.json", "--json")
        assert code == 0, err
        assert [int(v) for v in json.loads(out)["outputs"][0]["data"]] == [0, 2]
        code, out, err = _wb(project, "predict", "iris", "-", "--json", stdin=json.dumps(REQUEST))
        assert code == 0, err
        assert json.loads(out)["model_name"] == "iris"
        code, out, err = _wb(project, "predict", "iris", stdin=json.dumps(ROWS))  # piped: stdin implied
        assert code == 0, err
        assert "#" in out and "predict" in out and "\n0 " not in out  # a table, not JSON
        lines = [ln for ln in out.splitlines() if "│" in ln or "|" in ln]
        assert any(" 0 " in ln and " 0" in ln for ln in lines) and any(" 2" in ln for ln in lines)
        code, out, err = _wb(project, "predict", "iris", "--data", json.dumps(ROWS), "--json")
        assert code == 0, err
        assert json.loads(out)["outputs"][0]["data"] == [0, 2]

        # The wrong shape: one line with scikit-learn's own words, exit 1 or 2, no traceback.
        code, out, err = _wb(project, "predict", "iris", "--data", "[[5.1, 3.5, 1.4]]")
        assert code != 0 and err.count("\n") <= 2, err
        assert "Traceback" not in err and "4 features" in err and len(err) < 600, err

        # With its front door gone (as after a reboot; the front door would restart the replica:
        # tests/deploy/test_frontdoor.py), kill one replica: the listing drops its URL.
        frontdoor.stop(int(_runtime(ws)["frontdoor"]["pid"]))
        replicas = [local.Replica.from_json(r) for r in _runtime(ws)["replicas"]]
        assert len(replicas) == 2 and all(r.kind == "process" for r in replicas)
        os.kill(replicas[0].pid, signal.SIGKILL)
        _wait_dead(replicas[0])
        code, out, err = _wb(project, "deployments", "--json")
        (listed,) = json.loads(out)
        assert listed["endpoints"] == [replicas[1].url] and listed["state"] == "degraded"
        assert listed["endpoint"] == replicas[1].url

        code, out, err = _wb(project, "undeploy", "iris", "--json")
        assert code == 0, err
        assert json.loads(out)["state"] == "undeployed" and json.loads(out)["name"] == "iris"
    finally:
        if ws.deployments.records.find("iris")["state"] != "undeployed":
            ws.deployments.undeploy("iris")


def test_bad_requests_are_one_line(ws: Workspace, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli(project_dir, "predict", "web", "--data", "[[1, 2], [3]]")
    assert res.code == 2 and "rows have different lengths" in res.err and res.err.count("\n") == 1
    res = cli(project_dir, "predict", "web", "--data", "{nope")
    assert res.code == 2 and "--data is not JSON" in res.err
    (project_dir / "r.json").write_text("[[1]]")
    res = cli(project_dir, "predict", "web", "r.json", "--data", "[[1]]")
    assert res.code == 2 and "not both" in res.err


def test_server_error_line_keeps_the_models_words() -> None:
    trace = "\n".join(
        ["Traceback (most recent call last):"]
        + [f'  File "/venv/lib/python3.11/site-packages/mlserver/x{i}.py", line {i}, in f' for i in range(60)]
        + ["ValueError: X has 3 features, but LogisticRegression is expecting 4 features as input."]
    )
    assert server_error_line(trace) == (
        "ValueError: X has 3 features, but LogisticRegression is expecting 4 features as input."
    )
    assert server_error_line({"detail": "bad"}) == '{"detail": "bad"}'
    assert len(server_error_line("x" * 5000)) == 300
    assert server_error_line("") == "(no message)"


def _wait_dead(replica: local.Replica) -> None:
    import time

    deadline = time.monotonic() + 60
    while local.alive(replica):
        assert time.monotonic() < deadline, "the killed replica still looks alive"
        time.sleep(0.05)


def _runtime(ws: Workspace) -> dict[str, Any]:
    row = ws.db.execute("SELECT runtime FROM deployments WHERE name='iris'").fetchone()
    data: dict[str, Any] = json.loads(row[0])
    return data
