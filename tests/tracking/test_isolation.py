"""Every run's outputs are the bytes that run wrote: isolated runs (own checkout, copy-back rule)
and plain runs sharing the folder (close records), with real processes and real scikit-learn models."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import joblib

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

PY = sys.executable
DEADLINE = 90.0

# Trains a tree of the given depth and writes it to one fixed path, after waiting (on files in a
# folder outside the project) until every other run has started, so the runs truly overlap.
TRAIN = """\
import argparse, os, sys, time
import joblib
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

p = argparse.ArgumentParser()
p.add_argument("--max-depth", type=int)
p.add_argument("--sync", default="")
p.add_argument("--peers", type=int, default=1)
a = p.parse_args()

def wait_for(name, count=1):
    deadline = time.monotonic() + 60
    while len([n for n in os.listdir(a.sync) if n.startswith(name)]) < count:
        if time.monotonic() > deadline:
            sys.exit("gave up waiting for " + name)
        time.sleep(0.02)

if a.sync:
    open(os.path.join(a.sync, f"started-{a.max_depth}"), "w").close()
    wait_for("started-", a.peers)
X, y = load_iris(return_X_y=True)
model = DecisionTreeClassifier(max_depth=a.max_depth, random_state=0).fit(X, y)
os.makedirs("models", exist_ok=True)
joblib.dump(model, "models/model.joblib")
print(f"accuracy: {model.score(X, y)}")
"""


def _train(ws: Workspace) -> None:
    (ws.root / "train.py").write_text(TRAIN, encoding="utf-8")


def _depth_of(ws: Workspace, digest: str, tmp: Path) -> int:
    dest = tmp / f"export-{digest[:16]}.joblib"
    ws.versions.export_object(digest, dest)
    return int(joblib.load(dest).max_depth)


def _show(ws: Workspace, run_id: str) -> dict:  # type: ignore[type-arg]
    done = run_workbench(ws.root, "show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    data: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    return data


def _scratch_left(ws: Workspace) -> list[str]:
    tmp = ws.paths.tmp
    if not tmp.exists():
        return []
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("run-", "verify-")))


def test_two_concurrent_isolated_runs_keep_their_own_models(ws: Workspace, tmp_path: Path) -> None:
    _train(ws)
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = {
        depth: subprocess.Popen(
            [PY, "-m", "workbench", "run", "--isolated", "--json", "--", PY, "train.py", "--max-depth",
             str(depth), "--sync", str(sync), "--peers", "2"],
            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for depth in (2, 5)
    }
    runs: dict[int, dict] = {}  # type: ignore[type-arg]
    for depth, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        runs[depth] = json.loads(out)
    hashes = set()
    for depth, run in runs.items():
        [version] = run["models"]
        assert version["path"] == "models/model.joblib" and version["run_id"] == run["id"]
        assert _depth_of(ws, version["hash"], tmp_path) == depth
        [output] = [o for o in run["outputs"] if o["path"] == "models/model.joblib"]
        assert output["hash"] == version["hash"]
        hashes.add(version["hash"])
        node = ws.runs.lineage(f"model:{version['version']}")
        assert node.children[0].label == run["id"]
        assert node.children[0].details["params"]["max_depth"] == depth
    assert len(hashes) == 2
    # The project holds exactly one of them: the first to finish copied it, the other one says so.
    conflicted = [d for d, r in runs.items() if r["conflicts"]]
    assert len(conflicted) == 1
    loser = conflicted[0]
    winner = next(d for d in runs if d != loser)
    assert joblib.load(ws.root / "models/model.joblib").max_depth == winner
    [conflict] = runs[loser]["conflicts"]
    assert conflict["path"] == "models/model.joblib" and conflict["kind"] == "not-copied"
    assert conflict["other_run"] == runs[winner]["id"]
    assert conflict["hash"] == runs[loser]["models"][0]["hash"]
    assert _show(ws, runs[loser]["id"])["conflicts"] == [conflict]
    assert any("output conflict on models/model.joblib" in line.text
               for line in ws.runs.log_lines(runs[loser]["id"]))
    shown = run_workbench(ws.root, "show", runs[loser]["id"])
    assert "conflict  models/model.joblib  not-copied" in shown.stdout
    assert _scratch_left(ws) == []


def test_isolated_run_never_overwrites_a_file_changed_meanwhile(ws: Workspace, tmp_path: Path) -> None:
    """A person edits the output in the project while the run works: the edit stays, the run's bytes
    are kept in the blob cache and the conflict names no run (nobody recorded the edit)."""
    (ws.root / "report.txt").write_text("v0\n", encoding="utf-8")
    sync = tmp_path / "sync"
    sync.mkdir()
    (ws.root / "job.py").write_text(textwrap.dedent(f"""\
        import os, time
        open({str(sync / 'started')!r}, 'w').close()
        deadline = time.monotonic() + 60
        while not os.path.exists({str(sync / 'edited')!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
        open('report.txt', 'w').write('from the run\\n')
        open('fresh.txt', 'w').write('new file\\n')
        """), encoding="utf-8")
    proc = subprocess.Popen([PY, "-m", "workbench", "run", "--isolated", "--json", "--", PY, "job.py"],
                            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + DEADLINE
    while not (sync / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    (ws.root / "report.txt").write_text("edited by hand\n", encoding="utf-8")
    (sync / "edited").touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    run = json.loads(out)
    assert (ws.root / "report.txt").read_text(encoding="utf-8") == "edited by hand\n"
    assert (ws.root / "fresh.txt").read_text(encoding="utf-8") == "new file\n"  # unchanged path: copied
    [conflict] = run["conflicts"]
    assert conflict["path"] == "report.txt" and conflict["other_run"] is None
    outputs = {o["path"]: o["hash"] for o in run["outputs"]}
    assert conflict["hash"] == outputs["report.txt"]
    kept = tmp_path / "kept.txt"
    ws.versions.export_object(conflict["hash"], kept)
    assert kept.read_text(encoding="utf-8") == "from the run\n"
    assert _scratch_left(ws) == []


def test_failed_isolated_run_is_recorded_copied_back_and_its_checkout_removed(ws: Workspace) -> None:
    (ws.root / "input.txt").write_text("in\n", encoding="utf-8")
    (ws.root / "fail.py").write_text(
        "import sys\nopen('partial.txt', 'w').write(open('input.txt').read() * 2)\nsys.exit(3)\n",
        encoding="utf-8")
    info = ws.runs.execute(RunRequest([PY, "fail.py"], isolated=True))
    assert info.status == "failed" and info.exit_code == 3
    assert info.snapshot_before and info.snapshot_after is None
    assert "input.txt" in [f.path for f in ws.runs.inputs(info.id)]
    [output] = ws.runs.outputs(info.id)
    assert output.path == "partial.txt" and output.hash == ws.versions.hash_file(ws.root / "partial.txt")
    assert (ws.root / "partial.txt").read_text(encoding="utf-8") == "in\nin\n"
    assert ws.runs.conflicts(info.id) == []
    assert _scratch_left(ws) == []


def test_plain_runs_writing_one_path_flag_the_overwritten_one(ws: Workspace, tmp_path: Path) -> None:
    """Two plain runs in the shared folder: A writes the model, then B overwrites it while A still
    runs. A's record must not claim B's bytes: no model version, no hash, a conflict; B keeps its own."""
    _train(ws)
    sync = tmp_path / "sync"
    sync.mkdir()
    (ws.root / "a.py").write_text(textwrap.dedent(f"""\
        import os, subprocess, sys, time
        subprocess.run([sys.executable, 'train.py', '--max-depth', '2'], check=True)
        open({str(sync / 'a-wrote')!r}, 'w').close()
        deadline = time.monotonic() + 60
        while not os.path.exists({str(sync / 'b-wrote')!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
        """), encoding="utf-8")
    (ws.root / "b.py").write_text(textwrap.dedent(f"""\
        import os, subprocess, sys, time
        deadline = time.monotonic() + 60
        while not os.path.exists({str(sync / 'a-wrote')!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
        subprocess.run([sys.executable, 'train.py', '--max-depth', '3'], check=True)
        open({str(sync / 'b-wrote')!r}, 'w').close()
        """), encoding="utf-8")
    procs = {name: subprocess.Popen([PY, "-m", "workbench", "run", "--json", "--", PY, f"{name}.py"],
                                    cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")}
    runs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        runs[name] = json.loads(out)
    a, b = runs["a"], runs["b"]
    assert joblib.load(ws.root / "models/model.joblib").max_depth == 3
    assert a["models"] == []  # never registered with B's bytes
    [a_out] = [o for o in a["outputs"] if o["path"] == "models/model.joblib"]
    assert a_out["hash"] is None
    [conflict] = _show(ws, a["id"])["conflicts"]
    assert conflict["path"] == "models/model.joblib" and conflict["kind"] == "overwritten"
    assert conflict["reason"] == "overwritten by another process after this run wrote it"
    assert conflict["other_run"] in (b["id"], None)
    assert any("output conflict on models/model.joblib" in line.text for line in ws.runs.log_lines(a["id"]))
    [version] = b["models"]
    assert b["conflicts"] == [] and version["run_id"] == b["id"]
    assert _depth_of(ws, version["hash"], tmp_path) == 3
    assert ws.runs.lineage(f"model:{version['version']}").children[0].label == b["id"]
    assert _scratch_left(ws) == []


def test_plain_run_alone_registers_its_model_from_a_verified_copy(ws: Workspace, tmp_path: Path) -> None:
    """The ordinary case stays as it was: one plain run, its model registered, no conflict."""
    _train(ws)
    info = ws.runs.execute([PY, "train.py", "--max-depth", "4"])
    [version] = ws.runs.run_models(info.id)
    assert _depth_of(ws, version.hash, tmp_path) == 4
    assert version.framework == "sklearn"  # told from the file's name, not the private copy's
    assert version.hash == ws.versions.hash_file(ws.root / "models/model.joblib")
    outputs = {f.path: f.hash for f in ws.runs.outputs(info.id)}
    assert outputs["models/model.joblib"] == version.hash
    assert ws.runs.conflicts(info.id) == []
    writes = ws.paths.runs / info.id / "writes.jsonl"
    closes = [json.loads(line) for line in writes.read_text(encoding="utf-8").splitlines()]
    assert any(c["path"].endswith("models/model.joblib") for c in closes)


def test_isolated_run_sees_ignored_files_and_cleanup_leaves_them(ws: Workspace) -> None:
    """Paths the project ignores are in no snapshot: the checkout links them, and removing the
    checkout removes the links only, never the project's files behind them."""
    (ws.root / ".workbenchignore").write_text("data/raw/\n", encoding="utf-8")
    (ws.root / "data" / "raw").mkdir(parents=True)
    (ws.root / "data" / "raw" / "big.bin").write_bytes(b"\x00" * 1000)
    (ws.root / "data" / "small.csv").write_text("a,b\n", encoding="utf-8")
    (ws.root / ".env").write_text("TOKEN=abc\n", encoding="utf-8")
    (ws.root / "job.py").write_text(textwrap.dedent("""\
        import os
        size = len(open('data/raw/big.bin', 'rb').read())
        token = open('.env').read().strip()
        assert not os.path.islink('data/small.csv')  # versioned: a real copy in the checkout
        open('out.txt', 'w').write(f'{size} {token} ' + open('data/small.csv').read())
        """), encoding="utf-8")
    info = ws.runs.execute(RunRequest([PY, "job.py"], isolated=True))
    assert info.status == "succeeded", [x.text for x in ws.runs.log_lines(info.id)]
    assert (ws.root / "out.txt").read_text(encoding="utf-8") == "1000 TOKEN=abc a,b\n"
    assert (ws.root / "data" / "raw" / "big.bin").stat().st_size == 1000
    assert (ws.root / ".env").read_text(encoding="utf-8") == "TOKEN=abc\n"
    assert _scratch_left(ws) == []


def test_scratch_left_by_a_killed_runner_is_removed_by_the_next_isolated_run(ws: Workspace) -> None:
    (ws.root / "keep.txt").write_text("project file\n", encoding="utf-8")
    (ws.root / "noop.py").write_text("pass\n", encoding="utf-8")
    ended = ws.runs.execute([PY, "noop.py"])
    leftover = ws.paths.tmp / f"run-{ended.id}"  # as if its runner had been killed mid-run
    (leftover / "models").mkdir(parents=True)
    (leftover / "models" / "model.pkl").write_bytes(b"stale")
    (leftover / "keep.txt").symlink_to(ws.root / "keep.txt")
    starting = ws.paths.tmp / "run-zzzzstarting"  # a run being set up right now: no row yet, fresh
    starting.mkdir()
    info = ws.runs.execute(RunRequest([PY, "noop.py"], isolated=True))
    assert info.status == "succeeded"
    assert not leftover.exists() and starting.exists()
    assert (ws.root / "keep.txt").read_text(encoding="utf-8") == "project file\n"
