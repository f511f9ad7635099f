"""Managing runs after the fact: rename, tag, archive, and remove.

What a run *recorded* (its command, params, inputs, outputs, points, logs, snapshots) never changes;
its name and tags are labels a user may edit later. Archiving is a label too (the tag
:data:`ARCHIVED_TAG`, holding the time it was archived): an archived run keeps everything and is only
left out of the default listings.

Removal is planned first (:func:`plan_removal`) so that a user can be shown exactly what goes before
anything is deleted: the runs, their points, log lines and file records, and the run-before/run-after
snapshots that only they referenced. Runs that other records depend on are refused with the reason
(a registered model version, a deployment, a pipeline stage that reuses their outputs, a rerun of
them, a run still going). :func:`remove` deletes in one transaction; the blobs that only those
snapshots held are then freed by the versioning service's ``gc``.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.errors import UsageError
from workbench.store.db import atomic
from workbench.tracking.events import valid_key
from workbench.tracking.records import refresh_summary

ARCHIVED_TAG = "archived"
"""The tag that marks a run archived (its value: the unix time it was archived)."""
RUN_SNAPSHOT_KINDS = ("run-before", "run-after")
MAX_NAME = 200


def rename(db: sqlite3.Connection, run_id: str, name: str) -> None:
    """Give a run a new name ('' clears it)."""
    name = name.strip()
    if len(name) > MAX_NAME or not name.isprintable():
        raise UsageError(f"run name {name[:40]!r} is not usable",
                         f"use at most {MAX_NAME} printable characters")
    with atomic(db):
        db.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id))


def parse_tags(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (a bare ``KEY`` is an empty value) as a dict; one-line error if malformed."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        key = key.strip()
        if not valid_key(key):
            raise UsageError(f"tag {pair[:40]!r} has no usable key", "write KEY=VALUE")
        tags[key] = value
    return tags


def set_tags(db: sqlite3.Connection, run_id: str, tags: dict[str, str],
             remove: list[str] | tuple[str, ...] = ()) -> None:
    """Set ``tags`` and drop the keys in ``remove`` on one run."""
    with atomic(db):
        for key in remove:
            db.execute("DELETE FROM run_tags WHERE run_id = ? AND key = ?", (run_id, key))
        db.executemany(
            "INSERT INTO run_tags (run_id, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            [(run_id, key, value) for key, value in tags.items()],
        )
        refresh_summary(db, run_id)


def archive(db: sqlite3.Connection, run_ids: list[str], *, undo: bool = False) -> None:
    """Archive runs (or bring them back with ``undo``); nothing they recorded changes."""
    stamp = f"{time.time():.0f}"
    with atomic(db):
        for run_id in run_ids:
            if undo:
                set_tags(db, run_id, {}, [ARCHIVED_TAG])
            else:
                set_tags(db, run_id, {ARCHIVED_TAG: stamp})


@dataclass
class RemovalPlan:
    """What removing some runs would delete, and the runs that cannot go (with the reason)."""

    runs: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    points: int = 0
    log_lines: int = 0
    files: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["refused"] = [{"run": run, "reason": reason} for run, reason in self.refused]
        return data


def _marks(values: list[str] | set[str] | list[int]) -> str:
    return ",".join("?" * len(values))


def _count(db: sqlite3.Connection, sql: str, ids: list[str]) -> int:
    return int(db.execute(sql.format(marks=_marks(ids)), ids).fetchone()[0]) if ids else 0


def _table_exists(db: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
    return db.execute(query, (name,)).fetchone() is not None


def _refusal(db: sqlite3.Connection, run_id: str, status: str, leaving: set[str]) -> str | None:
    if status == "running":
        return "it is still running (cancel it first)"
    query = "SELECT name, version FROM model_versions WHERE run_id = ? LIMIT 1"
    row = db.execute(query, (run_id,)).fetchone()
    if row is not None:
        return f"it produced model {row[0]}:{row[1]} (archive it instead)"
    if _table_exists(db, "deployments"):
        row = db.execute("SELECT name FROM deployments WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
        if row is not None:
            return f"deployment {row[0]} serves its model"
    if _table_exists(db, "stage_runs"):
        row = db.execute("SELECT stage FROM stage_runs WHERE source_run = ? AND run_id IS NOT ? LIMIT 1",
                         (run_id, run_id)).fetchone()
        if row is not None:
            return f"pipeline stage {row[0]} reuses its outputs"
    for (child,) in db.execute("SELECT id FROM runs WHERE parent_run = ?", (run_id,)):
        if child not in leaving:
            return f"run {child} was launched from it (remove both, or archive)"
    return None


def plan_removal(db: sqlite3.Connection, run_ids: list[str]) -> RemovalPlan:
    """What removing ``run_ids`` would delete; runs that cannot go are listed in ``refused``."""
    plan = RemovalPlan()
    leaving = set(run_ids)
    query = f"SELECT id, status, snapshot_before, snapshot_after FROM runs WHERE id IN ({_marks(run_ids)})"
    rows = {r[0]: r for r in db.execute(query, run_ids)} if run_ids else {}
    changed = True
    while changed:  # a refused run keeps its parent too: repeat until nothing more is refused
        changed = False
        for run_id in list(leaving):
            reason = _refusal(db, run_id, str(rows[run_id][1]), leaving) if run_id in rows else "no such run"
            if reason is not None:
                leaving.discard(run_id)
                plan.refused.append((run_id, reason))
                changed = True
    plan.runs = [r for r in run_ids if r in leaving]
    ids = plan.runs
    plan.points = _count(db, "SELECT COALESCE(SUM(count), 0) FROM metric_keys WHERE run_id IN ({marks})", ids)
    plan.log_lines = _count(db, "SELECT count(*) FROM run_logs WHERE run_id IN ({marks})", ids)
    plan.files = _count(db, "SELECT count(*) FROM run_files WHERE run_id IN ({marks})", ids)
    candidates = {s for r in ids for s in rows[r][2:4] if s}
    if candidates:
        query = f"SELECT snapshot_before, snapshot_after FROM runs WHERE id NOT IN ({_marks(ids)})"
        others = {s for (a, b) in db.execute(query, ids) for s in (a, b) if s}
        query = f"SELECT id, kind FROM snapshots WHERE id IN ({_marks(candidates)})"
        kinds = dict(db.execute(query, list(candidates)))
        plan.snapshots = sorted(s for s in candidates
                                if kinds.get(s) in RUN_SNAPSHOT_KINDS and s not in others)
    return plan


def remove(db: sqlite3.Connection, plan: RemovalPlan, *,
           keep_snapshots: frozenset[str] = frozenset()) -> list[str]:
    """Delete the planned runs and their snapshots in one transaction; returns the snapshots deleted
    (a snapshot some other record still points at, or in ``keep_snapshots``, stays)."""
    from workbench.tracking.rollups import delete_points
    from workbench.versioning.watch.retention import delete_snapshot, referenced_snapshot_ids

    ids = plan.runs
    if not ids:
        return []
    marks = _marks(ids)
    dropped: list[str] = []
    with atomic(db):
        delete_points(db, [r[0] for r in db.execute(f"SELECT id FROM metric_keys WHERE run_id IN ({marks})",
                                                    ids)])
        for table in ("metric_keys", "run_logs", "run_files", "run_params", "run_tags", "run_summaries"):
            db.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
        if _table_exists(db, "executor_jobs"):
            db.execute(f"DELETE FROM executor_jobs WHERE run_id IN ({marks})", ids)
        if _table_exists(db, "sweep_members"):
            db.execute(f"UPDATE sweep_members SET run_id = NULL WHERE run_id IN ({marks})", ids)
        if _table_exists(db, "stage_runs"):
            db.execute(f"UPDATE stage_runs SET run_id = NULL WHERE run_id IN ({marks})", ids)
        db.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids)
        still = referenced_snapshot_ids(db) | keep_snapshots
        for snapshot_id in plan.snapshots:
            if snapshot_id not in still and delete_snapshot(db, snapshot_id):
                dropped.append(snapshot_id)
    return dropped
