"""`workbench import dvc` on a tiny repository made with real git and DVC: its commit and an
experiment (dvc exp run) from the git history, and the dvc.lock alone where there is no history."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workbench.core.workspace import Workspace

pytest.importorskip("dvc")
pytestmark = pytest.mark.slow  # DVC commands take a second or more each

TRAIN = """import json, yaml
p = yaml.safe_load(open("params.yaml"))
json.dump({"acc": 1 - p["lr"], "loss": {"train": p["lr"] * 2}}, open("metrics.json", "w"))
"""
PIPELINE = """stages:
  train:
    cmd: {python} train.py
    deps: [train.py]
    params: [lr, model.depth]
    metrics:
      - metrics.json:
          cache: false
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dvc") / "repo"
    root.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    dvc = [sys.executable, "-m", "dvc"]

    def run(*argv: str) -> None:
        subprocess.run(argv, cwd=root, env=env, check=True, capture_output=True, timeout=300)

    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    (root / "params.yaml").write_text("lr: 0.1\nmodel:\n  depth: 3\n")
    (root / "train.py").write_text(TRAIN)
    (root / "dvc.yaml").write_text(PIPELINE.format(python=sys.executable))
    run(*dvc, "repro", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    run(*dvc, "exp", "run", "-q", "-S", "lr=0.3", "-n", "try-lr")
    return root


def test_commits_and_experiments_from_the_git_history(repo: Path, ws: Workspace, cli: Any) -> None:
    result = cli(ws.root, "import", "dvc", str(repo), "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["runs_new"] == 2
    runs = {run.tags["dvc.kind"]: run for run in ws.runs.list()}
    base, exp = runs["commit"], runs["experiment"]
    assert base.params == {"lr": 0.1, "model.depth": 3}
    assert {k: m.last for k, m in base.metrics.items()} == pytest.approx({"acc": 0.9, "loss.train": 0.2})
    assert exp.name == "try-lr" and exp.params["lr"] == 0.3
    assert {k: m.last for k, m in exp.metrics.items()} == pytest.approx({"acc": 0.7, "loss.train": 0.6})
    assert exp.tags["dvc.baseline"] == base.tags["dvc.rev"]
    again = json.loads(cli(ws.root, "import", "dvc", str(repo), "--json").out)
    assert (again["runs_new"], again["points"]) == (0, 0)


def test_lock_and_metrics_without_history(repo: Path, tmp_path: Path, ws: Workspace, cli: Any) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("dvc.yaml", "dvc.lock", "metrics.json", "params.yaml"):
        shutil.copyfile(repo / name, plain / name)
    result = cli(ws.root, "import", "dvc", str(plain), "--json")
    assert result.code == 0, result.err
    (run,) = ws.runs.list()
    assert run.params == {"lr": 0.3, "model.depth": 3}  # what the workspace last ran: the experiment
    assert {k: m.last for k, m in run.metrics.items()} == pytest.approx({"acc": 0.7, "loss.train": 0.6})
    again = json.loads(cli(ws.root, "import", "dvc", str(plain), "--json").out)
    assert again["runs_new"] == 0
    (plain / "metrics.json").write_text('{"acc": 0.75}')
    changed = json.loads(cli(ws.root, "import", "dvc", str(plain), "--json").out)
    assert changed["runs_new"] == 1  # a new state of the lock and its metrics is a new run
