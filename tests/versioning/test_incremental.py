"""Incremental snapshots (``changed_paths``), held paths (``hold``) and recorded changes."""

from __future__ import annotations

import os
import random
from pathlib import Path

from workbench.core.workspace import Workspace


def _write(root: Path, rel: str, data: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)


def _content(ws: Workspace, ref: str) -> dict[str, bytes]:
    return {p: ws.versions.read_file(ref, p) for p in ws.versions.files(ref)}


def _full_root(ws: Workspace) -> str:
    """The root tree a full scan gives for the folder now (nothing stored)."""
    return ws.versions.working_tree().root


def test_hinted_snapshot_rescans_only_the_hinted_paths(ws: Workspace) -> None:
    root = ws.root
    for i in range(5):
        _write(root, f"src/m{i}.py", f"v1 {i}\n")
    _write(root, "a.txt", "a1\n")
    _write(root, "b.txt", "b1\n")
    ws.versions.snapshot("base")
    _write(root, "a.txt", "a2\n")
    _write(root, "b.txt", "b2 longer\n")  # changed, but not hinted
    hinted = ws.versions.snapshot(kind="auto", changed_paths=["a.txt"])
    assert hinted.created and hinted.changed_paths == ["a.txt"]
    assert ws.versions.read_file(hinted.id, "a.txt") == b"a2\n"
    assert ws.versions.read_file(hinted.id, "b.txt") == b"b1\n", "outside the hint: carried over from HEAD"
    assert hinted.files == 7 and hinted.bytes == 5 * 5 + 3 + 3
    full = ws.versions.snapshot(kind="auto")
    assert full.created and full.changed_paths == ["b.txt"]
    assert ws.versions.read_file(full.id, "b.txt") == b"b2 longer\n"
    assert full.files == 7 and full.bytes == 5 * 5 + 3 + 10


def test_deletions_new_folders_renames_links_and_ignored_paths(ws: Workspace) -> None:
    root = ws.root
    _write(root, "old/x.txt", "x\n")
    _write(root, "old/deep/y.txt", "y\n")
    _write(root, "keep/k.txt", "k\n")
    _write(root, "r1.txt", "rename me\n")
    ws.versions.snapshot("base")

    # a folder deleted, hinted only through one file inside it: the whole folder goes
    for rel in ("old/deep/y.txt", "old/x.txt"):
        (root / rel).unlink()
    (root / "old" / "deep").rmdir()
    (root / "old").rmdir()
    # a new folder, hinted only by one of its files: the whole new folder is scanned
    _write(root, "new/a/one.txt", "1\n")
    _write(root, "new/a/two.txt", "2\n")
    _write(root, "new/b/three.txt", "3\n")
    os.rename(root / "r1.txt", root / "r2.txt")
    os.symlink("keep/k.txt", root / "link")
    _write(root, "secret.pem", "nope\n")  # ignored by default: hinted but never versioned
    snap = ws.versions.snapshot(kind="auto", changed_paths=[
        "old/deep/y.txt", "new/a/one.txt", "r1.txt", "r2.txt", "link", "secret.pem"])
    files = ws.versions.files(snap.id)
    assert set(files) == {"keep/k.txt", "new/a/one.txt", "new/a/two.txt", "new/b/three.txt", "r2.txt", "link"}
    assert files["link"].kind == "link" and files["link"].target == "keep/k.txt"
    assert snap.files == 6
    assert snap.root_tree == _full_root(ws), "the patched tree equals a full scan of the folder"
    assert ws.versions.status() == []


def test_a_folder_hint_rescans_its_subtree(ws: Workspace) -> None:
    root = ws.root
    _write(root, "data/a.csv", "1\n")
    _write(root, "other.txt", "o\n")
    ws.versions.snapshot("base")
    _write(root, "data/a.csv", "2\n")
    _write(root, "data/sub/b.csv", "3\n")
    (root / ".workbenchignore").write_text("data/sub/\n")  # rules changed: the watcher would pass None
    snap = ws.versions.snapshot(kind="auto", changed_paths=["data"])
    assert set(ws.versions.files(snap.id)) == {"data/a.csv", "other.txt"}
    assert ws.versions.read_file(snap.id, "data/a.csv") == b"2\n"
    full = ws.versions.snapshot(kind="auto")  # picks up the new .workbenchignore itself
    assert full.changed_paths == [".workbenchignore"]


