"""Docker and Kubernetes runs record the bytes they wrote, even when they run concurrently.

Each remote run is isolated by construction: its outputs are hashed and its models stored from the
executor's own folder (the container's workspace, the files fetched back from the pod), then copied
into the project by isolation's rule (the first to finish wins; the other records a ``not-copied``
conflict, never a silent swap). Docker tests use the real daemon and the offline image; Kubernetes
tests the API-server double.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_workbench
from tests.executors.conftest import IMAGE, docker_client
from tests.executors.kube_double import Controller, KubeDouble, Story
from tests.executors.test_kubernetes import IMAGE as KUBE_IMAGE
from tests.executors.test_kubernetes import NS, controller, double
from workbench.core.workspace import Workspace
from workbench.executors.k8s_manifests import dns_name
from workbench.tracking.request import RunRequest

__all__ = ["controller", "docker_client", "double"]  # fixtures

PY = sys.executable
DEADLINE = 180.0

# Waits for a "go" file the test plants in this run's own workspace once both runs are staged (so
# both have the same input snapshot and truly overlap), then writes its model to one fixed path.
TRAIN = """\
import argparse, os, pickle, sys, time
import workbench
p = argparse.ArgumentParser()
p.add_argument("--depth", type=int)
a = p.parse_args()
deadline = time.monotonic() + 170
while not os.path.exists("go"):
    if time.monotonic() > deadline:
        sys.exit("gave up waiting for go")
    time.sleep(0.05)
os.remove("go")
os.makedirs("models", exist_ok=True)
with open("models/model.pkl", "wb") as f:
    pickle.dump({"depth": a.depth}, f)
