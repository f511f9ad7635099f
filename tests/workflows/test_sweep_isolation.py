"""A parallel sweep whose members all write models/model.joblib: each member's model version is its
own bytes (real scikit-learn, real ``workbench sweep --parallel 4`` process)."""

from __future__ import annotations

import sys
from pathlib import Path

import joblib

from tests.conftest import run_workbench
from tests.tracking.test_isolation import TRAIN
from workbench.core.workspace import Workspace

DEPTHS = (2, 3, 6, 9)


def test_parallel_sweep_members_register_their_own_models(ws: Workspace, tmp_path: Path) -> None:
    (ws.root / "train.py").write_text(TRAIN, encoding="utf-8")
    sync = tmp_path / "sync"
    sync.mkdir()
    done = run_workbench(
        ws.root, "sweep", "--param", "depth=" + ",".join(map(str, DEPTHS)), "--parallel", "4", "--",
        sys.executable, "train.py", "--max-depth", "{depth}", "--sync", str(sync), "--peers", "4",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    sweep = ws.workflows.get_sweep("latest").to_dict()
    assert sweep["status"] == "succeeded" and len(sweep["members"]) == 4
    assert len(list(sync.iterdir())) == 4  # all four were running at once
    hashes: set[str] = set()
    without_conflict = []
    for member in sweep["members"]:
        depth, run_id = member["params"]["depth"], member["run_id"]
        versions = ws.runs.run_models(run_id)
        assert len(versions) == 1, (run_id, ws.runs.outputs(run_id), [m.to_dict() for m in ws.runs.models()],
                                    [x.text for x in ws.runs.log_lines(run_id)])
        version = versions[0]
        assert version.path == "models/model.joblib" and version.run_id == run_id
        exported = tmp_path / f"{run_id}.joblib"
        ws.versions.export_object(version.hash, exported)
        assert joblib.load(exported).max_depth == depth
        node = ws.runs.lineage(f"{version.name}:{version.version}")
        assert [child.label for child in node.children] == [run_id]
        assert node.children[0].details["params"]["depth"] == depth
        hashes.add(version.hash)
        conflicts = ws.runs.conflicts(run_id)
        if not conflicts:
            without_conflict.append((depth, run_id))
            continue
        [conflict] = conflicts
        assert conflict.path == "models/model.joblib" and conflict.hash == version.hash
    assert len(hashes) == 4
    # One member's model is the project's file; the three others name that member in their conflict.
    [(winner_depth, winner)] = without_conflict
    assert joblib.load(ws.root / "models/model.joblib").max_depth == winner_depth
    summary = " ".join(done.stdout.split())
    assert (f"models/model.joblib: written by several members; the project holds the file of {winner}"
            in summary), done.stdout
    for member in sweep["members"]:
        if member["run_id"] != winner:
            assert [c.other_run for c in ws.runs.conflicts(member["run_id"])] == [winner]
    # Every member ran from the sweep's one input snapshot, in a checkout that is gone now.
    befores = {ws.runs.get(m["run_id"]).snapshot_before for m in sweep["members"]}
    assert len(befores) == 1 and None not in befores
    assert not [p for p in ws.paths.tmp.iterdir() if p.name.startswith("run-")]
