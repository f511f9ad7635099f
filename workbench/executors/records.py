"""Rows of ``executor_jobs``: where each remote job lives and who follows it (all its SQL).

The ``run_id`` column is the caller's job id (:attr:`workbench.executors.base.LaunchSpec.job_id`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.host.processes import pid_exists

if TYPE_CHECKING:
    from workbench.versioning.versioned import VersionedProject


@dataclass
class JobRecord:
    run_id: str
    executor: str
    handle: dict[str, Any]
    runner_pid: int | None
    runner_host: str
    state: str
    reason: str
    created_at: float
    updated_at: float


def record_launch(ws: VersionedProject, run_id: str, executor: str, handle: dict[str, Any]) -> None:
    """Remember a launched job and that this process follows it."""
    now = time.time()
    with ws.atomic() as db:
        db.execute(
            "INSERT INTO executor_jobs (run_id, executor, handle, runner_pid, runner_host, state,"
            " reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'running', '', ?, ?)"
            " ON CONFLICT(run_id) DO UPDATE SET executor=excluded.executor, handle=excluded.handle,"
            " runner_pid=excluded.runner_pid, runner_host=excluded.runner_host, state='running',"
            " updated_at=excluded.updated_at",
            (run_id, executor, json.dumps(handle), os.getpid(), socket.gethostname(), now, now),
        )


def update_handle(ws: VersionedProject, run_id: str, **facts: Any) -> None:
    with ws.atomic() as db:
        row = db.execute("SELECT handle FROM executor_jobs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return
        handle = {**json.loads(row[0]), **facts}
        db.execute("UPDATE executor_jobs SET handle = ?, updated_at = ? WHERE run_id = ?",
                   (json.dumps(handle), time.time(), run_id))


def claim(ws: VersionedProject, run_id: str, pid: int | None = None) -> None:
    """Process ``pid`` of this host (default: this one) now follows the job (after a re-attach)."""
    with ws.atomic() as db:
        db.execute("UPDATE executor_jobs SET runner_pid = ?, runner_host = ?, updated_at = ?"
                   " WHERE run_id = ?",
                   (os.getpid() if pid is None else pid, socket.gethostname(), time.time(), run_id))


def mark(ws: VersionedProject, run_id: str, state: str, reason: str = "") -> None:
    """Set a job's state: running | ended | lost."""
    with ws.atomic() as db:
        db.execute("UPDATE executor_jobs SET state = ?, reason = ?, updated_at = ? WHERE run_id = ?",
                   (state, reason, time.time(), run_id))


def get(ws: VersionedProject, run_id: str) -> JobRecord | None:
    row = ws.db.execute(
        "SELECT run_id, executor, handle, runner_pid, runner_host, state, reason, created_at, updated_at"
        " FROM executor_jobs WHERE run_id = ?", (run_id,)
    ).fetchone()
    return _record(row) if row else None


def open_jobs(ws: VersionedProject) -> list[JobRecord]:
    """Jobs still believed to be running."""
    rows = ws.db.execute(
        "SELECT run_id, executor, handle, runner_pid, runner_host, state, reason, created_at, updated_at"
        " FROM executor_jobs WHERE state = 'running' ORDER BY created_at"
    ).fetchall()
    return [_record(row) for row in rows]


def _record(row: Any) -> JobRecord:
    return JobRecord(
        run_id=row[0], executor=row[1], handle=json.loads(row[2] or "{}"), runner_pid=row[3],
        runner_host=row[4], state=row[5], reason=row[6], created_at=row[7], updated_at=row[8],
    )


def runner_alive(record: JobRecord) -> bool:
    """Whether the workbench process that follows this job still runs (same host only)."""
    if record.runner_pid is None or record.runner_host != socket.gethostname():
        return False
    return record.runner_pid == os.getpid() or pid_exists(record.runner_pid)