workbench.log_model("models/model.pkl", name="tree")
print("wrote depth", a.depth)
"""


def _wait(what: str, check: Callable[[], Any], deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _exported(ws: Workspace, digest: str, tmp: Path) -> Any:
    dest = tmp / f"export-{digest[:16]}.pkl"
    ws.versions.export_object(digest, dest)
    with dest.open("rb") as handle:
        return pickle.load(handle)  # the test's own bytes


def _show(ws: Workspace, run_id: str) -> dict[str, Any]:
    done = run_workbench(ws.root, "show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _go_when_staged(ws: Workspace, count: int) -> None:
    """Once ``count`` Docker runs are staged (each has its manifest, so each has taken its input
    snapshot), plant the file each job waits for in its own workspace."""
    def staged() -> list[Path]:
        found = sorted(ws.paths.runs.glob("*/docker/manifest.json")) if ws.paths.runs.exists() else []
        return found if len(found) == count else []

    for manifest in _wait(f"{count} runs staged", staged):
        (manifest.parent / "work" / "go").write_text("go")


def _finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    try:
        outs = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, (out, err)
            outs.append(out)
        return outs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def _assert_own_bytes(ws: Workspace, runs: dict[int, dict[str, Any]], tmp: Path) -> None:
    """Each run's output hash and model version are its own bytes; the project holds the winner's,
    and the loser records a ``not-copied`` conflict naming the winner (``runs``: depth -> show)."""
    hashes = set()
    for depth, run in runs.items():
        assert run["status"] == "succeeded", run
        [version] = run["models"]
        assert version["path"] == "models/model.pkl" and version["run_id"] == run["id"]
        assert _exported(ws, version["hash"], tmp) == {"depth": depth}
        [output] = [o for o in run["outputs"] if o["path"] == "models/model.pkl"]
        assert output["hash"] == version["hash"]
        assert "go" not in {o["path"] for o in run["outputs"]}
        hashes.add(version["hash"])
    assert len(hashes) == 2
    conflicted = [d for d, r in runs.items() if r["conflicts"]]
    assert len(conflicted) == 1, runs
    loser = conflicted[0]
    winner = next(d for d in runs if d != loser)
    with (ws.root / "models" / "model.pkl").open("rb") as handle:
        assert pickle.load(handle) == {"depth": winner}
    [conflict] = runs[loser]["conflicts"]
    assert conflict["path"] == "models/model.pkl" and conflict["kind"] == "not-copied"
    assert conflict["other_run"] == runs[winner]["id"]
    assert conflict["hash"] == runs[loser]["models"][0]["hash"]
    # The executors' folders are gone once the runs are recorded.
    assert list(ws.paths.runs.glob("*/docker/work")) == []


@pytest.mark.docker
def test_two_concurrent_docker_runs_keep_their_own_bytes(
    ws: Workspace, docker_client: Any, tmp_path: Path
) -> None:
    (ws.root / "train.py").write_text(TRAIN, encoding="utf-8")
    procs = [
        subprocess.Popen(
            [PY, "-m", "workbench", "run", "--executor", "docker", "--image", IMAGE, "--json", "--",
             "python3", "train.py", "--depth", str(depth)],
            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for depth in (2, 5)
    ]
    _go_when_staged(ws, 2)
    ids = [json.loads(out)["id"] for out in _finish(procs)]
    _assert_own_bytes(ws, {depth: _show(ws, run_id) for depth, run_id in zip((2, 5), ids, strict=True)},
                      tmp_path)


@pytest.mark.docker
def test_a_parallel_docker_sweep_keeps_each_members_bytes(
    ws: Workspace, docker_client: Any, tmp_path: Path
) -> None:
    (ws.root / "train.py").write_text(TRAIN, encoding="utf-8")
    proc = subprocess.Popen(
        [PY, "-m", "workbench", "sweep", "--param", "depth=2,5", "--parallel", "2", "--executor", "docker",
         "--image", IMAGE, "--json", "--", "python3", "train.py", "--depth", "{depth}"],
        cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _go_when_staged(ws, 2)
    [out] = _finish([proc])
    members = json.loads(out)["members"]
    _assert_own_bytes(ws, {int(m["params"]["depth"]): _show(ws, m["run_id"]) for m in members}, tmp_path)


def _kube_run(ws: Workspace, result: dict[str, Any]) -> None:
    try:
        result["run"] = ws.runs.execute(RunRequest(["python", "train.py"], executor="kubernetes",
                                                   image=KUBE_IMAGE, namespace=NS))
    except BaseException as exc:  # surfaced by the test thread
        result["error"] = exc


def test_a_kubernetes_run_is_recorded_from_the_fetched_files(
    ws: Workspace, double: KubeDouble, controller: Callable[[Story], Controller], tmp_path: Path
) -> None:
    """The pod's bytes are recorded and registered even though the project's file changed while the
    job ran: the project keeps that edit and the run records a ``not-copied`` conflict."""
    hold = threading.Event()
    pod_bytes = pickle.dumps({"depth": 3})
    controller(Story(
        lines=['@@workbench@@ {"e":"model","path":"/workspace/models/model.pkl","name":"tree"}', "done"],
        writes={"models/model.pkl": pod_bytes, "report.txt": b"from the pod"},
        hold=hold,
    ))
    (ws.root / "train.py").write_text("print('hi')\n")
    result: dict[str, Any] = {}
    thread = threading.Thread(target=_kube_run, args=(ws, result), daemon=True)
    thread.start()
    volumes = double.volumes / NS
    _wait("the pod's files", lambda: list(volumes.glob("*/workspace/models/model.pkl")))
    (ws.root / "models").mkdir()
    (ws.root / "models" / "model.pkl").write_bytes(b"edited meanwhile")
    hold.set()
    thread.join(DEADLINE)
    assert not thread.is_alive() and "error" not in result, result
    run = result["run"]
    assert run.status == "succeeded", run.reason
    # Recorded from the fetched files: the pod's bytes, not the project's.
    outputs = {f.path: f.hash for f in ws.runs.outputs(run.id)}
    [version] = ws.runs.run_models(run.id)
    assert version.hash == outputs["models/model.pkl"]
    assert _exported(ws, version.hash, tmp_path) == {"depth": 3}
    assert (ws.root / "models" / "model.pkl").read_bytes() == b"edited meanwhile"
    # The other output had no rival: copied back.
    assert (ws.root / "report.txt").read_bytes() == b"from the pod"
    assert outputs["report.txt"] == ws.versions.hash_file(ws.root / "report.txt")
    [conflict] = _show(ws, run.id)["conflicts"]
    assert conflict["path"] == "models/model.pkl" and conflict["kind"] == "not-copied"
    assert conflict["hash"] == version.hash and conflict["other_run"] is None
    assert not (ws.paths.runs / run.id / "kubernetes").exists()


def test_two_kubernetes_runs_on_one_path_keep_their_own_bytes(
    ws: Workspace, double: KubeDouble, tmp_path: Path
) -> None:
    """Two runs at once through the double, each pod writing one path with its own bytes; both are
    held until both pods have written, so both start from the same input snapshot."""
    holds: dict[str, threading.Event] = {}

    def story(job: dict[str, Any]) -> Story:
        name = job["metadata"]["name"]
        holds[name] = threading.Event()
        return Story(writes={"models/model.pkl": pickle.dumps({"job": name})}, hold=holds[name],
                     lines=['@@workbench@@ {"e":"model","path":"/workspace/models/model.pkl"}'])

    control = Controller(double, NS, story)
    try:
        (ws.root / "train.py").write_text("print('hi')\n")
        other = Workspace.open(ws.root)
        results: list[dict[str, Any]] = [{}, {}]
        threads = [threading.Thread(target=_kube_run, args=(w, r), daemon=True)
                   for w, r in zip((ws, other), results, strict=True)]
        for thread in threads:
            thread.start()
        volumes = double.volumes / NS
        _wait("both pods' files", lambda: len(list(volumes.glob("*/workspace/models/model.pkl"))) == 2)
        for event in list(holds.values()):
            event.set()
        for thread in threads:
            thread.join(DEADLINE)
        assert all(not t.is_alive() for t in threads) and all("error" not in r for r in results), results
        other.close()
    finally:
        control.close()
    runs = [r["run"] for r in results]
    for run in runs:
        assert run.status == "succeeded", run.reason
        [version] = ws.runs.run_models(run.id)
        assert _exported(ws, version.hash, tmp_path) == {"job": dns_name(run.id)}
        assert {f.path: f.hash for f in ws.runs.outputs(run.id)}["models/model.pkl"] == version.hash
    conflicts = {run.id: ws.runs.conflicts(run.id) for run in runs}
    losers = [run_id for run_id, found in conflicts.items() if found]
    assert len(losers) == 1, conflicts
    [winner] = [run.id for run in runs if run.id not in losers]
    [conflict] = conflicts[losers[0]]
    assert conflict.path == "models/model.pkl" and conflict.kind == "not-copied"
    assert conflict.other_run == winner
    assert os.path.exists(ws.root / "models" / "model.pkl")
    assert ws.versions.hash_file(ws.root / "models" / "model.pkl") == ws.runs.run_models(winner)[0].hash
