"""Python environments inside a project: found at init, left out by a .workbenchignore line."""

from __future__ import annotations

import json
import os
import venv
from pathlib import Path

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.versioning.environments import HEADER, find_environments, leave_out_environments


def _project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "train.py").write_text("print('train')\n")
    venv.EnvBuilder(with_pip=False).create(root / "env")  # a real virtualenv: pyvenv.cfg, bin/python
    (root / "envs" / "torch" / "conda-meta").mkdir(parents=True)  # a conda environment, a level down
    (root / "envs" / "torch" / "lib").mkdir()
    (root / "envs" / "torch" / "lib" / "big.so").write_bytes(b"\0" * 1000)
    (root / "data" / "raw" / "x").mkdir(parents=True)
    (root / "data" / "raw" / "x" / "pyvenv.cfg").write_text("two levels down: data, not looked at\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")  # left out by the defaults already
    return root


def test_environments_are_found_a_level_deep_not_through_links(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    os.symlink(root / "env", root / "linked")
    assert find_environments(root) == [("env", "a Python virtualenv"), ("envs/torch", "a conda environment")]


def test_leaving_them_out_twice_adds_nothing_and_keeps_the_users_rules(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / ".workbenchignore").write_text("*.tmp")  # no newline at its end
    assert [rel for rel, _ in leave_out_environments(root)] == ["env", "envs/torch"]
    assert leave_out_environments(root) == []
    assert (root / ".workbenchignore").read_text() == f"*.tmp\n\n{HEADER}\n/env/\n/envs/torch/\n"


def test_init_leaves_them_out_of_every_snapshot(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    done = run_workbench(root, "init")
    assert done.returncode == 0, done.stderr
    assert "left out env/ (a Python virtualenv): added to .workbenchignore" in done.stdout
    assert "left out envs/torch/ (a conda environment)" in done.stdout
    again = run_workbench(root, "init", "--json")
    assert json.loads(again.stdout)["left_out"] == []
    assert run_workbench(root, "snapshot", "-m", "first").returncode == 0
    ws = Workspace.init(root)[0]
    try:
        latest = ws.versions.latest()
        assert latest is not None
        assert set(ws.versions.files(latest.id)) == {".workbenchignore", "src/train.py",
                                                     "data/raw/x/pyvenv.cfg"}
    finally:
        ws.close()
