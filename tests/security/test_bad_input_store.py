"""A damaged store and unreadable project files, through the real ``workbench`` binary.

- A 0-byte ``.workbench/workbench.db`` in an existing project is damage: every command refuses it
  with one line naming the file and what to do, and leaves it as it is (SQLite alone would treat it
  as a new, empty project and the next write would make the loss permanent).
- One unreadable file (or folder) does not block ``snapshot``, ``status`` or ``run``: it is skipped
  with a warning and listed in the snapshot's ``skipped`` list.

The tests run as root here, and root reads any file whatever its mode: as root the commands run
under ``setpriv`` without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (still uid 0, so every file root
owns with normal modes stays usable), which makes ``chmod 000`` bite as it does for any user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_bad_input import ENV, Case, check
from tests.conftest import run_workbench


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    assert run_workbench(root, "init").returncode == 0
    (root / "notes.txt").write_text("hello\n")
    (root / "secret.txt").write_text("top secret\n")
    assert run_workbench(root, "snapshot", "-m", "first").returncode == 0
    return root


# -- a 0-byte database ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [("status",), ("log", "--json"), ("snapshot",), ("init",),
                                  ("run", "--", "python", "-c", "pass"), ("runs",), ("watch", "--status")])
def test_empty_database_is_refused_not_recreated(tmp_path: Path, argv: tuple[str, ...]) -> None:
    root = _project(tmp_path)
    db = root / ".workbench" / "workbench.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(b"")
    result = run_workbench(root, *argv, env=ENV, timeout=60)
    check(result, Case(argv))
    assert f"{db} is empty (0 bytes)" in result.stderr
    assert "restore .workbench/workbench.db from a backup" in result.stderr
    assert db.stat().st_size == 0, "the damaged file must not be silently turned into a new database"


def test_empty_database_moved_aside_then_init_starts_over(tmp_path: Path) -> None:
    """The hint works: moving the empty file aside and running init gives a usable project."""
    root = _project(tmp_path)
    db = root / ".workbench" / "workbench.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(b"")
    db.rename(db.with_suffix(".damaged"))
    assert run_workbench(root, "init").returncode == 0
    assert run_workbench(root, "snapshot").returncode == 0


# -- unreadable files -------------------------------------------------------------------------------
def _as_unprivileged(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``workbench`` as a process for which file modes apply (see the module docstring)."""
    command = [sys.executable, "-m", "workbench", *argv]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux): cannot make a file unreadable")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", "--", *command]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **ENV})


def test_unreadable_file_is_skipped_by_snapshot_status_and_run(tmp_path: Path) -> None:
    root = _project(tmp_path)
    secret = root / "secret.txt"
    (root / "notes.txt").write_text("changed\n")
    secret.write_text("changed too, but unreadable\n")
    secret.chmod(0)
    try:
        snap = _as_unprivileged(root, "snapshot", "--json")
        assert snap.returncode == 0, snap.stderr
        info = json.loads(snap.stdout)
        assert info["created"] and info["files"] == 2
        skipped = {s["path"]: s["reason"] for s in info["skipped"]}
        assert skipped == {"secret.txt": "unreadable (Permission denied); kept its previous version"}

        text = _as_unprivileged(root, "snapshot")
        assert text.returncode == 0
        assert "skipped secret.txt: unreadable (Permission denied)" in text.stderr

        status = _as_unprivileged(root, "status", "--no-watcher", "--json")
        assert status.returncode == 0, status.stderr
        assert [s["path"] for s in json.loads(status.stdout)["skipped"]] == ["secret.txt"]
        plain = _as_unprivileged(root, "status", "--no-watcher")
        assert plain.returncode == 0 and "skipped secret.txt" in plain.stderr

        run = _as_unprivileged(root, "run", "--", "python", "-c", "open('out.txt', 'w').write('ok')")
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stdout + run.stderr
        runs = json.loads(run_workbench(root, "runs", "--json").stdout)
        assert runs[0]["status"] == "succeeded"
    finally:
        secret.chmod(0o644)
    # Its last readable version was kept: restoring the snapshot gives it back.
    latest = json.loads(run_workbench(root, "log", "--json").stdout)[-1]["id"]
    cat = run_workbench(root, "cat", latest, "secret.txt")
    assert cat.returncode == 0 and cat.stdout == "top secret\n"


def test_unreadable_new_file_and_folder_are_left_out(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "fresh.txt").write_text("never snapshotted\n")
    (root / "fresh.txt").chmod(0)
    (root / "locked").mkdir()
    (root / "locked" / "inside.txt").write_text("x\n")
    (root / "locked").chmod(0)
    try:
        snap = _as_unprivileged(root, "snapshot", "--json")
        assert snap.returncode == 0, snap.stderr
        skipped = {s["path"]: s["reason"] for s in json.loads(snap.stdout)["skipped"]}
        assert skipped == {"fresh.txt": "unreadable (Permission denied); left out",
                           "locked": "unreadable folder (Permission denied); left out"}
    finally:
        (root / "fresh.txt").chmod(0o644)
        (root / "locked").chmod(0o755)
