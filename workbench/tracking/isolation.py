"""Isolated runs: each in its own checkout of the input snapshot, its outputs copied back by a rule.

``workbench run --isolated`` and every member of ``workbench sweep --parallel N`` (N > 1) run in a
scratch folder ``.workbench/tmp/run-<id>`` holding the input snapshot, so no other run can touch
the files they write. Their outputs are hashed, and model files stored and registered, from that
folder (see :mod:`workbench.tracking.runner`). Then :func:`copy_back` brings each output into the
project under one project-wide lock, by this rule:

* the project's file is what the run's input snapshot held (or absent then and now): copy it;
* the project's file already has exactly the run's bytes: nothing to do;
* otherwise another run or process changed that path since the run started: the project keeps that
  file (the first to finish wins, never a silent swap) and a ``not-copied`` conflict is recorded on
  this run, naming the other run when it can be known. The run's bytes stay in its record and are
  put into the blob cache (``ws.versions.export_object(hash, dest)`` brings them back).

Paths the project ignores (``.venv``, ``.env``, a ``data/`` left out by ``.workbenchignore``) are
in no snapshot: :func:`link_ignored` links them into the checkout, so the job finds them as before;
they are shared with the project, not isolated (what the job writes through such a link lands in
the project at once). Files the run deleted in its checkout are not deleted in the project. The
scratch folder (links and all; never what they point at) is removed when the run has been recorded,
whatever its status; one that a runner killed outright left behind is removed by the next isolated
run once that run is no longer ``running`` (:func:`remove_leftovers`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import UnsafePathError, UsageError
from workbench.tracking import conflicts
from workbench.tracking.conflicts import Conflict

if TYPE_CHECKING:
    from workbench.versioning.versioned import VersionedProject

NOT_COPIED = "changed in the project by another run or process since this run's input snapshot; kept that"


def scratch_checkout(ws: VersionedProject, snapshot: str | None, run_id: str) -> Path:
    """A new folder holding ``snapshot``, for one isolated run."""
    if not snapshot:
        raise UsageError("an isolated run needs an input snapshot, and this project has no versioning",
                         "run without --isolated")
    remove_leftovers(ws)
    scratch = ws.paths.tmp / f"run-{run_id}"
    scratch.mkdir(parents=True)
    try:
        ws.versions.checkout(snapshot, scratch)
        (scratch / ".workbench").mkdir(exist_ok=True)  # the child's store-side files stay out of its outputs
        link_ignored(ws, scratch)
    except BaseException:
        remove_scratch(scratch)
        raise
    return scratch


_NOT_LINKED = frozenset({".workbench", ".git", ".hg", ".svn", ".jj"})


def link_ignored(ws: VersionedProject, scratch: Path) -> list[str]:
    """Symlink each path the project ignores (the topmost ignored folder or file) into ``scratch``
    at the same place; version-control folders and the store excepted. Returns the paths linked."""
    try:
        ignored = ws.versions.ignore_matcher()
    except (ImportError, AttributeError, NotImplementedError):
        return []
    linked: list[str] = []
    stack = [""]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(ws.root / folder if folder else ws.root))
        except OSError:
            continue
        for entry in entries:
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if rel in _NOT_LINKED:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            if not ignored(rel + "/" if is_dir else rel):
                if is_dir:
                    stack.append(rel)
                continue
            dest = scratch / rel
            if dest.exists() or dest.is_symlink():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(entry.path, dest)
            linked.append(rel)
    return sorted(linked)


def remove_scratch(scratch: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)


LEFTOVER_AGE = 3600.0
"""A scratch folder with no run row yet is someone's run being set up, unless it is this old."""


def remove_leftovers(ws: VersionedProject) -> list[str]:
    """Remove the scratch folders (``run-<id>``, ``verify-<id>``) of runs that are no longer running:
    what a runner killed outright left behind. Returns the folder names removed."""
    import time

    removed: list[str] = []
    try:
        entries = list(os.scandir(ws.paths.tmp))
    except OSError:
        return removed
    for entry in entries:
        kind, _, run_id = entry.name.partition("-")
        if kind not in ("run", "verify") or not run_id or not entry.is_dir(follow_symlinks=False):
            continue
        row = ws.db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        try:
            old = time.time() - entry.stat(follow_symlinks=False).st_mtime > LEFTOVER_AGE
        except OSError:
            continue
        if (row is not None and row[0] != "running") or (row is None and old):
            remove_scratch(Path(entry.path))
            removed.append(entry.name)
    return removed


@contextmanager
def copy_back_lock(ws: VersionedProject) -> Iterator[None]:
    """One copy-back into the project at a time, across processes."""
    ws.paths.locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(ws.paths.locks / "copy-back.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_back(scratch: Path, project_root: Path, rel: str) -> str | None:
    """Write the run's file ``rel`` into the project through the boundary writer (atomically; never
    outside it, into ``.workbench/`` or ``.git/``, or through a symlink); the refusal's words, or
    None when written. The one place an isolated run writes into the project."""
    from workbench.executors.staging import copy_back as staged_copy

    report = staged_copy(scratch, project_root, [rel])
    return None if report else (report.refused[0].reason if report.refused else "not copied")


def _through_link(root: Path, target: Path) -> bool:
    """Whether ``target`` or a folder between it and ``root`` is a symlink (never read through one)."""
    return any(p.is_symlink() for p in (target, *target.parents) if root in p.parents)


def _project_hash(ws: VersionedProject, target: Path) -> str | None:
    from workbench.tracking.finalize import hash_path

    return hash_path(ws, target) if target.is_file() else None


def copy_back(
    ws: VersionedProject, db: sqlite3.Connection, run_id: str, scratch: Path, before: str | None,
) -> tuple[list[str], list[Conflict]]:
    """Bring the run's outputs from ``scratch`` into the project by the rule above (``before``: the
    run's input snapshot). Returns the paths copied and the conflicts (already recorded on the run)."""
    from workbench.tracking.finalize import hash_path, snapshot_files
    from workbench.versioning.safe_write import check_relative

    before_files = snapshot_files(ws, before)

    rows = db.execute(
        "SELECT path, hash FROM run_files WHERE run_id = ? AND direction = 'output' AND hash IS NOT NULL"
        " ORDER BY path", (run_id,),
    ).fetchall()
    copied: list[str] = []
    found: list[Conflict] = []
    with copy_back_lock(ws):
        for rel, digest in rows:
            source = scratch / rel
            if Path(rel).is_absolute() or source.is_symlink() or not source.is_file():
                continue
            try:
                check_relative(rel)
            except UnsafePathError as exc:
                found.append(Conflict(rel, "not-copied", None, exc.one_line(), digest))
                continue
            target = ws.root / rel
            if _through_link(ws.root, target):
                found.append(Conflict(rel, "not-copied", None, "a symlink is on that path in the project",
                                      digest))
                continue
            current = _project_hash(ws, target)
            if current == digest:
                continue
            entry = before_files.get(rel)
            base = getattr(entry, "hash", None) if entry is not None else None
            if current == base:
                refused = write_back(scratch, ws.root, rel)
                if refused is None:
                    copied.append(rel)
                else:
                    found.append(Conflict(rel, "not-copied", None, refused, digest, current))
                continue
            hash_path(ws, source, store=True)  # the run's bytes outlive its scratch folder
            found.append(Conflict(rel, "not-copied", conflicts.other_writer(db, run_id, rel, current),
                                  NOT_COPIED, digest, current))
    conflicts.record(db, run_id, found)
    return copied, found
