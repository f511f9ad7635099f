"""Killing workbench while a container runs: on restart the run is re-attached or marked lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.executors.conftest import IMAGE
from workbench.core.workspace import Workspace
from workbench.executors import records

pytestmark = pytest.mark.docker

SCRIPT = """\
import os, time, workbench
NL = chr(10)
print("started", flush=True)
time.sleep(float(__import__("sys").argv[1]))
workbench.log_metric("late", 1.0)
store = os.environ["MLFLOW_TRACKING_URI"]  # MLflow's file store layout, by hand (no MLflow in the image)
os.makedirs(store + "/0/r1/metrics")
open(store + "/0/meta.yaml", "w").write("name: Default" + NL + "lifecycle_stage: active" + NL)
open(store + "/0/r1/meta.yaml", "w").write(NL.join(["run_id: r1", "run_name: late", "start_time: 1"]) + NL)
open(store + "/0/r1/metrics/mlflow_late", "w").write("1000 2.5 3" + NL)
open("result.txt", "w").write("done")
print("finished", flush=True)
"""


def _start_and_kill(ws: Workspace, seconds: str) -> str:
    (ws.root / "job.py").write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "run", "--executor", "docker", "--image", IMAGE, "--",
         "python3", "job.py", seconds], cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if b"started" in line or not line:
            break
    os.kill(proc.pid, signal.SIGKILL)  # the workbench process dies; the container does not
    proc.wait()
    run_id = ws.db.execute("SELECT run_id FROM executor_jobs").fetchone()[0]
    return str(run_id)


def test_a_run_still_running_is_reattached_and_finished(ws: Workspace, docker_client: Any) -> None:
    run_id = _start_and_kill(ws, "4")
    done = ws.runs.reconcile()
    assert [(d.run_id, d.action) for d in done] == [(run_id, "reattached")]
    deadline = time.monotonic() + 120
    while ws.db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0] == "running":
        assert time.monotonic() < deadline, "the re-attached run never finished"
        time.sleep(0.3)
    run = ws.runs.get(run_id)
    assert run.status == "succeeded", run.reason
    assert "re-attached" in run.reason
    assert "late" in ws.runs.metric_keys(run_id)
    late = ws.runs.metric_series(run_id, "mlflow_late")  # the job's MLflow store, read by the follower
    assert (late.steps, late.values) == ([3], [2.5])
    assert (ws.root / "result.txt").read_text() == "done"
    assert not docker_client.containers.list(all=True, filters={"label": f"workbench.run-id={run_id}"})


def test_a_run_that_ended_meanwhile_is_marked_lost_with_the_reason(ws: Workspace, docker_client: Any) -> None:
    run_id = _start_and_kill(ws, "0")
    container_id = records.get(ws, run_id).handle["container_id"]  # type: ignore[union-attr]
    docker_client.containers.get(container_id).wait(timeout=120)
    done = ws.runs.reconcile()
    assert [(d.run_id, d.action) for d in done] == [(run_id, "lost")]
    run = ws.runs.get(run_id)
    assert run.status == "lost"
    assert "the container ended meanwhile: exited with code 0" in run.reason
    assert not docker_client.containers.list(all=True, filters={"label": f"workbench.run-id={run_id}"})


def test_listing_runs_reconciles_a_killed_remote_run(ws: Workspace, docker_client: Any) -> None:
    """A user who only types `workbench runs` after a crash sees the run as lost, not failed or running."""
    from tests.conftest import run_workbench

    run_id = _start_and_kill(ws, "0")
    container_id = records.get(ws, run_id).handle["container_id"]  # type: ignore[union-attr]
    docker_client.containers.get(container_id).wait(timeout=120)
    result = run_workbench(ws.root, "runs", "--json")
    assert result.returncode == 0, result.stderr
    listed = {r["id"]: r for r in json.loads(result.stdout)}
    assert listed[run_id]["status"] == "lost"
    assert not docker_client.containers.list(all=True, filters={"label": f"workbench.run-id={run_id}"})
