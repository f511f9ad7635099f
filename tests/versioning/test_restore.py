"""Restore and checkout: bytes, modes, links, deletions, unsaved work, and never writing outside."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.errors import UnsafePathError, WorkbenchError
from workbench.versioning.restore import clean_path
from workbench.versioning.trees import decode_tree, encode_tree, tree_hash


def _write(root: Path, rel: str, data: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    return path


def test_restore_whole_snapshot(ws: Workspace) -> None:
    root = ws.root
    _write(root, "a.txt", "a1")
    script = _write(root, "bin/run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    os.symlink("a.txt", root / "alias")
    (root / "empty").mkdir()
    first = ws.versions.snapshot("v1")
    _write(root, "a.txt", "a2")
    script.chmod(0o644)
    (root / "alias").unlink()
    _write(root, "new.txt", "new")
    (root / "empty").rmdir()
    result = ws.versions.restore(first.id)
    assert result.safety_snapshot is not None  # the unsaved a2/new.txt were saved first
    safety = ws.versions.get(result.safety_snapshot)
    assert safety.kind == "safety"
    assert ws.versions.read_file(safety.id, "new.txt") == b"new"
    assert (root / "a.txt").read_text() == "a1"
    assert (script.stat().st_mode & 0o777) == 0o755
    assert os.readlink(root / "alias") == "a.txt"
    assert not (root / "new.txt").exists()
    assert (root / "empty").is_dir()
    assert "new.txt" in result.deleted


def test_restore_chosen_paths_only(ws: Workspace) -> None:
    _write(ws.root, "keep/x.txt", "x1")
    _write(ws.root, "other.txt", "o1")
    first = ws.versions.snapshot()
    _write(ws.root, "keep/x.txt", "x2")
    _write(ws.root, "other.txt", "o2")
    ws.versions.snapshot()
    ws.versions.restore(first.id, ["keep"])
    assert (ws.root / "keep/x.txt").read_text() == "x1"
    assert (ws.root / "other.txt").read_text() == "o2"
    with pytest.raises(WorkbenchError, match="no path"):
        ws.versions.restore(first.id, ["missing.txt"])


def test_unsaved_work_refused_without_force(ws: Workspace) -> None:
    _write(ws.root, "a.txt", "saved")
    first = ws.versions.snapshot()
    _write(ws.root, "a.txt", "unsaved")
    with pytest.raises(WorkbenchError, match="no snapshot holds"):
        ws.versions.restore(first.id, safety=False)
    assert (ws.root / "a.txt").read_text() == "unsaved"
    ws.versions.restore(first.id, safety=False, force=True)
    assert (ws.root / "a.txt").read_text() == "saved"


def test_user_paths_cannot_escape() -> None:
    for bad in ("../x", "a/../../x", "/etc/passwd"):
        with pytest.raises(UnsafePathError):
            clean_path(bad)
    assert clean_path("./a//b/") == "a/b"


def test_tampered_tree_with_dotdot_is_refused(ws: Workspace, tmp_path: Path) -> None:
    store = ws.versions.store
    store.ensure_dirs()
    blob, _ = store.put_bytes(b"evil")
    data = json.dumps([["..", "f", 420, 4, blob]]).encode()
    digest, _ = store.put_bytes(data)
    with pytest.raises(UnsafePathError):
        decode_tree(digest, data)
    ok = encode_tree([("fine", "f", 420, 4, blob)])
    assert tree_hash(ok) == store.put_bytes(ok)[0]
    with ws.atomic() as db:
        db.execute("INSERT INTO snapshots (id, root_tree, created_at, kind) VALUES (?, ?, 0, 'manual')",
                   ("e" * 64, digest))
    with pytest.raises(UnsafePathError):
        ws.versions.checkout("e" * 64, tmp_path / "dest")
    assert not (tmp_path / "evil").exists()


def test_never_writes_through_a_symlinked_folder(ws: Workspace, tmp_path: Path) -> None:
    _write(ws.root, ".workbenchignore", "sub\n")
    _write(ws.root, "sub/file.txt", "inside")
    (ws.root / ".workbenchignore").unlink()
    first = ws.versions.snapshot()  # sub/file.txt recorded
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.root / "sub" / "file.txt").unlink()
    (ws.root / "sub").rmdir()
    os.symlink(outside, ws.root / "sub")
    _write(ws.root, ".workbenchignore", "sub\n")  # the link itself is not versioned
    with pytest.raises(UnsafePathError, match="symlink"):
        ws.versions.restore(first.id, ["sub/file.txt"], force=True)
    assert list(outside.iterdir()) == []


def test_checkout_into_another_folder(ws: Workspace, tmp_path: Path) -> None:
    _write(ws.root, "a/b/c.txt", "deep")
    info = ws.versions.snapshot()
    dest = tmp_path / "elsewhere"
    ws.versions.checkout(info.id, dest, ["a/b"])
    assert (dest / "a/b/c.txt").read_text() == "deep"
