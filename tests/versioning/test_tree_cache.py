"""The folder-hash cache (``.workbench/index.trees``): an unchanged folder's tree hash is reused
without building its tree, and any change below a folder, however deep and whoever recorded it in
the stat index, gives that folder and all above it a new hash."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workbench.core.workspace import Workspace
from workbench.versioning.ignore import IgnoreRules
from workbench.versioning.service import HASH_READ_LIMIT
from workbench.versioning.state import StatIndex
from workbench.versioning.worktree import WorkTree, scan

FOLDERS = 6  # "", a, a/b, a/b/c, a/b/c/d, other
DEEP = "a/b/c/d/deep.txt"


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _project(ws: Workspace) -> str:
    for rel, text in ((DEEP, "deep one\n"), ("a/x.txt", "x\n"), ("top.txt", "top\n"),
                      ("other/y.txt", "y\n")):
        _write(ws.root, rel, text)
    return ws.versions.snapshot("base").root_tree


def _settled(ws: Workspace) -> WorkTree:
    """Scan until the stat index vouches for every file (past the racy-timestamp window)."""
    deadline = time.monotonic() + 30
    while True:
        tree = ws.versions.working_tree()
        if tree.hashed == 0 or time.monotonic() > deadline:
            assert tree.hashed == 0, "files were still re-hashed after 30 s"
            return tree
        time.sleep(0.05)


def _changes(ws: Workspace) -> dict[str, str]:
    return {c.path: c.change for c in ws.versions.status(use_watcher=False)}


def test_unchanged_folders_are_reused_and_a_deep_change_is_seen(ws: Workspace) -> None:
    head = _project(ws)
    _settled(ws)
    tree = ws.versions.working_tree()  # the previous scan recorded every folder
    assert tree.hashed == 0 and tree.reused == FOLDERS and tree.root == head
    assert _changes(ws) == {}

    _write(ws.root, DEEP, "deep two\n")  # same size
    assert _changes(ws) == {DEEP: "modified"}
    tree = _settled(ws)
    assert tree.root != head
    again = ws.versions.working_tree()
    assert again.reused == FOLDERS and again.root == tree.root
    # The folders on the way down are known by hash only: the diff builds them when it descends.
    assert _changes(ws) == {DEEP: "modified"}

    os.chmod(ws.root / DEEP, 0o755)
    changed = ws.versions.working_tree()
    assert changed.reused == 1 and changed.root != tree.root  # only "other" was untouched
    assert _changes(ws) == {DEEP: "modified"}

    _write(ws.root, DEEP, "deep one\n")
    os.chmod(ws.root / DEEP, 0o644)
    assert _settled(ws).root == head
    assert ws.versions.working_tree().reused == FOLDERS
    assert _changes(ws) == {}


def test_a_change_the_stat_index_learnt_elsewhere_is_not_hidden(ws: Workspace) -> None:
    """A folder's cached hash is keyed by the stat-index entries it was built from, so an entry
    re-recorded by another scan (the watcher's, another process's) changes the fingerprint."""
    head = _project(ws)
    _settled(ws)
    assert ws.versions.working_tree().reused == FOLDERS
    _write(ws.root, DEEP, "deep two\n")
    index_path = ws.project.paths.stat_index
    deadline = time.monotonic() + 30
    while True:  # only the deep folder is rescanned, as an incremental scan does
        index = StatIndex(index_path).load()
        part = scan(str(ws.root), IgnoreRules(ws.root), index, None, threshold=HASH_READ_LIMIT,
                    start="a/b/c/d")
        index.save()
        if part.hashed == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    full = ws.versions.working_tree()
    assert full.hashed == 0  # every file was vouched for by the stat index...
    assert full.root != head  # ...yet the deep folder and those above it got new hashes
    assert full.reused == 2  # "other" and "a/b/c/d" (recorded by the partial scan)
    assert _changes(ws) == {DEEP: "modified"}
    (index_path.with_name(index_path.name + ".trees")).unlink()
    assert ws.versions.working_tree().root == full.root  # the same as with no cache at all


def test_ignore_rules_and_removed_files_change_the_folder(ws: Workspace) -> None:
    head = _project(ws)
    _settled(ws)
    _write(ws.root, ".workbenchignore", "other/y.txt\n")
    assert _changes(ws) == {".workbenchignore": "added", "other/y.txt": "deleted"}
    (ws.root / ".workbenchignore").unlink()
    assert _settled(ws).root == head
    (ws.root / "a" / "x.txt").unlink()
    tree = ws.versions.working_tree()
    assert tree.root != head and tree.reused == 4  # all but "a" and the root
    assert _changes(ws) == {"a/x.txt": "deleted"}


def test_snapshot_reuses_cached_folders_and_stores_what_is_missing(ws: Workspace) -> None:
    _project(ws)
    _settled(ws)
    _write(ws.root, "top.txt", "top two\n")
    snap = ws.versions.snapshot("second")
    assert snap.created
    # Every tree of the new snapshot can be read back from the store (none only in memory).
    assert ws.versions.read_file(snap.id, DEEP) == b"deep one\n"
    assert ws.versions.read_file(snap.id, "top.txt") == b"top two\n"
    fresh = Workspace.open(ws.root)
    try:
        assert snap.parent is not None
        assert [c.path for c in fresh.versions.diff(snap.parent, snap.id)] == ["top.txt"]
    finally:
        fresh.close()
