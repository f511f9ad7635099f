"""Paths a run's job named or wrote that the boundary refused (docs/security.md), per run.

Written by the ingester (events of a container or pod naming a path outside its workspace, a model
outside the project) and by the runner after copy-back (files not brought into the project). Shown
by ``workbench show`` and under ``refused_events`` in ``show --json``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from workbench.store.db import atomic

MAX_ROWS = 1000
"""At most this many refusals are stored per run; the run's log says when more were dropped."""


def record(conn: sqlite3.Connection, run_id: str, kind: str, path: str, reason: str) -> bool:
    """Store one refusal; False when the run already has :data:`MAX_ROWS` of them."""
    with atomic(conn) as db:
        seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM run_refusals WHERE run_id = ?",
                             (run_id,)).fetchone()[0]) + 1
        if seq > MAX_ROWS:
            return False
        db.execute("INSERT INTO run_refusals (run_id, seq, kind, path, reason) VALUES (?, ?, ?, ?, ?)",
                   (run_id, seq, kind[:40], path[:1000], reason[:500]))
    return True


def for_run(db: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """The run's refusals in order: ``[{"kind", "path", "reason"}]``."""
    return [{"kind": k, "path": p, "reason": r} for k, p, r in db.execute(
        "SELECT kind, path, reason FROM run_refusals WHERE run_id = ? ORDER BY seq", (run_id,))]
