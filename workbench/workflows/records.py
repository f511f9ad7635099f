"""SQL for the workflows tables: pipeline runs, stage records, sweeps, the input hash cache.

Every function takes the workspace's per-thread connection, so worker threads of a parallel repro
or sweep each write through their own connection (WAL, busy timeout: no "database is locked").
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.host.processes import pid_exists
from workbench.store.db import atomic

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

# Files modified this recently are not trusted to the stat cache (git's racy-timestamp rule).
RACY_SECONDS = 2.0


def new_id() -> str:
    """A sortable id: base36 milliseconds then random hex."""
    ms = int(time.time() * 1000)
    digits = ""
    while ms:
        ms, rem = divmod(ms, 36)
        digits = _B36[rem] + digits
    return digits + secrets.token_hex(3)


@dataclass
class StageRecord:
    """What happened to one stage in one pipeline run."""

    pipeline_run: str
    stage: str
    seq: int
    status: str
    run_id: str | None = None
    source_run: str | None = None
    fingerprint: str | None = None
    parts: str = "{}"
    outputs: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def producer(self) -> str | None:
        """The run that made this stage's outputs (itself, or the run they were cached from)."""
        return self.run_id if self.status == "ran" else self.source_run

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "status": self.status, "run_id": self.run_id,
                "source_run": self.source_run, "reason": self.reason, "warnings": self.warnings,
                "outputs": self.outputs, "started_at": self.started_at, "ended_at": self.ended_at}


def _stage(row: sqlite3.Row) -> StageRecord:
    return StageRecord(
        pipeline_run=row["pipeline_run"], stage=row["stage"], seq=row["seq"], status=row["status"],
        run_id=row["run_id"], source_run=row["source_run"], fingerprint=row["fingerprint"],
        parts=row["parts"], outputs=json.loads(row["outputs"]), reason=row["reason"],
        warnings=json.loads(row["warnings"]), started_at=row["started_at"], ended_at=row["ended_at"],
    )


DONE = ("ran", "cached", "fresh")


# -- pipeline runs -----------------------------------------------------------------------------
def start_pipeline_run(db: sqlite3.Connection, targets: list[str], force: bool, jobs: int) -> str:
    run_id = new_id()
    with atomic(db):
        db.execute(
            "INSERT INTO pipeline_runs (id, started_at, status, targets, force, jobs, host, pid) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
            (run_id, time.time(), json.dumps(targets), int(force), jobs, socket.gethostname(), os.getpid()),
        )
    return run_id


def end_pipeline_run(db: sqlite3.Connection, run_id: str, status: str, message: str = "") -> None:
    with atomic(db):
        db.execute("UPDATE pipeline_runs SET status = ?, ended_at = ?, message = ? WHERE id = ?",
                   (status, time.time(), message, run_id))


def pipeline_runs(db: sqlite3.Connection, limit: int | None = None) -> list[dict[str, Any]]:
    rows = db.execute("SELECT * FROM pipeline_runs ORDER BY started_at DESC LIMIT ?",
                      (limit if limit is not None else -1,)).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        item["targets"] = json.loads(item["targets"])
        item["force"] = bool(item["force"])
        out.append(item)
    return out


def pipeline_run(db: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM pipeline_runs WHERE id = ? OR id LIKE ? ORDER BY started_at DESC",
                     (run_id, run_id + "%")).fetchone()
    return dict(row) if row else None


def is_live(row: dict[str, Any]) -> bool:
    """Whether a 'running' pipeline run's process is still alive on this host."""
    if row["status"] != "running":
        return False
    if row["host"] != socket.gethostname() or not row["pid"]:
        return True
    return pid_exists(int(row["pid"]))


