"""``fsck`` (verify every object, report damage by path and snapshot) and ``gc`` (delete unreferenced).

fsck reads every object reachable from every snapshot once (shared sub-trees are checked once, their
findings reused for each snapshot that contains them), then every other object in the cache.
gc keeps whatever any project sharing the cache references (snapshots and pinned objects), holds
the cache lock exclusively so no writer is mid-way, and refuses to run when a tree is damaged,
because then it cannot know what lies below it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from workbench.errors import CorruptObjectError, MissingObjectError, WorkbenchError
from workbench.store.db import connect
from workbench.versioning.blobs import CHUNKED, BlobStore
from workbench.versioning.locks import cache_lock, projects
from workbench.versioning.packs import sweep
from workbench.versioning.reports import FsckReport, GcReport, Problem
from workbench.versioning.trees import DIR, FILE, decode_tree

Progress = Callable[[int, int], None]
Finding = tuple[str, str, str]
"""(hash, problem, path below the tree)"""


def _join(name: str, rel: str) -> str:
    return f"{name}/{rel}" if rel else name


def fsck(db: sqlite3.Connection, store: BlobStore, progress: Progress | None = None) -> FsckReport:
    report = FsckReport()
    store.check_readable()
    total = sum(1 for _ in store.iter_hashes())
    checked: dict[str, str | None] = {}
    trees: dict[str, list[Finding]] = {}

    def tick() -> None:
        if progress is not None:
            progress(min(len(checked) + len(trees), total), total)

    def check_object(digest: str) -> str | None:
        if digest in checked:
            return checked[digest]
        problem: str | None = None
        try:
            size, chunks = store.verify(digest)
            report.objects += 1 + len(chunks)
            report.bytes += size
            for chunk in chunks:
                checked[chunk] = None
        except MissingObjectError:
            problem = "missing"
        except CorruptObjectError:
            problem = "corrupt"
        checked[digest] = problem
        tick()
        return problem

    def check_tree(digest: str) -> list[Finding]:
        found = trees.get(digest)
        if found is not None:
            return found
        out: list[Finding] = []
        try:
            items = decode_tree(digest, store.read_bytes(digest))
            report.objects += 1
        except MissingObjectError:
            items, out = [], [(digest, "missing", "")]
        except (CorruptObjectError, WorkbenchError):
            items, out = [], [(digest, "corrupt", "")]
        for name, kind, _mode, _size, ref in items:
            if kind == DIR:
                out.extend((h, p, _join(name, rel)) for h, p, rel in check_tree(ref))
            elif kind == FILE:
                problem = check_object(ref)
                if problem:
                    out.append((ref, problem, name))
        trees[digest] = out
        tick()
        return out

    rows = db.execute("SELECT id, root_tree FROM snapshots ORDER BY created_at, rowid").fetchall()
    for snap_id, root in rows:
        report.snapshots += 1
        for digest, problem, rel in check_tree(root):
            report.problems.append(Problem(digest, problem, rel or "/", snap_id))
    for digest in store.iter_hashes():
        if digest not in checked and digest not in trees:
            loose = check_object(digest)
            if loose:
                report.problems.append(Problem(digest, loose, "", ""))
    return report


def _roots(db_path: Path) -> tuple[list[str], list[str]]:
    try:
        conn = connect(db_path, readonly=True)
    except sqlite3.Error as exc:
        raise WorkbenchError(f"gc cannot read {db_path}: {exc}", "fix or unregister that project") from None
    try:
        found = [r[0] for r in conn.execute("SELECT root_tree FROM snapshots")]
        try:
            pins = [r[0] for r in conn.execute("SELECT hash FROM object_pins")]
        except sqlite3.OperationalError:
            pins = []
        return found, pins
    except sqlite3.Error as exc:
        raise WorkbenchError(f"gc cannot read {db_path}: {exc}", "fix or unregister that project") from None
    finally:
        conn.close()


def gc(db_path: Path, store: BlobStore, progress: Progress | None = None) -> GcReport:
    report = GcReport()
    store.check_readable()
    with cache_lock(store.root, exclusive=True):
        live: set[str] = set()
        dbs = {p.resolve() for p in projects(store.root)} | {db_path.resolve()}
        tree_roots: list[str] = []
        roots: list[str] = []
        for db in sorted(dbs):
            if db.exists():
                trees_of_db, pins_of_db = _roots(db)
                tree_roots += trees_of_db
                roots += trees_of_db + pins_of_db
        pins = set(roots) - set(tree_roots)
        stack: list[tuple[str, bool]] = [(r, True) for r in dict.fromkeys(tree_roots)]
        stack += [(p, False) for p in pins]
        while stack:
            digest, is_tree = stack.pop()
            if digest in live:
                continue
            live.add(digest)
            if not store.has(digest):
                if is_tree:  # what lies below it cannot be listed: sweeping would delete it unseen
                    raise WorkbenchError(
                        f"gc stopped: folder tree {digest[:12]} of a snapshot is missing from the cache",
                        "run 'workbench fsck' to see which snapshot, then 'workbench pull' it back or "
                        "remove that snapshot")
                continue  # a file never fetched (a metadata-only clone): nothing of it is here
            try:
                if is_tree:
                    items = decode_tree(digest, store.read_bytes(digest))
                    stack.extend((ref, kind == DIR) for _n, kind, _m, _s, ref in items if kind in (DIR, FILE))
                elif store.kind(digest) == CHUNKED:
                    live.update(h for h, _ in store.chunks(digest) or [])
            except (CorruptObjectError, OSError) as exc:
                raise WorkbenchError(f"gc stopped: object {digest[:12]} is damaged ({exc})",
                                     "run 'workbench fsck' and repair the cache first") from None
        loose = list(store.loose_hashes())
        for i, digest in enumerate(loose):
            if digest in live:
                report.kept += 1
            else:
                size = store.size_on_disk(digest)
                try:
                    os.unlink(store.path_of(digest))
                    report.deleted += 1
                    report.freed_bytes += size
                except FileNotFoundError:
                    pass
            if progress is not None:
                progress(i + 1, len(loose))
        stored_loose = set(loose)
        kept, deleted, freed = sweep(store.packed.folder, live.__contains__, stored_loose.__contains__)
        store.packed.close()
        report.kept += kept
        report.deleted += deleted
        report.freed_bytes += freed
        if store.tmp.is_dir():
            for name in os.listdir(store.tmp):
                try:
                    os.unlink(store.tmp / name)
                    report.temp_removed += 1
                except OSError:
                    pass
    return report

