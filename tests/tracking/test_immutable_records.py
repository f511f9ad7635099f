"""Run records are immutable: params (a pipeline stage's, resolved from its params file, included),
inputs, code snapshot and environment are stored when the run happens and never derived again from
the working tree. Every source, params file and data file is edited or deleted after the runs; what
``show --json``, ``compare``, ``lineage`` and the pipeline's record say must not move by a byte."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest
from workbench.workflows.records import stages_of

TRAIN = """
import argparse, pickle
from sklearn.dummy import DummyRegressor
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.5)
p.add_argument("--depth", type=int, default=3)
a = p.parse_args()
rows = open("data/clean.csv").read().splitlines()
print(f"loss: {a.lr * len(rows)}")
with open("model.pkl", "wb") as f:
    pickle.dump(DummyRegressor(strategy="constant", constant=a.lr).fit([[0]], [0]), f)
"""
PREPARE = """
import sys
src = open("data/raw.csv").read()
open("data/clean.csv", "w").write(src.upper())
"""
PIPELINE = f"""
params: params.yaml
stages:
  prepare:
    cmd: {sys.executable} prepare.py
    inputs: [prepare.py, data/raw.csv]
    outputs: [data/clean.csv]
  train:
    cmd: {sys.executable} train.py --lr {{lr}}
    inputs: [train.py, data/clean.csv]
    outputs: [model.pkl]
    params:
      lr: {{ref: train.lr}}
      batch: {{ref: train.batch}}
"""


def _cli_json(root: Path, *argv: str) -> str:
    result = run_workbench(root, *argv, "--json")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    return result.stdout


def test_records_do_not_move_when_the_working_tree_does(ws: Workspace) -> None:
    root = ws.root
    (root / "data").mkdir()
    (root / "data" / "raw.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (root / "prepare.py").write_text(textwrap.dedent(PREPARE), encoding="utf-8")
    (root / "train.py").write_text(textwrap.dedent(TRAIN), encoding="utf-8")
    (root / "params.yaml").write_text("train:\n  lr: 0.25\n  batch: 16\n", encoding="utf-8")
    (root / "workbench.yaml").write_text(PIPELINE, encoding="utf-8")
    result = ws.workflows.repro()
    assert result.status == "succeeded", result.message
    stages = {s.stage: s for s in result.stages}
    train_run = stages["train"].run_id
    assert train_run is not None
    plain = ws.runs.execute(RunRequest([sys.executable, "train.py", "--depth", "5"], name="plain"))
    recorded = ws.runs.get(train_run)
    assert recorded.params == {"lr": 0.25, "batch": 16, "depth": 3}  # file, command line and default
    code_snapshot = recorded.snapshot_before
    assert code_snapshot is not None

    views = {
        "show": lambda: _cli_json(root, "show", train_run),
        "show plain": lambda: _cli_json(root, "show", plain.id),
        "compare": lambda: _cli_json(root, "compare", train_run, plain.id),
        "lineage model": lambda: _cli_json(root, "lineage", "model:1"),
        "lineage file": lambda: _cli_json(root, "lineage", "data/clean.csv"),
        "pipeline": lambda: json.dumps(ws.workflows.pipeline_run(result.pipeline_run), sort_keys=True),
        "models": lambda: _cli_json(root, "models"),
        "stage records": lambda: json.dumps([s.parts for s in stages_of(ws.db, result.pipeline_run)]),
    }
    before = {name: view() for name, view in views.items()}
    stage_params = [json.loads(parts).get("params") for parts in json.loads(before["stage records"])]
    assert {"lr": 0.25, "batch": 16} in stage_params

    # Edit or delete everything the runs read or were configured by.
    (root / "params.yaml").write_text("train:\n  lr: 9.0\n  batch: 999\n", encoding="utf-8")
    (root / "train.py").write_text("raise SystemExit('edited')\n", encoding="utf-8")
    (root / "prepare.py").unlink()
    (root / "workbench.yaml").write_text(PIPELINE.replace("prepare.py", "gone.py"), encoding="utf-8")
    shutil.rmtree(root / "data")
    (root / "model.pkl").write_bytes(b"overwritten")

    after = {name: view() for name, view in views.items()}
    # The file lineage's root describes the file as it is now; the runs behind it must not move.
    lineage_before, lineage_after = (json.loads(v["lineage file"]) for v in (before, after))
    assert lineage_before["children"] == lineage_after["children"]
    assert lineage_after["details"]["exists"] is False
    for name in views:
        if name != "lineage file":
            assert after[name] == before[name], name
    # The code snapshot still holds the code and params file the run used.
    assert b"parse_args" in ws.versions.read_file(code_snapshot, "train.py")
    assert b"lr: 0.25" in ws.versions.read_file(code_snapshot, "params.yaml")

    # A rerun runs the recorded code with the params the stage was given then, not today's file.
    again = ws.runs.rerun(train_run)
    assert again.status == "succeeded", [line.text for line in ws.runs.log_lines(again.id)]
    assert again.params == {"lr": 0.25, "batch": 16, "depth": 3}
