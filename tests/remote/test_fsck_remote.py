"""fsck in a project with a remote: a missing or corrupt local object is reported (with the remote
known to hold it), never fetched from the remote behind fsck's back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import blake3

from tests.conftest import run_workbench
from tests.remote.conftest import write_tree
from workbench.core.workspace import Workspace


def _object_of(root: Path, content: bytes) -> Path:
    ws = Workspace.open(root)
    try:
        path = ws.versions.store.path_of(blake3.blake3(content).hexdigest())
    finally:
        ws.close()
    assert path.is_file(), path
    return path


def test_fsck_reports_a_missing_object_the_remote_holds_and_does_not_fetch_it(tmp_path: Path) -> None:
    root, share = tmp_path / "proj", tmp_path / "share"
    root.mkdir()
    share.mkdir()
    write_tree(root, {"data/a.csv": b"x,y\n1,2\n" * 50, "b.txt": b"kept\n"})
    assert run_workbench(root, "init").returncode == 0
    assert run_workbench(root, "snapshot", "-m", "first").returncode == 0
    assert run_workbench(root, "remote", "add", "origin", share.as_uri()).returncode == 0
    assert run_workbench(root, "push").returncode == 0
    lost = _object_of(root, b"x,y\n1,2\n" * 50)
    os.chmod(lost, 0o600)
    lost.unlink()

    text = run_workbench(root, "fsck")
    assert text.returncode == 1, (text.stdout, text.stderr)
    assert "missing object" in text.stdout and "data/a.csv" in text.stdout
    assert "available on remote origin" in text.stdout
    assert not lost.exists(), "fsck fetched the object from the remote instead of reporting it"

    as_json = run_workbench(root, "fsck", "--json")
    problems = json.loads(as_json.stdout)["problems"]
    assert [(p["problem"], p["remote"]) for p in problems] == [("missing", "origin")]
    assert not lost.exists()


def test_fsck_reports_a_corrupt_object_without_a_remote_hint_when_none_holds_it(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    write_tree(root, {"c.txt": b"original bytes\n" * 20})
    assert run_workbench(root, "init").returncode == 0
    assert run_workbench(root, "snapshot", "-m", "first").returncode == 0
    damaged = _object_of(root, b"original bytes\n" * 20)
    os.chmod(damaged, 0o600)
    body = bytearray(damaged.read_bytes())
    body[-1] ^= 0xFF
    damaged.write_bytes(bytes(body))
    # A remote that never received the object: no hint.
    assert run_workbench(root, "remote", "add", "origin", (tmp_path / "share").as_uri()).returncode == 0
    result = run_workbench(root, "fsck")
    assert result.returncode == 1
    assert "corrupt object" in result.stdout and "c.txt" in result.stdout
    assert "available on remote" not in result.stdout
