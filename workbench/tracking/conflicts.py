"""Output conflicts: a run's output whose bytes are not the project's file at that path.

Two ways a run meets one (see docs/tracking.md, "Outputs are the run's own bytes"):

* ``not-copied``: an isolated run (``workbench run --isolated``, a member of ``workbench sweep
  --parallel N``) wrote a file in its own checkout, but by the time it ended another run or process
  had changed that path in the project since the run's input snapshot. The project keeps that newer
  file; this run's bytes stay recorded on the run (``hash``) and in the blob cache.
* ``overwritten``: a plain run wrote and closed a project file, and another process overwrote it
  before this run ended. The run's bytes are gone; its output is recorded without a hash and is
  never registered as this run's model.

Each conflict is one row of ``run_conflicts`` (migration ``0120_run_conflicts``) and one note in
the run's log; ``workbench show`` prints them and ``show --json`` lists them as ``conflicts``.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from workbench.store.db import atomic


@dataclass
class Conflict:
    """One output of a run whose bytes the project does not hold."""

    path: str
    kind: str  # not-copied | overwritten
    other_run: str | None
    reason: str
    hash: str | None = None
    project_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def one_line(self) -> str:
        other = f" (run {self.other_run})" if self.other_run else ""
        return f"output conflict on {self.path}: {self.reason}{other}"


def record(db: sqlite3.Connection, run_id: str, conflicts: list[Conflict]) -> None:
    """Store ``conflicts`` on ``run_id`` (a later one for the same path replaces the earlier)."""
    if not conflicts:
        return
    now = time.time()
    with atomic(db):
        db.executemany(
            "INSERT INTO run_conflicts (run_id, path, kind, other_run, reason, hash, project_hash,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, path) DO UPDATE SET kind = excluded.kind,"
            " other_run = excluded.other_run, reason = excluded.reason, hash = excluded.hash,"
            " project_hash = excluded.project_hash, created_at = excluded.created_at",
            [(run_id, c.path, c.kind, c.other_run, c.reason, c.hash, c.project_hash, now) for c in conflicts],
        )


def of_run(db: sqlite3.Connection, run_id: str) -> list[Conflict]:
    """The conflicts recorded on one run, by path."""
    rows = db.execute(
        "SELECT path, kind, other_run, reason, hash, project_hash FROM run_conflicts WHERE run_id = ?"
        " ORDER BY path", (run_id,),
    ).fetchall()
    return [Conflict(*tuple(row)) for row in rows]


def other_writer(db: sqlite3.Connection, run_id: str, path: str, project_hash: str | None) -> str | None:
    """The run whose bytes the project holds at ``path``: the latest other run that recorded that
    output with ``project_hash``; failing that, another run that wrote the path while this one ran."""
    if project_hash:
        row = db.execute(
            "SELECT f.run_id FROM run_files f JOIN runs r ON r.id = f.run_id WHERE f.direction = 'output'"
            " AND f.path = ? AND f.hash = ? AND f.run_id != ? ORDER BY r.started_at DESC LIMIT 1",
            (path, project_hash, run_id),
        ).fetchone()
        if row is not None:
            return str(row[0])
    row = db.execute(
        "SELECT f.run_id FROM run_files f JOIN runs r ON r.id = f.run_id JOIN runs me ON me.id = ?"
        " WHERE f.direction = 'output' AND f.path = ? AND f.run_id != ?"
        " AND (r.ended_at IS NULL OR r.ended_at >= me.started_at) ORDER BY r.started_at DESC LIMIT 1",
        (run_id, path, run_id),
    ).fetchone()
    return None if row is None else str(row[0])
