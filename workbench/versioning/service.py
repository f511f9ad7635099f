"""VersioningService (``ws.versions``): snapshots of the project folder, see docs/CONTRACTS.md.

Snapshots are rows in the ``snapshots`` table pointing at a root tree object in the blob cache.
Writers (snapshot, put_file) hold a shared lock on the cache while they add objects and commit the
row that references them; ``gc`` holds it exclusively, so it never deletes an object a writer is
about to reference. Everything else only reads and needs no lock.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.clock import SYSTEM_CLOCK, Clock
from workbench.errors import AmbiguousIdError, UnknownIdError, UsageError, WorkbenchError
from workbench.store.db import atomic
from workbench.versioning.ignore import IgnoreRules
from workbench.versioning.models import SNAPSHOT_KINDS, Change, SnapshotInfo, display_path
from workbench.versioning.state import StatIndex
from workbench.versioning.status import StatusReport
from workbench.versioning.trees import DIR, LINK, TreeReader, file_entry
from workbench.versioning.worktree import WorkTree, scan

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.versioning.blobs import BlobStore
    from workbench.versioning.diff_summary import FileDiff
    from workbench.versioning.reports import FileEntry, FsckReport, GcReport, RestoreResult
    from workbench.versioning.watch.lock import WatchStatus
    from workbench.versioning.watch.watcher import Watcher, WatchEvent

# ``status`` only hashes (nothing stored), and a file's hash does not depend on how it is chunked,
# so it never needs the project config (reading it costs milliseconds of start-up).
HASH_READ_LIMIT = 8 * 1024 * 1024

Progress = Callable[[int, int], None]
Salt = Callable[[], tuple[int, str]]
"""(pid, random hex) mixed into each snapshot record, so equal trees at one instant get distinct ids."""


def random_salt() -> tuple[int, str]:
    return os.getpid(), os.urandom(8).hex()

_LATEST = re.compile(r"^(latest|HEAD)(?:~(\d+))?$")
_COLUMNS = "id, root_tree, parent, created_at, kind, message, files, bytes, new_bytes, changed_paths"


def _clean(path: str) -> str:
    """A hinted path as the scanner names it: posix, project-relative, no empty or "." parts."""
    return "/".join(p for p in path.replace(os.sep, "/").split("/") if p and p != ".")


def _info(row: Any, created: bool = True) -> SnapshotInfo:
    return SnapshotInfo(
        id=row[0], root_tree=row[1], parent=row[2], created_at=row[3], kind=row[4], message=row[5],
        files=row[6], bytes=row[7], new_bytes=row[8], changed_paths=json.loads(row[9] or "[]"),
        created=created,
    )


class VersioningService:
    """The versioned store of one project."""

    def __init__(self, project: Project, *, clock: Clock = SYSTEM_CLOCK, salt: Salt = random_salt) -> None:
        self.project = project
        self.root = project.root
        self.fetch_missing: Callable[[str], bool] | None = None
        """Fetches an object the cache lacks from elsewhere (the Workspace wires in the remotes)."""
        self.clock = clock
        """Stamps snapshots and pins."""
        self.salt = salt
        """Makes two snapshots of the same tree at the same moment distinct records."""
        self.remote_holder: Callable[[str, str], str | None] | None = None
        """``(hash, snapshot) -> name`` of a remote known to hold the object (no network), for fsck."""

    # -- pieces ---------------------------------------------------------------------------------
    @cached_property
    def store(self) -> BlobStore:
        from workbench.versioning.blobs import BlobStore

        store = BlobStore(self.project.cache_dir, self.project.config.store.compression_level)
        store.fetch_missing = self.fetch_missing
        return store

    @cached_property
    def reader(self) -> TreeReader:
        return TreeReader(lambda digest: self.store.read_bytes(digest))  # the cache opened on first read

    def _index(self) -> StatIndex:
        return StatIndex(self.project.paths.stat_index).load()

    def _rules(self) -> IgnoreRules:
        return IgnoreRules(self.root)

    def ignore_matcher(self) -> Callable[[str], bool]:
        return self._rules().matcher()

    def _scan(self, store: BlobStore | None, *, force: frozenset[str] = frozenset(),
              progress: Progress | None = None, dirs_out: list[Any] | None = None) -> WorkTree:
        from workbench.versioning.environments import said

        index = self._index()
        threshold = self.project.config.store.chunk_threshold if store is not None else HASH_READ_LIMIT
        rules, found = self.rules_with_environments()
        tree = scan(str(self.root), rules, index, store,
                    threshold=threshold, force=force, progress=progress, dirs_out=dirs_out)
        index.save()
        tree.skipped.extend(said(found, written=False))
        return tree

    def rules_with_environments(self, folders: Iterable[str] | None = None,
                                ) -> tuple[IgnoreRules, list[tuple[str, str]]]:
        """See :func:`workbench.versioning.environments.rules_with_environments`."""
        from workbench.versioning.environments import rules_with_environments

        return rules_with_environments(self.root, self.project.paths.store_dir, self._rules(), folders)

    def _scan_for_snapshot(self, store: BlobStore, reader: TreeReader, hinted: frozenset[str] | None,
                           held: frozenset[str], progress: Progress | None) -> WorkTree:
        """Scan what ``snapshot`` needs: only the hinted paths over HEAD when it can, else everything.
        A Python environment found where it scans, never offered before, is first left out (a line in
        ``.workbenchignore``) and said in the skipped list (see :mod:`environments`)."""
        from workbench.versioning.environments import folders_of, leave_out_environments, said

        index = self._index()
        rules = self._rules()
        left_out = leave_out_environments(self.root, self.project.paths.store_dir,
                                          None if hinted is None else folders_of(hinted | held), rules)
        rules = self._rules() if left_out else rules  # read again with the lines just added
        threshold = self.project.config.store.chunk_threshold
        head = self.head() if hinted is not None or held else None
        tree = None
        if hinted is not None and head is not None:
            from workbench.errors import CorruptObjectError, MissingObjectError
            from workbench.versioning.incremental import incremental_scan

            try:
                tree = incremental_scan(str(self.root), rules, index, store, reader, head.root_tree,
                                        head.files, hinted, threshold=threshold, force=hinted, hold=held,
                                        progress=progress)
            except (MissingObjectError, CorruptObjectError):
                tree = None  # HEAD's trees cannot be read: a full rescan does not need them
        if tree is None:
            tree = scan(str(self.root), rules, index, store, threshold=threshold,
                        force=hinted or frozenset(), progress=progress, hold=held)
        if held and head is not None:
            from workbench.versioning.incremental import hold_back

            hold_back(str(self.root), reader, store, tree, head.root_tree, held)
        index.save()
        tree.skipped.extend(said(left_out, written=True))
        return tree

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot(self, message: str = "", kind: str = "manual", *, changed_paths: list[str] | None = None,
                 hold: list[str] | None = None, progress: Progress | None = None) -> SnapshotInfo:
        """Version the folder now. Reuses the latest snapshot if nothing changed.

        ``changed_paths``: the only paths (files or folders, deleted ones included) that may differ
        from HEAD; only they are rescanned, the rest is carried over (see :mod:`incremental`).
        ``hold``: files or folders still being written, kept at their HEAD version (left out if new).
        """
        if kind not in SNAPSHOT_KINDS:
            raise UsageError(f"unknown snapshot kind {kind!r}", f"use one of {', '.join(SNAPSHOT_KINDS)}")
        import blake3

        from workbench.versioning.locks import cache_lock, register_project

        store = self.store
        store.ensure_dirs()
        register_project(store.root, self.project.paths.db)
        hinted = None if changed_paths is None else frozenset(_clean(p) for p in changed_paths)
        held = frozenset(_clean(p) for p in hold or ()) - {""}
        reader = TreeReader(store.read_bytes)
        with cache_lock(store.root, exclusive=False):
            tree = self._scan_for_snapshot(store, reader, hinted, held, progress)
            with atomic(self.project.db) as db:
                latest = db.execute(
                    f"SELECT {_COLUMNS} FROM snapshots ORDER BY created_at DESC, rowid DESC LIMIT 1"
                ).fetchone()
                if latest is not None and latest[1] == tree.root:
                    info = _info(latest, created=False)
                    info.skipped = tree.skipped
                    self._set_head(info.id)
                    return info
                if hinted is not None:
                    changed = sorted(hinted - {""})
                elif kind == "auto":
                    from workbench.versioning.diff import diff_trees

                    reader.add(tree.trees)
                    changed = [c.path for c in diff_trees(reader, latest[1] if latest else None, tree.root)]
                else:
                    changed = []
                created_at = self.clock.now()
                record = json.dumps([tree.root, latest[0] if latest else None, created_at, kind, message,
                                     *self.salt()])
                snap_id = blake3.blake3(record.encode()).hexdigest()
                info = SnapshotInfo(
                    snap_id, tree.root, latest[0] if latest else None, created_at, kind, message,
                    tree.files, tree.bytes, tree.new_bytes, changed, True, tree.skipped,
                )
                db.execute(
                    f"INSERT INTO snapshots ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (info.id, info.root_tree, info.parent, info.created_at, info.kind, info.message,
                     info.files, info.bytes, info.new_bytes,
                     json.dumps([display_path(p) for p in info.changed_paths])),
                )
            self._set_head(info.id)
        return info

    def log(self, limit: int | None = None, include_auto: bool = True) -> list[SnapshotInfo]:
        sql = f"SELECT {_COLUMNS} FROM snapshots"
        if not include_auto:
            sql += " WHERE kind != 'auto'"
        sql += " ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_info(r) for r in self.project.db.execute(sql)]

    def resolve(self, ref: str) -> str:
        """A full snapshot id from a unique prefix, ``latest`` or ``latest~N``."""
        ref = ref.strip()
        match = _LATEST.match(ref)
        if match:
            back = int(match.group(2) or 0)
            row = self.project.db.execute(
                "SELECT id FROM snapshots ORDER BY created_at DESC, rowid DESC LIMIT 1 OFFSET ?", (back,)
            ).fetchone()
            if row is None:
                count = self.project.db.execute("SELECT count(*) FROM snapshots").fetchone()[0]
                raise UnknownIdError(
                    f"no snapshot '{ref}' (the project has {count} snapshot{'s' * (count != 1)})",
                    "take one with 'workbench snapshot'" if not count else "see 'workbench log'",
                )
            return str(row[0])
        prefix = ref.lower()
        if not prefix or not re.fullmatch(r"[0-9a-f]{1,64}", prefix):
            raise UnknownIdError(f"not a snapshot id: {ref!r}", "use an id from 'workbench log', or latest~N")
        rows = self.project.db.execute(
            "SELECT id FROM snapshots WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")
        ).fetchall()
        if not rows:
            raise UnknownIdError(f"unknown snapshot id {ref!r}", "see 'workbench log' for ids")
        if len(rows) > 1:
            raise AmbiguousIdError(f"snapshot id {ref!r} is ambiguous", "give more characters of the id")
        return str(rows[0][0])

    def get(self, ref: str) -> SnapshotInfo:
        row = self.project.db.execute(f"SELECT {_COLUMNS} FROM snapshots WHERE id = ?",
                                 (self.resolve(ref),)).fetchone()
        return _info(row)

    def _set_head(self, snap_id: str) -> None:
        """Remember which snapshot the working folder matches (status compares against it)."""
        path = self.project.paths.head
        tmp = path.with_name(f"HEAD.{os.getpid()}.tmp")
        try:
            tmp.write_text(snap_id + "\n", encoding="ascii")
            os.replace(tmp, path)
        except OSError:
            pass

    def _head_id(self) -> str | None:
        """The id the HEAD file names (not checked against the database), or None."""
        try:
            snap_id = self.project.paths.head.read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return snap_id or None

    def head(self) -> SnapshotInfo | None:
        """The snapshot the working folder was last synchronised with (taken or restored), else latest."""
        snap_id = self._head_id()
        if snap_id:
            row = self.project.db.execute(f"SELECT {_COLUMNS} FROM snapshots WHERE id = ?",
                                          (snap_id,)).fetchone()
            if row is not None:
                return _info(row)
        return self.latest()

    def latest(self) -> SnapshotInfo | None:
        row = self.project.db.execute(
            f"SELECT {_COLUMNS} FROM snapshots ORDER BY created_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return _info(row) if row is not None else None

    # -- reading snapshots ----------------------------------------------------------------------
    def files(self, ref: str) -> dict[str, FileEntry]:
        root = self.get(ref).root_tree
        return {path: file_entry(path, item) for path, item in self.reader.walk(root)}

    def read_file(self, ref: str, path: str) -> bytes:
        from workbench.versioning.restore import clean_path

        info = self.get(ref)
        rel = clean_path(path)
        item = self.reader.lookup(info.root_tree, rel)
        if item is None:
            raise UnknownIdError(f"no file {display_path(rel)!r} in snapshot {info.short_id}",
                                 f"list its files with 'workbench diff {info.short_id}' or --json log")
        if item[1] == DIR:
            raise UsageError(f"{display_path(rel)!r} is a folder in snapshot {info.short_id}",
                             "name a file inside it")
        if item[1] == LINK:
            return os.fsencode(item[4])
        return self.store.read_bytes(item[4])

    def iter_object(self, digest: str) -> Iterator[bytes]:
        return self.store.iter_object(digest)

    def export_object(self, digest: str, dest: Path) -> None:
        self.store.export(digest, dest)

    def hash_file(self, path: Path) -> str:
        from workbench.versioning.chunking import hash_path

        return hash_path(str(path))

    def put_file(self, path: Path) -> str:
        """Store one file's content (kept by gc until unpinned); returns its hash."""
        from workbench.versioning.chunking import UnstableFileError, ingest
        from workbench.versioning.locks import cache_lock, register_project

        store = self.store
        store.ensure_dirs()
        register_project(store.root, self.project.paths.db)
        with cache_lock(store.root, exclusive=False):
            for attempt in range(5):
                try:
                    digest = ingest(str(path), store, self.project.config.store.chunk_threshold).hash
                    break
                except UnstableFileError:
                    time.sleep(0.02 * (attempt + 1))
            else:
                raise WorkbenchError(f"{path} keeps changing while being read", "retry when it is finished")
            with atomic(self.project.db) as db:
                db.execute("INSERT OR IGNORE INTO object_pins (hash, created_at) VALUES (?, ?)",
                           (digest, self.clock.now()))
        return digest

    # -- comparing ------------------------------------------------------------------------------
    def working_tree(self, progress: Progress | None = None, dirs_out: list[Any] | None = None) -> WorkTree:
        """Scan the working folder into in-memory trees (nothing stored); ``dirs_out`` gets the
        scanned folders (see :func:`~workbench.versioning.worktree.scan`)."""
        tree = self._scan(None, progress=progress, dirs_out=dirs_out)
        self.reader.add(tree.trees)
        return tree

    def status(self, progress: Progress | None = None, *, use_watcher: bool = True) -> list[Change]:
        return self.status_report(progress, use_watcher=use_watcher).changes

    def status_report(self, progress: Progress | None = None, *, use_watcher: bool = True) -> StatusReport:
        """``status`` saying how it was answered: ``via`` "watcher" (only the paths a live watcher
        saw change were looked at, see :mod:`pending`) or "scan" (the whole folder)."""
        from workbench.versioning.status import status_report

        return status_report(self, progress, use_watcher=use_watcher)

    def diff(self, a: str, b: str | None = None) -> list[Change]:
        from workbench.versioning.diff import diff_trees

        left = self.get(a).root_tree
        right = self.get(b).root_tree if b is not None else self.working_tree().root
        return diff_trees(self.reader, left, right)

    def unified_diff(self, a: str, b: str | None, path: str) -> str:
        from workbench.versioning.diff import unified

        rel, old, new, labels = self._two_sides(a, b, path)
        return unified(old, new, rel, *labels)

    def file_diff(self, a: str | None, b: str | None, path: str) -> FileDiff:
        """PATH from ``a`` (None: absent) to ``b`` (None: the working folder): a unified diff, or
        a summary for CSV/TSV and binary files (:mod:`workbench.versioning.diff_summary`)."""
        from workbench.versioning.diff_summary import file_diff

        rel, old, new, labels = self._two_sides(a, b, path)
        return file_diff(rel, old, new, *labels)

    def _two_sides(self, a: str | None, b: str | None,
                   path: str) -> tuple[str, bytes | None, bytes | None, tuple[str, str]]:
        from workbench.versioning.restore import clean_path
        rel = clean_path(path)
        old = self._maybe_read(a, rel) if a is not None else None
        if b is None:
            full = self.root / rel
            new = full.read_bytes() if full.is_file() and not full.is_symlink() else None
            label = "working"
        else:
            new, label = self._maybe_read(b, rel), self.get(b).short_id
        if old is None and new is None:
            raise UnknownIdError(f"{display_path(rel)!r} is in neither version", "check the path")
        return display_path(rel), old, new, (self.get(a).short_id if a is not None else "", label)

    def _maybe_read(self, ref: str, rel: str) -> bytes | None:
        item = self.reader.lookup(self.get(ref).root_tree, rel)
        if item is None or item[1] == DIR:
            return None
        return os.fsencode(item[4]) if item[1] == LINK else self.store.read_bytes(item[4])

    # -- restoring ------------------------------------------------------------------------------
    def restore(self, ref: str, paths: list[str] | None = None, *, force: bool = False,
                safety: bool = True, progress: Progress | None = None) -> RestoreResult:
        """Bring back a snapshot (or chosen paths of it) into the project folder.

        Unsaved work (a working tree that no snapshot holds) is first saved as a ``safety``
        snapshot; with ``safety=False`` it is refused unless ``force``.
        """
        from workbench.versioning.restore import apply, clean_path, flatten

        info = self.get(ref)
        wanted = None if paths is None else [clean_path(p) for p in paths]
        if wanted is not None:
            for rel in wanted:
                if rel and self.reader.lookup(info.root_tree, rel) is None:
                    raise UnknownIdError(f"no path {display_path(rel)!r} in snapshot {info.short_id}",
                                         "check the path with 'workbench diff'")
        work = self.working_tree()
        saved = self.project.db.execute("SELECT 1 FROM snapshots WHERE root_tree = ? LIMIT 1",
                                   (work.root,)).fetchone()
        safety_id: str | None = None
        work_root = work.root
        if saved is None:
            if safety:
                try:
                    safe = self.snapshot(f"before restoring {info.short_id}", kind="safety")
                except WorkbenchError as exc:
                    if not force:
                        raise WorkbenchError(
                            f"unsaved changes could not be saved before restoring: {exc.message}",
                            "fix that, or pass --force to overwrite them",
                        ) from None
                else:
                    safety_id = safe.id
                    work_root = safe.root_tree
            elif not force:
                raise WorkbenchError("the working folder has changes that no snapshot holds",
                                     "take a snapshot first, or pass --force to discard them")
        current = flatten(self.reader, work_root, wanted)
        result = apply(self.store, self.reader, info.root_tree, str(self.root), wanted, current,
                       delete_extra=True, snapshot_id=info.id, progress=progress)
        result.safety_snapshot = safety_id
        if wanted is None:
            self._set_head(info.id)
        return result

    def checkout(self, ref: str, dest: Path, paths: list[str] | None = None,
                 progress: Progress | None = None) -> None:
        """Materialise a snapshot (or some paths of it) into another folder."""
        from workbench.versioning.restore import apply, clean_path

        info = self.get(ref)
        wanted = None if paths is None else [clean_path(p) for p in paths]
        dest.mkdir(parents=True, exist_ok=True)
        apply(self.store, self.reader, info.root_tree, str(dest.resolve()), wanted, {},
              delete_extra=False, snapshot_id=info.id, progress=progress)

    # -- maintenance ----------------------------------------------------------------------------
    def fsck(self, progress: Progress | None = None) -> FsckReport:
        """Verify the local cache. A missing object is reported, never fetched from a remote behind
        fsck's back (a cache without the fetch hook); the report names a remote known to hold it."""
        from workbench.versioning.blobs import BlobStore
        from workbench.versioning.maintenance import fsck

        local = BlobStore(self.project.cache_dir, self.project.config.store.compression_level)
        report = fsck(self.project.db, local, progress)
        holder = self.remote_holder
        if holder is not None:
            import dataclasses  # here: `workbench status` never imports dataclasses (start-up time)

            report.problems = [dataclasses.replace(p, remote=holder(p.hash, p.snapshot) or "")
                               for p in report.problems]
        return report

    def gc(self, progress: Progress | None = None) -> GcReport:
        from workbench.versioning.locks import register_project
        from workbench.versioning.maintenance import gc

        register_project(self.store.root, self.project.paths.db)
        return gc(self.project.paths.db, self.store, progress)

    def watcher(self, on_event: Callable[[WatchEvent], None] | None = None) -> Watcher:
        """The project's auto-versioning watcher, not started (``start()``, ``stop()``)."""
        from workbench.versioning.watch.watcher import Watcher

        return Watcher(self, on_event=on_event)

    def watch_status(self) -> WatchStatus:
        """Whether another process watches this project, without starting anything."""
        from workbench.versioning.watch.lock import watch_status

        return watch_status(self.project.paths.locks)
