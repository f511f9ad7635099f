"""Python environments inside a project: found at init, left out by a .workbenchignore line."""

from __future__ import annotations

import json
import os
import venv
from pathlib import Path

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.versioning.environments import (
    HEADER,
    OFFERED,
    find_environments,
    folders_of,
    leave_out_environments,
)


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
    store = tmp_path / "store"
    store.mkdir()
    (root / ".workbenchignore").write_text("*.tmp")  # no newline at its end
    assert [rel for rel, _ in leave_out_environments(root, store)] == ["env", "envs/torch"]
    assert leave_out_environments(root, store) == []
    assert (root / ".workbenchignore").read_text() == f"*.tmp\n\n{HEADER}\n/env/\n/envs/torch/\n"
    assert json.loads((store / OFFERED).read_text()) == ["env", "envs/torch"]
    assert not [n for n in os.listdir(root) if ".wbtmp-" in n]
    (root / ".workbenchignore").write_text("*.tmp\n")  # the user deleted the lines: not offered again
    assert leave_out_environments(root, store) == []
    assert (root / ".workbenchignore").read_text() == "*.tmp\n"


def test_the_changed_paths_say_where_to_look() -> None:
    assert folders_of(["env/pyvenv.cfg", "envs/torch/conda-meta/x.json", "train.py", "env"]) == {
        "env", "env/pyvenv.cfg", "envs", "envs/torch", "train.py"}  # files hold no marker: harmless


def test_a_snapshot_leaves_out_an_environment_made_after_init(tmp_path: Path) -> None:
    """A virtualenv created in a project already initialised: the next snapshot, full or
    incremental (the watcher's), leaves it out and says so; a deleted line is not added again."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "train.py").write_text("print(1)\n")
    ws = Workspace.init(root)[0]
    try:
        ws.versions.snapshot("first")
        venv.EnvBuilder(with_pip=False).create(root / "env")
        before = run_workbench(root, "status", "--json")  # says it, writes nothing
        assert before.returncode == 0, before.stderr
        shown = json.loads(before.stdout)
        assert shown["changes"] == []
        assert shown["skipped"] == [{"path": "env", "reason": "a Python virtualenv: left out (the next "
                                     "snapshot adds its line to .workbenchignore)"}]
        assert not (root / ".workbenchignore").exists()
        assert [c.path for c in ws.versions.diff(ws.versions.latest().id)] == []  # type: ignore[union-attr]
        info = ws.versions.snapshot("full")
        assert ("env", "a Python virtualenv: left out by a new line in .workbenchignore (delete it to "
                "version it)") in info.skipped
        assert set(ws.versions.files(info.id)) == {"train.py", ".workbenchignore"}
        assert not ws.versions.status()
        # the watcher's way: only the changed paths are scanned
        (root / "envs" / "gpu" / "conda-meta").mkdir(parents=True)
        (root / "envs" / "gpu" / "conda-meta" / "history").write_text("x\n")
        hinted = ws.versions.snapshot("auto", kind="auto", changed_paths=["envs/gpu/conda-meta/history"])
        assert [p for p, _ in hinted.skipped] == ["envs/gpu"]
        assert not any(p.startswith("envs/") for p in ws.versions.files(hinted.id))
        # the user wants the virtualenv versioned after all: its line goes, and stays gone
        text = (root / ".workbenchignore").read_text().replace("/env/\n", "")
        (root / ".workbenchignore").write_text(text)
        again = ws.versions.snapshot("with env")
        assert not again.skipped
        assert "env/pyvenv.cfg" in ws.versions.files(again.id)
        assert "/env/" not in (root / ".workbenchignore").read_text()
    finally:
        ws.close()


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
