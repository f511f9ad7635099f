"""Run rows: creating, ending, resolving and loading runs (with params, tags and metric summaries).

Listings load every run's params, tags and metric summaries in three queries, not one per run, so
``workbench runs`` stays well under a second with ten thousand runs in the store.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import AmbiguousIdError, UnknownIdError
from workbench.store.db import atomic
from workbench.tracking.capture import finite_or_text

STATUSES = ("running", "succeeded", "failed", "cancelled")


@dataclass
class MetricSummary:
    """One metric of one run at a glance."""

    key: str
    count: int
    last: float | None
    last_step: int | None
    min: float | None
    max: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "count": self.count, "last": finite_or_text(self.last),
            "last_step": self.last_step, "min": finite_or_text(self.min), "max": finite_or_text(self.max),
        }


@dataclass
class RunInfo:
    """A run as every view shows it."""

    id: str
    name: str
    command: list[str]
    status: str
    exit_code: int | None
    reason: str
    started_at: float
    ended_at: float | None
    executor: str
    source: str
    workdir: str
    snapshot_before: str | None
    snapshot_after: str | None
    parent_run: str | None
    sweep_id: str | None
    pipeline_run: str | None
    stage: str | None
    host: str
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    gpus: list[dict[str, Any]] = field(default_factory=list)
    executor_info: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        end = self.ended_at
        if end is None and self.status == "running":
            end = time.time()
        return None if end is None else max(0.0, end - self.started_at)

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "name": self.name, "command": self.command, "status": self.status,
            "exit_code": self.exit_code, "reason": self.reason, "started_at": self.started_at,
            "ended_at": self.ended_at, "duration": self.duration, "executor": self.executor,
            "source": self.source, "workdir": self.workdir, "snapshot_before": self.snapshot_before,
            "snapshot_after": self.snapshot_after, "parent_run": self.parent_run, "sweep_id": self.sweep_id,
            "pipeline_run": self.pipeline_run, "stage": self.stage, "host": self.host,
            "params": self.params, "tags": self.tags,
            "metrics": {k: finite_or_text(m.last) for k, m in self.metrics.items()},
        }
        if full:
            data["metric_summaries"] = [m.to_dict() for m in self.metrics.values()]
            data["environment"] = self.environment
            data["gpus"] = self.gpus
            data["executor_info"] = self.executor_info
        return data


_COLUMNS = (
    "id, name, command, status, exit_code, reason, started_at, ended_at, executor, source, workdir,"
    " snapshot_before, snapshot_after, parent_run, sweep_id, pipeline_run, stage, host"
)


def process_started(pid: int) -> float | None:
    """A process's start time (to tell a reused pid apart), None if it is gone."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def create_run(
    db: sqlite3.Connection, run_id: str, *, name: str, command: list[str], executor: str = "local",
    source: str = "cli", workdir: str = ".", snapshot_before: str | None = None,
    parent_run: str | None = None, sweep_id: str | None = None, pipeline_run: str | None = None,
    stage: str | None = None, events_path: str = "", environment: dict[str, Any] | None = None,
    gpus: list[dict[str, Any]] | None = None, pid: int | None = None,
) -> None:
    """Insert a run in state ``running``, owned by ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    with atomic(db):
        db.execute(
            "INSERT INTO runs (id, name, command, workdir, status, started_at, executor, source,"
            " snapshot_before, parent_run, sweep_id, pipeline_run, stage, host, pid, pid_started,"
            " events_path, environment, gpus)"
            " VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id, name, json.dumps(command), workdir, time.time(), executor, source, snapshot_before,
                parent_run, sweep_id, pipeline_run, stage, socket.gethostname(), pid, process_started(pid),
                events_path, json.dumps(environment or {}, default=str), json.dumps(gpus or [], default=str),
            ),
        )


def end_run(
    db: sqlite3.Connection, run_id: str, *, status: str, exit_code: int | None, reason: str = "",
    snapshot_after: str | None = None, executor_info: dict[str, Any] | None = None,
) -> None:
    with atomic(db):
        db.execute(
            "UPDATE runs SET status = ?, exit_code = ?, reason = ?, ended_at = ?, snapshot_after = ?,"
            " executor_info = ? WHERE id = ?",
            (status, exit_code, reason, time.time(), snapshot_after,
             json.dumps(executor_info or {}, default=str), run_id),
        )


def resolve(db: sqlite3.Connection, ref: str) -> str:
    """A full run id from a unique prefix, a run name, ``latest`` or ``latest~N``."""
    ref = ref.strip()
    if ref == "latest" or ref.startswith("latest~"):
        back = ref[7:] if ref.startswith("latest~") else "0"
        if not back.isdigit():
            raise UnknownIdError(f"bad run reference {ref!r}", "write latest or latest~N")
        row = db.execute("SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET ?",
                         (int(back),)).fetchone()
        if row is None:
            raise UnknownIdError(f"no run {ref!r}", "see 'workbench runs'")
        return str(row[0])
    if not ref:
        raise UnknownIdError("empty run id", "see 'workbench runs'")
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = db.execute("SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 3", (escaped + "%",)).fetchall()
    if len(rows) == 1:
        return str(rows[0][0])
    if len(rows) > 1:
        raise AmbiguousIdError(f"run id {ref!r} is ambiguous", "type more characters")
    rows = db.execute(
        "SELECT id FROM runs WHERE name = ? ORDER BY started_at DESC LIMIT 2", (ref,)
    ).fetchall()
    if rows:
        return str(rows[0][0])
    raise UnknownIdError(f"no run {ref!r}", "see 'workbench runs'")


def _from_row(row: sqlite3.Row | tuple[Any, ...]) -> RunInfo:
    values = tuple(row)
    return RunInfo(
        id=values[0], name=values[1], command=json.loads(values[2]), status=values[3], exit_code=values[4],
        reason=values[5], started_at=values[6], ended_at=values[7], executor=values[8], source=values[9],
        workdir=values[10], snapshot_before=values[11], snapshot_after=values[12], parent_run=values[13],
        sweep_id=values[14], pipeline_run=values[15], stage=values[16], host=values[17],
    )


def load_runs(db: sqlite3.Connection, ids: list[str] | None = None, *, full: bool = False) -> list[RunInfo]:
    """Runs newest first, with params, tags and metric summaries (and environment when ``full``)."""
    if ids is None:
        rows = db.execute(f"SELECT {_COLUMNS} FROM runs ORDER BY started_at DESC, id DESC").fetchall()
        where, args = "", tuple[str, ...]()
    else:
        marks = ",".join("?" * len(ids))
        rows = db.execute(f"SELECT {_COLUMNS} FROM runs WHERE id IN ({marks}) ORDER BY started_at DESC",
                          ids).fetchall()
        where, args = f" WHERE run_id IN ({marks})", tuple(ids)
    runs = {row[0]: _from_row(row) for row in rows}
    for run_id, key, value in db.execute(f"SELECT run_id, key, value FROM run_params{where}", args):
        run = runs.get(run_id)
        if run is not None:
            run.params[key] = json.loads(value)
    for run_id, key, value in db.execute(f"SELECT run_id, key, value FROM run_tags{where}", args):
        run = runs.get(run_id)
        if run is not None:
            run.tags[key] = value
    for run_id, key, count, last, last_step, lo, hi in db.execute(
        f"SELECT run_id, key, count, last_value, last_step, min_value, max_value FROM metric_keys{where}"
        " ORDER BY key", args,
    ):
        run = runs.get(run_id)
        if run is not None and count:
            run.metrics[key] = MetricSummary(
                key, count, math.nan if last is None else last, last_step, lo, hi
            )
    if full:
        for run_id, env, gpus, info in db.execute(
            f"SELECT id, environment, gpus, executor_info FROM runs{where.replace('run_id', 'id')}", args
        ):
            run = runs.get(run_id)
            if run is not None:
                run.environment = json.loads(env or "{}")
                run.gpus = json.loads(gpus or "[]")
                run.executor_info = json.loads(info or "{}")
    return list(runs.values())