def test_random_edits_hinted_match_a_full_scan(ws: Workspace) -> None:
    rng = random.Random(3)
    root = ws.root
    names = [f"d{i % 4}/s{i % 3}/f{i}.txt" for i in range(40)]
    for rel in names:
        _write(root, rel, rel)
    ws.versions.snapshot("base")
    for _ in range(6):
        hints: list[str] = []
        for rel in rng.sample(names, 6):
            path = root / rel
            if path.exists() and rng.random() < 0.4:
                path.unlink()
            else:
                _write(root, rel, f"{rel} {rng.random()}")
            hints.append(rel)
        if rng.random() < 0.5:
            folder = f"d{rng.randrange(4)}/s{rng.randrange(3)}"
            for path in sorted((root / folder).glob("*")):
                path.unlink()
            (root / folder).rmdir()
            hints.append(folder)
        snap = ws.versions.snapshot(kind="auto", changed_paths=hints)
        assert snap.root_tree == _full_root(ws)
        assert snap.files == sum(1 for p in root.rglob("*") if p.is_file() and ".workbench" not in p.parts)


def test_hold_keeps_files_being_written_at_their_previous_version(ws: Workspace) -> None:
    root = ws.root
    _write(root, "log.txt", "line 1\n")
    _write(root, "done.txt", "v1\n")
    _write(root, "ckpt/a.bin", "a1")
    base = ws.versions.snapshot("base")
    _write(root, "log.txt", "line 1\nline 2 (half")
    _write(root, "done.txt", "v2\n")
    _write(root, "new.tmp", "partial")
    _write(root, "ckpt/a.bin", "a2")
    _write(root, "ckpt/b.bin", "b2")
    for hints in (["log.txt", "done.txt", "new.tmp", "ckpt"], None):  # incremental, then full rescan
        snap = ws.versions.snapshot(kind="auto", changed_paths=hints, hold=["log.txt", "new.tmp", "ckpt"])
        content = _content(ws, snap.id)
        assert content == {"log.txt": b"line 1\n", "done.txt": b"v2\n", "ckpt/a.bin": b"a1"}
        assert snap.files == 3
        assert any(p == "log.txt" and "previous version" in r for p, r in snap.skipped)
        assert snap.parent in (base.id, None) or not snap.created
    released = ws.versions.snapshot(kind="auto", changed_paths=["log.txt", "new.tmp", "ckpt"])
    assert ws.versions.read_file(released.id, "log.txt") == b"line 1\nline 2 (half"
    assert set(ws.versions.files(released.id)) == {
        "log.txt", "done.txt", "new.tmp", "ckpt/a.bin", "ckpt/b.bin"}


def test_full_auto_snapshot_records_what_changed(ws: Workspace) -> None:
    root = ws.root
    _write(root, "a.txt", "1")
    _write(root, "b/c.txt", "2")
    first = ws.versions.snapshot(kind="auto")
    assert first.changed_paths == ["a.txt", "b/c.txt"]
    (root / "a.txt").unlink()
    _write(root, "b/c.txt", "22")
    second = ws.versions.snapshot(kind="auto")
    assert second.changed_paths == ["a.txt", "b/c.txt"]
    assert ws.versions.get(second.id).changed_paths == ["a.txt", "b/c.txt"]
    _write(root, "d.txt", "3")
    assert ws.versions.snapshot("manual one").changed_paths == []


def test_a_damaged_head_tree_falls_back_to_a_full_rescan(ws: Workspace) -> None:
    root = ws.root
    _write(root, "a/x.txt", "x1")
    _write(root, "b/y.txt", "y1")
    head = ws.versions.snapshot("base")
    ws.versions.store.path_of(head.root_tree).unlink()  # the root tree object is gone
    _write(root, "a/x.txt", "x2")
    _write(root, "b/y.txt", "y2")  # not hinted, but the full rescan sees it
    snap = ws.versions.snapshot(kind="auto", changed_paths=["a/x.txt"])
    assert _content(ws, snap.id) == {"a/x.txt": b"x2", "b/y.txt": b"y2"}
