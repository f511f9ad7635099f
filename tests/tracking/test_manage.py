"""Managing runs after the fact: rename, tag, archive, and rm with the snapshots and blobs only
the removed runs pinned (real runs, real snapshots, real blob cache)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.errors import WorkbenchError
from workbench.tracking.request import RunRequest

WRITE = "import os, sys; open(sys.argv[1], 'wb').write(os.urandom(int(sys.argv[2]))); print('loss: 0.5')"


def _run(ws: Workspace, *argv: str, name: str = "") -> str:
    return ws.runs.execute(RunRequest([sys.executable, "-c", WRITE, *argv], name=name or None)).id


def test_rename_tag_archive(ws: Workspace) -> None:
    run_id = _run(ws, "a.bin", "10", name="first")
    other = _run(ws, "b.bin", "10", name="second")
    recorded = ws.runs.get(run_id).to_dict(full=True)
    assert ws.runs.rename("first", "renamed").name == "renamed"
    info = ws.runs.tag(run_id, {"team": "vision", "x": "1"})
    assert info.tags["team"] == "vision"
    assert "x" not in ws.runs.tag(run_id, {}, ["x"]).tags
    ws.runs.archive([run_id])
    assert [r.id for r in ws.runs.list(archived=False)] == [other]
    assert [r.id for r in ws.runs.list(archived=None)] == [run_id]
    assert {r.id for r in ws.runs.list()} == {run_id, other}
    assert ws.runs.list(filter_expr="team==vision", archived=None)[0].id == run_id
    ws.runs.archive([run_id], undo=True)
    assert len(ws.runs.list(archived=False)) == 2
    after = ws.runs.get(run_id).to_dict(full=True)
    labels = ("name", "tags")
    assert {k: v for k, v in after.items() if k not in labels} == {
        k: v for k, v in recorded.items() if k not in labels}, "only the labels may change"


def test_rm_deletes_the_run_its_points_and_the_blobs_only_it_pinned(ws: Workspace, project_dir: Path) -> None:
    big = _run(ws, "big.bin", str(2 << 20), name="big")
    (project_dir / "big.bin").unlink()
    ws.versions.snapshot("without big.bin", "manual")
    keep = _run(ws, "small.bin", "100", name="small")
    big_info = ws.runs.get(big)
    plan = ws.runs.plan_removal(["big"])
    assert plan.runs == [big] and not plan.refused
    assert plan.points == 1 and plan.log_lines >= 1 and plan.files >= 1
    assert set(plan.snapshots) == {s for s in (big_info.snapshot_before, big_info.snapshot_after) if s}
    scratch = ws.project.paths.runs / big
    assert scratch.is_dir()  # the run's events file lived there
    result = ws.runs.remove(plan)
    assert result["runs"] == [big]
    assert not scratch.exists() and (ws.project.paths.runs / keep).is_dir()
    assert set(result["snapshots"]) == set(plan.snapshots)
    assert result["freed_bytes"] >= 2 << 20
    with pytest.raises(WorkbenchError):
        ws.runs.get(big)
    for table in ("run_logs", "run_files", "run_params", "run_tags", "metric_keys"):
        assert ws.db.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", (big,)).fetchone()[0] == 0
    assert ws.runs.get(keep).metrics["loss"].last == 0.5
    assert ws.versions.fsck().ok
    restored = ws.versions.files("latest")
    assert "small.bin" in restored and "big.bin" not in restored


def test_rm_refuses_runs_others_depend_on(ws: Workspace, project_dir: Path) -> None:
    script = project_dir / "train.py"
    script.write_text(
        "import pickle, workbench\n"
        "from sklearn.tree import DecisionTreeClassifier\n"
        "m = DecisionTreeClassifier().fit([[0], [1]], [0, 1])\n"
        "pickle.dump(m, open('model.pkl', 'wb'))\n"
        "workbench.log_model('model.pkl', name='tree')\n"
    )
    pytest.importorskip("sklearn")
    run_id = ws.runs.execute([sys.executable, "train.py"]).id
    plan = ws.runs.plan_removal([run_id])
    assert plan.runs == [] and "model tree:1" in plan.refused[0][1]
    child = ws.runs.rerun(run_id).id
    plan = ws.runs.plan_removal([child])
    assert plan.runs == [child]


def test_cli_rm_asks_and_shows_what_goes(project_dir: Path, ws: Workspace) -> None:
    run_id = _run(ws, "a.bin", "10", name="doomed")
    env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    dry = run_workbench(project_dir, "runs", "rm", "doomed", "--dry-run", env=env)
    assert dry.returncode == 0 and f"would delete 1 run(s): {run_id}" in dry.stdout
    refused = run_workbench(project_dir, "runs", "rm", "doomed", input="", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: no terminal to ask on")
    assert "Traceback" not in refused.stderr
    done = run_workbench(project_dir, "runs", "rm", "doomed", "--yes", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"] == [run_id]
    listed = run_workbench(project_dir, "runs", "--all", "--json", env=env)
    assert json.loads(listed.stdout) == []
    missing = run_workbench(project_dir, "runs", "rm", "nope", "--yes", env=env)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_cli_archive_rename_tag(project_dir: Path, ws: Workspace) -> None:
    run_id = _run(ws, "a.bin", "10", name="one")
    env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    assert run_workbench(project_dir, "runs", "tag", "one", "team=a", env=env).returncode == 0
    assert run_workbench(project_dir, "runs", "rename", "one", "uno", env=env).returncode == 0
    assert run_workbench(project_dir, "runs", "archive", "uno", env=env).returncode == 0
    assert json.loads(run_workbench(project_dir, "runs", "--json", env=env).stdout) == []
    archived = json.loads(run_workbench(project_dir, "runs", "--archived", "--json", env=env).stdout)
    assert [(r["id"], r["name"], r["tags"]["team"]) for r in archived] == [(run_id, "uno", "a")]
    bad = run_workbench(project_dir, "runs", "tag", "uno", "=x", env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
