"""``workbench predictions`` and ``workbench feedback`` as a user types them, on a real deployment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from tests.monitor.conftest import rows_request
from workbench.core.workspace import Workspace

pytestmark = pytest.mark.slow


def test_predictions_cli_lists_filters_exports_and_refuses_bad_input(
    ws: Workspace, iris_deployment: str
) -> None:
    for n in range(3):
        ws.deployments.predict(iris_deployment, rows_request([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
                                                             request_id=f"r{n}"))
    listed = run_workbench(ws.root, "deployments", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["predictions"] == {"count": 6, "errors": 0, "error_rate": 0.0}
    table = run_workbench(ws.root, "deployments", env={"COLUMNS": "200"})
    assert "PREDICTIONS" in table.stdout
    # The tracking API records a label from any script in the project, by the answer's request id.
    script = "import workbench; workbench.log_feedback('r1', 2, row_index=1); workbench.log_feedback('r0', 0)"
    done = subprocess.run([sys.executable, "-c", script], cwd=ws.root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 0, done.stderr
    assert [(r.request_id, r.row_index, r.label) for r in ws.predictions.labelled("iris")] in (
        [("r1", 1, 2), ("r0", 0, 0)], [("r0", 0, 0), ("r1", 1, 2)])
    out = run_workbench(ws.root, "predictions", "iris", "--limit", "2", "--json")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 2
    export = ws.root / "p.csv"
    out = run_workbench(ws.root, "predictions", "iris", "--export", str(export), "--filter", "output == 2")
    assert out.returncode == 0, out.stderr
    lines = export.read_text().splitlines()
    assert lines[0].startswith("request_id,row_index,") and "f0,f1,f2,f3,output,label" in lines[0]
    assert len(lines) == 4
    (ws.root / "bad.csv").write_text("a,b\n1,2\n")
    table = run_workbench(ws.root, "predictions", "iris", "--since", "1h")
    assert table.returncode == 0 and "r2" in table.stdout
    for argv, words in (
        (["predictions", "nope"], "no deployment 'nope'"),
        (["predictions", "iris", "--filter", "f0 >"], "cannot read the filter"),
        (["predictions", "iris", "--since", "yesterday"], "cannot read --since"),
        (["feedback", "iris", "bad.csv"], "needs a request id column"),
        (["retrain", "iris"], "was not made by a recorded run"),
    ):
        bad = run_workbench(ws.root, *argv)
        assert bad.returncode != 0 and words in bad.stderr, (argv, bad.stderr)
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
