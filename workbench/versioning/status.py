"""How ``workbench status`` is answered: from a live watcher's pending paths when it can vouch for
them (only those paths are stat'ed over HEAD), else by scanning the whole folder; the report says
which (``via``) and why the watcher's record was not used. A scan that found nothing changed can be
sealed (:meth:`StatusReport.seal`), so the next ``status`` answers from the seal while nothing moved
(:mod:`workbench.versioning.seal`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.versioning.models import Change, SnapshotInfo
from workbench.versioning.seal import Material
from workbench.versioning.worktree import WorkTree

if TYPE_CHECKING:
    from workbench.versioning.service import Progress, VersioningService
    from workbench.versioning.worktree import _Dir


class StatusReport:
    """What ``status_report`` found: the changes, how (``via``), against which snapshot, and ``why``
    the watcher's record was not used (empty when it was); ``skipped``: files the scan left out or
    compared at their previous version, with the reason (unreadable, looks like a secret...), as in
    ``SnapshotInfo.skipped``."""

    __slots__ = ("_sealable", "changes", "head", "skipped", "via", "why")

    def __init__(self, changes: list[Change], via: str, head: str | None, why: str,
                 skipped: list[tuple[str, str]] | None = None) -> None:
        self.changes = changes
        self.via = via
        self.head = head
        self.why = why
        self.skipped: list[tuple[str, str]] = skipped or []
        self._sealable: tuple[Material, list[_Dir]] | None = None

    def seal(self, text: str) -> bool:
        """Write the status seal (:mod:`workbench.versioning.seal`) saying ``text`` (what ``status``
        printed), when this was a full scan that found nothing changed and nothing skipped; whether
        it was written."""
        if self._sealable is None or self.changes or self.skipped:
            return False
        material, dirs = self._sealable
        return material.write(dirs, text)


def status_report(service: VersioningService, progress: Progress | None = None, *,
              use_watcher: bool = True) -> StatusReport:
    """``status`` saying how it was answered: ``via`` "watcher" (only the paths a live watcher saw
    change were looked at, see :mod:`workbench.versioning.watch.pending`) or "scan" (the whole folder)."""
    from workbench.versioning.diff import diff_trees

    why = "--no-watcher"
    if use_watcher:
        head_id = service._head_id()
        from workbench.versioning.watch.pending import pending_paths

        pending, why = pending_paths(service.project.paths.store_dir, head_id)
        if pending is not None and head_id is not None:
            if not pending:
                return StatusReport([], "watcher", head_id, "")
            head = service.head()
            work = _pending_tree(service, head, pending) if head is not None and head.id == head_id else None
            if head is not None and work is not None:
                return StatusReport(diff_trees(service.reader, head.root_tree, work.root), "watcher",
                                    head.id, "", work.skipped)
            why = "the watcher's paths could not be applied to HEAD"
    material = Material(str(service.root))  # before HEAD is read and the folder listed
    head = service.head()
    dirs: list[_Dir] = []
    work = service.working_tree(progress, dirs)
    report = StatusReport(diff_trees(service.reader, head.root_tree if head else None, work.root), "scan",
                          head.id if head else None, why, work.skipped)
    if head is not None and head.id == service._head_id():  # HEAD's file names it (not the fallback)
        report._sealable = material, dirs
    return report

def _pending_tree(service: VersioningService, head: SnapshotInfo, pending: list[str]) -> WorkTree | None:
    """HEAD with only ``pending`` rescanned (nothing stored), or None: scan everything instead."""
    from workbench.errors import CorruptObjectError, MissingObjectError
    from workbench.versioning.environments import folders_of, said
    from workbench.versioning.incremental import incremental_scan
    from workbench.versioning.service import HASH_READ_LIMIT

    index = service._index()
    rules, found = service.rules_with_environments(folders_of(pending))
    try:
        tree = incremental_scan(str(service.root), rules, index, None, service.reader,
                                head.root_tree, head.files, pending, threshold=HASH_READ_LIMIT)
    except (MissingObjectError, CorruptObjectError):
        return None
    if tree is not None:
        index.save()
        service.reader.add(tree.trees)
        tree.skipped.extend(said(found, written=False))
    return tree
