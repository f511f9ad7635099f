"""Run a sweep's members as ordinary runs, K at a time, and record them under one sweep.

Members are launched in order by ``parallel`` worker threads; each member is one
``ws.runs.execute`` with ``sweep_id`` set, on any executor. Setting ``cancel_event`` (the CLI does
on Ctrl+C) stops the launch of pending members (recorded ``cancelled``, with no run) and cancels
the running ones through the same event, which ``execute`` watches.

With ``parallel`` > 1 every member is isolated: one input snapshot is taken for the whole sweep and
each member runs in its own checkout of it, records its outputs and models from there, and copies
them back into the project by the rule of :mod:`workbench.tracking.isolation` (the first member to
finish writes a shared path such as ``models/model.joblib``; the others record a conflict and keep
their own bytes). With ``parallel`` 1 the members run one after another in the project folder, as
any run does.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.errors import UnknownIdError, WorkbenchError
from workbench.store.db import atomic
from workbench.tracking.request import RunRequest
from workbench.workflows.backend import ServiceBackend
from workbench.workflows.records import new_id


@dataclass
class SweepMember:
    idx: int
    params: dict[str, Any]
    run_id: str | None
    status: str  # pending | running | succeeded | failed | cancelled
    metric: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"idx": self.idx, "params": self.params, "run_id": self.run_id, "status": self.status,
                "metric": self.metric}


@dataclass
class SweepInfo:
    id: str
    name: str
    created_at: float
    ended_at: float | None
    status: str
    command: list[str]
    space: list[str]
    mode: str
    size: int
    parallel: int
    executor: str
    seed: int | None
    members: list[SweepMember] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.members:
            out[m.status] = out.get(m.status, 0) + 1
        return out

    def to_dict(self, members: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "name": self.name, "created_at": self.created_at, "ended_at": self.ended_at,
            "status": self.status, "command": self.command, "space": self.space, "mode": self.mode,
            "size": self.size, "parallel": self.parallel, "executor": self.executor, "seed": self.seed,
            "counts": self.counts,
        }
        if members:
            data["members"] = [m.to_dict() for m in self.members]
        return data


@dataclass
class SweepEvent:
    """Progress of a sweep (``on_event``)."""

    idx: int
    status: str  # start | succeeded | failed | cancelled
    params: dict[str, Any]
    run_id: str | None = None
    message: str = ""


# -- records -----------------------------------------------------------------------------------
def create_sweep(db: sqlite3.Connection, *, name: str, command: list[str], space: list[str], mode: str,
                 members: list[dict[str, Any]], parallel: int, executor: str, seed: int | None) -> str:
    sweep_id = new_id()
    with atomic(db):
        db.execute(
            "INSERT INTO sweeps (id, name, created_at, status, command, space, mode, size, parallel, "
            "executor, seed) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            (sweep_id, name, time.time(), json.dumps(command), json.dumps(space), mode, len(members),
             parallel, executor, seed))
        db.executemany(
            "INSERT INTO sweep_members (sweep_id, idx, params, status) VALUES (?, ?, ?, 'pending')",
            [(sweep_id, i, json.dumps(p)) for i, p in enumerate(members)])
    return sweep_id


def _set_member(db: sqlite3.Connection, sweep_id: str, idx: int, status: str,
                run_id: str | None = None) -> None:
    with atomic(db):
        db.execute("UPDATE sweep_members SET status = ?, run_id = COALESCE(?, run_id) "
                   "WHERE sweep_id = ? AND idx = ?", (status, run_id, sweep_id, idx))


def _info(db: sqlite3.Connection, row: sqlite3.Row, with_members: bool) -> SweepInfo:
    info = SweepInfo(
        id=row["id"], name=row["name"], created_at=row["created_at"], ended_at=row["ended_at"],
        status=row["status"], command=json.loads(row["command"]), space=json.loads(row["space"]),
        mode=row["mode"], size=row["size"], parallel=row["parallel"], executor=row["executor"],
        seed=row["seed"])
    if with_members:
        info.members = [SweepMember(r["idx"], json.loads(r["params"]), r["run_id"], r["status"])
                        for r in db.execute("SELECT * FROM sweep_members WHERE sweep_id = ? ORDER BY idx",
                                            (info.id,))]
    return info


def list_sweeps(db: sqlite3.Connection, limit: int | None = None) -> list[SweepInfo]:
    rows = db.execute("SELECT * FROM sweeps ORDER BY created_at DESC LIMIT ?",
                      (limit if limit is not None else -1,)).fetchall()
    return [_info(db, r, True) for r in rows]


def get_sweep(db: sqlite3.Connection, ref: str) -> SweepInfo:
    """A sweep by id, unique id prefix, name (the newest of that name) or ``latest``."""
    if ref == "latest":
        row = db.execute("SELECT * FROM sweeps ORDER BY created_at DESC LIMIT 1").fetchone()
    else:
        rows = db.execute("SELECT * FROM sweeps WHERE id LIKE ? ORDER BY created_at DESC",
                          (ref + "%",)).fetchall()
        if len(rows) > 1 and not any(r["id"] == ref for r in rows):
            from workbench.errors import AmbiguousIdError

            raise AmbiguousIdError(f"sweep id '{ref}' matches {len(rows)} sweeps", "give more characters")
        row = next((r for r in rows if r["id"] == ref), rows[0] if rows else None)
        if row is None:
            row = db.execute("SELECT * FROM sweeps WHERE name = ? ORDER BY created_at DESC LIMIT 1",
                             (ref,)).fetchone()
    if row is None:
        raise UnknownIdError(f"no sweep '{ref}'", "see 'workbench sweeps'")
    return _info(db, row, True)


def sweep_of_run(db: sqlite3.Connection, run_id: str) -> tuple[str, int] | None:
    row = db.execute("SELECT sweep_id, idx FROM sweep_members WHERE run_id = ?", (run_id,)).fetchone()
    return (row["sweep_id"], row["idx"]) if row else None


# -- running -----------------------------------------------------------------------------------
class SweepRunner:
    """Launches members with at most ``parallel`` running at once."""

    def __init__(self, backend: ServiceBackend, db: Callable[[], sqlite3.Connection], sweep_id: str,
                 members: list[tuple[dict[str, Any], list[str]]], *, name: str, parallel: int = 1,
                 template: RunRequest | None = None, cancel_event: threading.Event | None = None,
                 on_event: Callable[[SweepEvent], None] | None = None) -> None:
        """``template``: what every member shares (executor, image, GPUs, limits, tags); each member
        is it with its own command, name, params and sweep."""
        self.backend = backend
        self.db = db
        self.sweep_id = sweep_id
        self.members = members
        self.name = name
        self.parallel = max(1, parallel)
        self.template = template or RunRequest(())
        self.cancel = cancel_event or threading.Event()
        self.on_event = on_event or (lambda event: None)
        self.isolated = self.parallel > 1 and len(members) > 1
        self.snapshot: str | None = None
        self._next = 0
        self._lock = threading.Lock()
        self._events_lock = threading.Lock()
        self.errors: list[str] = []

    def _emit(self, event: SweepEvent) -> None:
        with self._events_lock:
            self.on_event(event)

    def _take(self) -> int | None:
        with self._lock:
            if self.cancel.is_set() or self._next >= len(self.members):
                return None
            idx = self._next
            self._next += 1
            return idx

    def _worker(self) -> None:
        while (idx := self._take()) is not None:
            params, argv = self.members[idx]
            db = self.db()
            _set_member(db, self.sweep_id, idx, "running")
            self._emit(SweepEvent(idx, "start", params))
            try:
                request = replace(self.template, command=tuple(argv), name=f"{self.name}-{idx}",
                                  sweep_id=self.sweep_id, params=params, isolated=self.isolated,
                                  snapshot_before=self.snapshot)
                outcome = self.backend.execute(request, cancel_event=self.cancel)
            except WorkbenchError as exc:
                _set_member(db, self.sweep_id, idx, "failed")
                self.errors.append(exc.one_line())
                self._emit(SweepEvent(idx, "failed", params, message=exc.one_line()))
                continue
            status = outcome.status if outcome.status in ("succeeded", "cancelled") else "failed"
            _set_member(db, self.sweep_id, idx, status, outcome.run_id)
            message = "" if status == "succeeded" else (
                f"exit code {outcome.exit_code}" if outcome.exit_code is not None else outcome.reason)
            self._emit(SweepEvent(idx, status, params, run_id=outcome.run_id, message=message))

    def run(self) -> str:
        """Run every member (or until cancelled); returns the sweep's final status."""
        if self.isolated:
            self.snapshot = self.backend.isolation_snapshot(self.template.executor)
        threads = [threading.Thread(target=self._worker, name=f"wb-sweep-{i}", daemon=True)
                   for i in range(min(self.parallel, len(self.members)) or 1)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except KeyboardInterrupt:
            self.cancel.set()
            for thread in threads:
                thread.join()
        db = self.db()
        cancelled = self.cancel.is_set()
        with atomic(db):
            db.execute("UPDATE sweep_members SET status = 'cancelled' "
                       "WHERE sweep_id = ? AND status = 'pending'", (self.sweep_id,))
        for idx in range(self._next, len(self.members)):
            self._emit(SweepEvent(idx, "cancelled", self.members[idx][0], message="not started"))
        statuses = [r[0] for r in db.execute("SELECT status FROM sweep_members WHERE sweep_id = ?",
                                             (self.sweep_id,))]
        final = "cancelled" if cancelled else ("failed" if "failed" in statuses else "succeeded")
        with atomic(db):
            db.execute("UPDATE sweeps SET status = ?, ended_at = ? WHERE id = ?",
                       (final, time.time(), self.sweep_id))
        return final
