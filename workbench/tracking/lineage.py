"""Lineage: from a file or a model version back to the run that wrote it, that run's inputs and code
snapshot, and on back through the runs that wrote those inputs.

A file's producer is the latest run that recorded it as an output with the same content hash (so an
edited file is not blamed on an old run); when the file is gone or unhashable, the latest run that
wrote the path. Cycles are cut and depth is bounded.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UnknownIdError
from workbench.tracking import registry

if TYPE_CHECKING:
    from workbench.versioning.versioned import VersionedProject

MAX_DEPTH = 12


@dataclass
class LineageNode:
    """One step of a lineage walk: a model version, a file, or a run."""

    kind: str  # model | file | run
    label: str
    details: dict[str, Any] = field(default_factory=dict)
    children: list[LineageNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "details": self.details,
                "children": [c.to_dict() for c in self.children]}


def _producer(db: sqlite3.Connection, path: str, digest: str | None, before: float | None) -> str | None:
    sql = ("SELECT f.run_id FROM run_files f JOIN runs r ON r.id = f.run_id WHERE f.direction = 'output'"
           " AND f.path = ?")
    args: list[Any] = [path]
    if digest:
        sql += " AND f.hash = ?"
        args.append(digest)
    if before is not None:
        sql += " AND r.started_at < ?"
        args.append(before)
    row = db.execute(sql + " ORDER BY r.started_at DESC LIMIT 1", args).fetchone()
    if row is None and digest:
        return _producer(db, path, None, before) if before is None else None
    return None if row is None else str(row[0])


def _run_node(db: sqlite3.Connection, run_id: str, depth: int, seen: set[str]) -> LineageNode:
    row = db.execute(
        "SELECT id, name, command, status, started_at, snapshot_before, snapshot_after, parent_run"
        " FROM runs WHERE id = ?", (run_id,),
    ).fetchone()
    node = LineageNode("run", run_id, {
        "id": row[0], "name": row[1], "command": json.loads(row[2]), "status": row[3], "started_at": row[4],
        "code_snapshot": row[5], "snapshot_after": row[6], "parent_run": row[7],
    })
    params = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM run_params WHERE run_id = ?",
                                                       (run_id,))}
    node.details["params"] = params
    if run_id in seen or depth >= MAX_DEPTH:
        node.details["truncated"] = True
        return node
    seen = seen | {run_id}
    started = float(row[4])
    for path, digest, size in db.execute(
        "SELECT path, hash, size FROM run_files WHERE run_id = ? AND direction = 'input' ORDER BY path",
        (run_id,),
    ).fetchall():
        child = LineageNode("file", path, {"path": path, "hash": digest, "size": size})
        producer = _producer(db, path, digest, started)
        if producer is not None and producer != run_id:
            child.children.append(_run_node(db, producer, depth + 1, seen))
        node.children.append(child)
    return node


def _looks_like_model(db: sqlite3.Connection, target: str) -> bool:
    name = registry.parse_spec(target)[0] if ("@" in target or ":" in target) else target
    try:
        return db.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is not None
    except Exception:
        return False


def lineage(ws: VersionedProject, target: str, *, cwd: Path | None = None) -> LineageNode:
    """Walk back from ``target``: a path (relative to ``cwd``) or ``model[:version|@alias]``."""
    db = ws.db
    base = (cwd or Path.cwd()).resolve()
    full = (base / target).resolve() if not Path(target).is_absolute() else Path(target).resolve()
    is_path = full.exists() or not _looks_like_model(db, target)
    if not is_path:
        version = registry.get_version(db, target)
        node = LineageNode("model", f"{version.name}:{version.version}", version.to_dict())
        if version.run_id:
            node.children.append(_run_node(db, version.run_id, 0, set()))
        return node
    try:
        rel = full.relative_to(ws.root).as_posix()
    except ValueError:
        rel = str(full)
    digest: str | None = None
    if full.is_file():
        from workbench.tracking.finalize import hash_path

        digest = hash_path(ws, full)
    producer = _producer(db, rel, digest, None)
    if producer is None:
        known = db.execute("SELECT 1 FROM run_files WHERE path = ? LIMIT 1", (rel,)).fetchone()
        if known is None and not full.exists():
            raise UnknownIdError(f"no file or model {target!r}", "give a project path or NAME[:VERSION]")
    node = LineageNode("file", rel, {"path": rel, "hash": digest, "exists": full.exists()})
    if producer is not None:
        node.children.append(_run_node(db, producer, 0, set()))
    return node