# -- stage records -----------------------------------------------------------------------------
def put_stage(db: sqlite3.Connection, rec: StageRecord) -> None:
    with atomic(db):
        db.execute(
            "INSERT OR REPLACE INTO stage_runs (pipeline_run, stage, seq, status, run_id, source_run, "
            "fingerprint, parts, outputs, reason, warnings, started_at, ended_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.pipeline_run, rec.stage, rec.seq, rec.status, rec.run_id, rec.source_run,
             rec.fingerprint, rec.parts, json.dumps(rec.outputs, sort_keys=True),
             rec.reason, json.dumps(rec.warnings), rec.started_at, rec.ended_at),
        )


def stages_of(db: sqlite3.Connection, pipeline_run: str) -> list[StageRecord]:
    rows = db.execute("SELECT * FROM stage_runs WHERE pipeline_run = ? ORDER BY seq",
                      (pipeline_run,)).fetchall()
    return [_stage(r) for r in rows]


def last_done(db: sqlite3.Connection, stage: str) -> StageRecord | None:
    """The stage's latest ran/cached/fresh record: what its outputs on disk should be now."""
    row = db.execute(
        "SELECT * FROM stage_runs WHERE stage = ? AND status IN ('ran', 'cached', 'fresh') "
        "ORDER BY ended_at DESC LIMIT 1", (stage,)).fetchone()
    return _stage(row) if row else None


def last_record(db: sqlite3.Connection, stage: str) -> StageRecord | None:
    """The stage's latest finished record of any status except skipped."""
    row = db.execute(
        "SELECT * FROM stage_runs WHERE stage = ? AND status IN ('ran', 'cached', 'fresh', 'failed') "
        "ORDER BY ended_at DESC LIMIT 1", (stage,)).fetchone()
    return _stage(row) if row else None


def by_fingerprint(db: sqlite3.Connection, digest: str) -> list[StageRecord]:
    """Successful records with this fingerprint, newest first (a run cache, like DVC's)."""
    rows = db.execute(
        "SELECT * FROM stage_runs WHERE fingerprint = ? AND status IN ('ran', 'cached', 'fresh') "
        "ORDER BY ended_at DESC LIMIT 20", (digest,)).fetchall()
    return [_stage(r) for r in rows]


# -- stat cache for input hashes ----------------------------------------------------------------
class HashCache:
    """Remembers content hashes by (size, mtime_ns, inode, ctime_ns); writes are batched."""

    def __init__(self, db: sqlite3.Connection, root: Path, hasher: Callable[[Path], str]) -> None:
        self.db = db
        self.root = root
        self.hasher = hasher
        self._pending: dict[str, tuple[int, int, int, int, str]] = {}
        self._memo: dict[str, tuple[tuple[int, int, int, int], str]] = {}
        self.hashed = 0

    def __call__(self, path: Path) -> str:
        st = path.stat()
        key = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        rel = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)
        memo = self._memo.get(rel)
        if memo and memo[0] == key:
            return memo[1]
        row = self.db.execute("SELECT size, mtime_ns, ino, ctime_ns, hash FROM workflow_hash_cache "
                              "WHERE path = ?", (rel,)).fetchone()
        if row and tuple(row)[:4] == key:
            digest: str = row["hash"]
        else:
            digest = self.hasher(path)
            self.hashed += 1
            if time.time() - st.st_mtime_ns / 1e9 > RACY_SECONDS:
                self._pending[rel] = (*key, digest)
        self._memo[rel] = (key, digest)
        return digest

    def remember(self, rel: str, digest: str) -> None:
        """Record a hash known without reading (a file just restored or stored)."""
        try:
            st = (self.root / rel).stat()
        except FileNotFoundError:
            return
        key = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        self._memo[rel] = (key, digest)

    def flush(self) -> None:
        if not self._pending:
            return
        items = [(p, *v) for p, v in self._pending.items()]
        self._pending.clear()
        with atomic(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO workflow_hash_cache (path, size, mtime_ns, ino, ctime_ns, hash) "
                "VALUES (?, ?, ?, ?, ?, ?)", items)
