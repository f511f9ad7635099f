"""Run rows: creating, ending, resolving and loading runs (with params, tags and metric summaries).

Each run has a summary row (``run_summaries``: params, tags and metric summaries as JSON) that the
ingester refreshes as it writes, so a listing is one query, and each run decodes its JSON only when
a view touches it: ``ws.runs.list()`` over ten thousand runs takes tens of milliseconds.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from workbench.errors import AmbiguousIdError, UnknownIdError
from workbench.host.processes import process_started
from workbench.store.db import atomic
from workbench.store.schema_tracking import SUMMARY_REFRESH
from workbench.tracking.capture import finite_or_text

STATUSES = ("running", "succeeded", "failed", "cancelled")


@dataclass(slots=True)
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


def _decoded(cache: dict[str, Any] | None, text: str) -> Any:
    """``json.loads(text)``, a fresh copy of it, through a per-listing cache: runs of one sweep
    or one script share their command and often their params, and a listing decodes each text once."""
    if cache is None:
        return json.loads(text)
    found = cache.get(text)
    if found is None:
        found = cache[text] = json.loads(text)
    return found.copy()


def _decode_metrics(text: str) -> dict[str, MetricSummary]:
    if text == "{}":
        return {}
    nan = math.nan
    return {
        key: MetricSummary(key, count, nan if last is None else last, step, lo, hi)
        for key, (count, last, step, lo, hi) in json.loads(text).items()
    }


class RunInfo:
    """A run as every view shows it.

    ``params``, ``tags``, ``metrics`` and ``command`` are decoded from the store's JSON on first
    access (a listing of ten thousand runs pays only for what its view touches); each may be set.
    """

    __slots__ = (  # noqa: RUF023 - in the order of the columns
        "id", "name", "_command", "status", "exit_code", "reason", "started_at", "ended_at", "executor",
        "source", "workdir", "snapshot_before", "snapshot_after", "parent_run", "sweep_id", "pipeline_run",
        "stage", "host", "_params", "_tags", "_metrics", "environment", "gpus", "executor_info", "_cache",
        "dropped_events",
    )

    def __init__(
        self, id: str, name: str, command: list[str] | str, status: str, exit_code: int | None, reason: str,
        started_at: float, ended_at: float | None, executor: str, source: str, workdir: str,
        snapshot_before: str | None, snapshot_after: str | None, parent_run: str | None,
        sweep_id: str | None, pipeline_run: str | None, stage: str | None, host: str,
        params: dict[str, Any] | str | None = None, tags: dict[str, str] | str | None = None,
        metrics: dict[str, MetricSummary] | str | None = None,
        environment: dict[str, Any] | None = None, gpus: list[dict[str, Any]] | None = None,
        executor_info: dict[str, Any] | None = None, dropped_events: int = 0,
    ) -> None:
        self.id, self.name, self._command, self.status = id, name, command, status
        self.exit_code, self.reason, self.started_at, self.ended_at = exit_code, reason, started_at, ended_at
        self.executor, self.source, self.workdir = executor, source, workdir
        self.snapshot_before, self.snapshot_after = snapshot_before, snapshot_after
        self.parent_run = parent_run
        self.sweep_id, self.pipeline_run, self.stage, self.host = sweep_id, pipeline_run, stage, host
        self._params: dict[str, Any] | str = {} if params is None else params
        self._tags: dict[str, str] | str = {} if tags is None else tags
        self._metrics: dict[str, MetricSummary] | str = {} if metrics is None else metrics
        self.environment: dict[str, Any] = environment or {}
        self.gpus: list[dict[str, Any]] = gpus or []
        self.executor_info: dict[str, Any] = executor_info or {}
        self._cache: dict[str, Any] | None = None
        self.dropped_events = dropped_events
        """Event lines of the run that could not be recorded (filled by ``get()``/``full`` only)."""

    @property
    def command(self) -> list[str]:
        value = self._command
        if isinstance(value, str):
            value = self._command = _decoded(self._cache, value)
        return value

    @command.setter
    def command(self, value: list[str]) -> None:
        self._command = value

    @property
    def params(self) -> dict[str, Any]:
        value = self._params
        if isinstance(value, str):
            value = self._params = _decoded(self._cache, value)
        return value

    @params.setter
    def params(self, value: dict[str, Any]) -> None:
        self._params = value

    @property
    def tags(self) -> dict[str, str]:
        value = self._tags
        if isinstance(value, str):
            value = self._tags = _decoded(self._cache, value)
        return value

    @tags.setter
    def tags(self, value: dict[str, str]) -> None:
        self._tags = value

    @property
    def metrics(self) -> dict[str, MetricSummary]:
        value = self._metrics
        if isinstance(value, str):
            value = self._metrics = _decode_metrics(value)
        return value

    @metrics.setter
    def metrics(self, value: dict[str, MetricSummary]) -> None:
        self._metrics = value

    def last_values(self) -> tuple[dict[str, float], dict[str, int]]:
        """Each metric's last value (NaN when it has none) and point count, as a listing shows them:
        read from the stored JSON without building a summary per metric (10,000 runs at start-up)."""
        value = self._metrics
        if isinstance(value, str):
            if value == "{}":
                return {}, {}
            nan = math.nan
            decoded = json.loads(value)
            return ({key: nan if v[1] is None else v[1] for key, v in decoded.items()},
                    {key: v[0] for key, v in decoded.items()})
        return ({key: s.last for key, s in value.items() if s.last is not None},
                {key: s.count for key, s in value.items() if s.last is not None})

    def __repr__(self) -> str:
        return f"RunInfo(id={self.id!r}, name={self.name!r}, status={self.status!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunInfo) and self.to_dict(full=True) == other.to_dict(full=True)

    __hash__ = None  # type: ignore[assignment]

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
            data["dropped_events"] = self.dropped_events
        return data



def create_run(
    db: sqlite3.Connection, run_id: str, *, name: str, command: list[str], executor: str = "local",
    source: str = "cli", workdir: str = ".", snapshot_before: str | None = None,
    parent_run: str | None = None, sweep_id: str | None = None, pipeline_run: str | None = None,
    stage: str | None = None, events_path: str = "", environment: dict[str, Any] | None = None,
    gpus: list[dict[str, Any]] | None = None, pid: int | None = None, now: float | None = None,
) -> None:
    """Insert a run in state ``running``, owned by ``pid`` (default: this process). Secret values in
    ``command`` are stored as ``***`` (see :mod:`workbench.tracking.redact`). ``now``: the start time
    (default: the system clock)."""
    from workbench.tracking.redact import redact_command

    command = redact_command(command)
    pid = os.getpid() if pid is None else pid
    with atomic(db):
        db.execute(
            "INSERT INTO runs (id, name, command, workdir, status, started_at, executor, source,"
            " snapshot_before, parent_run, sweep_id, pipeline_run, stage, host, pid, pid_started,"
            " events_path, environment, gpus)"
            " VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id, name, json.dumps(command), workdir, time.time() if now is None else now, executor,
                source, snapshot_before, parent_run, sweep_id, pipeline_run, stage, socket.gethostname(), pid,
                process_started(pid),
                events_path, json.dumps(environment or {}, default=str), json.dumps(gpus or [], default=str),
            ),
        )
        db.execute("INSERT OR IGNORE INTO run_summaries (run_id) VALUES (?)", (run_id,))


def end_run(
    db: sqlite3.Connection, run_id: str, *, status: str, exit_code: int | None, reason: str = "",
    snapshot_after: str | None = None, executor_info: dict[str, Any] | None = None, now: float | None = None,
) -> None:
    """Record how the run ended, at ``now`` (default: the system clock), and refresh its summary."""
    with atomic(db):
        db.execute(
            "UPDATE runs SET status = ?, exit_code = ?, reason = ?, ended_at = ?, snapshot_after = ?,"
            " executor_info = ? WHERE id = ?",
            (status, exit_code, reason, time.time() if now is None else now, snapshot_after,
             json.dumps(executor_info or {}, default=str), run_id),
        )
        refresh_summary(db, run_id)


def refresh_summary(db: sqlite3.Connection, run_id: str) -> None:
    """Rebuild one run's summary row (params, tags, metric summaries as JSON) from its rows.
    Call inside the transaction that changed them."""
    db.execute(SUMMARY_REFRESH, {"run": run_id})


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


_SELECT = (
    "SELECT r.id, r.name, r.command, r.status, r.exit_code, r.reason, r.started_at, r.ended_at, r.executor,"
    " r.source, r.workdir, r.snapshot_before, r.snapshot_after, r.parent_run, r.sweep_id, r.pipeline_run,"
    " r.stage, r.host, s.params, s.tags, s.metrics, s.stale FROM runs r"
    " LEFT JOIN run_summaries s ON s.run_id = r.id"
)


def _marks(chunk: list[str]) -> str:
    return ",".join("?" * len(chunk))


def load_runs(db: sqlite3.Connection, ids: list[str] | None = None, *, full: bool = False) -> list[RunInfo]:
    """Runs newest first, with params, tags and metric summaries (and environment when ``full``).

    One query: each run's params, tags and metric summaries come as JSON from its summary row and
    are decoded on first access. Runs whose summary row is missing or stale (rows changed by a
    writer other than the ingester) are read from the normalised tables instead.
    """
    cursor = db.cursor()
    cursor.row_factory = None
    if ids is None:
        rows = cursor.execute(_SELECT + " ORDER BY r.started_at DESC, r.id DESC").fetchall()
    else:
        rows = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows += cursor.execute(f"{_SELECT} WHERE r.id IN ({_marks(chunk)})", chunk).fetchall()
        rows.sort(key=lambda row: (row[6], row[0]), reverse=True)
    runs: list[RunInfo] = []
    stale: dict[str, RunInfo] = {}
    cache: dict[str, Any] = {}
    for row in rows:
        run = RunInfo(*row[:18])
        run._cache = cache
        if row[21] == 0:
            run._params, run._tags, run._metrics = row[18], row[19], row[20]
        else:
            stale[row[0]] = run
        runs.append(run)
    if stale:
        _load_normalised(cursor, stale)
    if full:
        by_id = {run.id: run for run in runs}
        for start in range(0, len(by_id), 500):
            chunk = list(by_id)[start:start + 500]
            for run_id, env, gpus, info, dropped in cursor.execute(
                "SELECT id, environment, gpus, executor_info, dropped_events FROM runs"
                f" WHERE id IN ({_marks(chunk)})", chunk,
            ):
                run = by_id[run_id]
                run.environment = json.loads(env or "{}")
                run.gpus = json.loads(gpus or "[]")
                run.executor_info = json.loads(info or "{}")
                run.dropped_events = int(dropped or 0)
    return runs


def _load_normalised(cursor: sqlite3.Cursor, runs: dict[str, RunInfo]) -> None:
    """Params, tags and metric summaries of ``runs`` from run_params, run_tags and metric_keys."""
    ids = list(runs)
    for run in runs.values():
        run.params, run.tags, run.metrics = {}, {}, {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        where = f" WHERE run_id IN ({_marks(chunk)})"
        for run_id, key, value in cursor.execute(
            f"SELECT run_id, key, value FROM run_params{where} ORDER BY key", chunk
        ):
            runs[run_id].params[key] = json.loads(value)
        for run_id, key, value in cursor.execute(
            f"SELECT run_id, key, value FROM run_tags{where} ORDER BY key", chunk
        ):
            runs[run_id].tags[key] = value
        for run_id, key, count, last, last_step, lo, hi in cursor.execute(
            f"SELECT run_id, key, count, last_value, last_step, min_value, max_value FROM metric_keys{where}"
            " AND count > 0 ORDER BY key", chunk,
        ):
            runs[run_id].metrics[key] = MetricSummary(
                key, count, math.nan if last is None else last, last_step, lo, hi
            )
