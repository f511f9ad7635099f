"""Metadata records: what a push sends besides objects, and how a pull merges it (a union by global id).

A record is one JSON object ``{"kind", "id", ...}``; a bundle is a list of records. Kinds:

- ``snapshot``: the snapshot row (id = its content hash; immutable).
- ``run``: a run that has ended, with its params, tags, metric series (every point), logs and
  files (id = the run id, globally unique). Runs still running are not sent until they end.
- ``model_version``: one registered version (its identity is name + content hash + creation time +
  run, because version numbers are per project: a clash gets the next free number, listed as a conflict).
- ``alias``: a model alias; mutable, merged last-writer-wins by ``updated_at``; the value replaced
  is kept in ``alias_history``.
- ``sweep`` (with members) and ``pipeline_run`` (with stage runs), once ended.
- ``deployment`` (the revisions, immutable, plus the current state, last-writer-wins).

Each record carries table rows by column name, so the same shape can later feed another metadata
backend. :func:`fingerprint_*` are cheap SQL digests that tell a push whether a record changed since
it was last sent, without building it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import blake3

Record = dict[str, Any]
LOCAL_RUN_COLUMNS = ("pid", "pid_started", "events_path", "events_offset")
"""Run columns that only mean something on the machine that ran it."""
RUN_CHILD_TABLES = ("run_conflicts", "run_refusals")
"""Run-owned tables a run record carries whole (``extras``), merged as a union of rows."""
RUN_TABLES: dict[str, str] = {
    "runs": "run", "run_params": "run", "run_tags": "run", "metric_keys": "run", "metrics": "run",
    "run_logs": "run", "run_files": "run", **dict.fromkeys(RUN_CHILD_TABLES, "run"),
    "model_versions": "model_version", "model_version_runs": "model_version (links)",
    "sweep_members": "sweep", "stage_runs": "pipeline_run",
    "deployments": "deployment", "deployment_revisions": "deployment",
    "run_summaries": "not sent: derived, rebuilt by the pull (refresh_summary)",
    "executor_jobs": "not sent: the job handle on the machine that launched it",
    "retrains": "not sent yet: the retrain link stays where it ran (its runs and versions travel)",
}
"""Every table with a ``run_id`` column and how it travels; a test fails when a new one is missing."""


def _rows(db: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    cur = db.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _digest(parts: Any) -> str:
    return blake3.blake3(json.dumps(tuple(parts), default=str).encode()).hexdigest()


# -- fingerprints: one query per kind, for every record a push could send ------------------------
def fingerprints(db: sqlite3.Connection) -> dict[tuple[str, str], str]:
    """``{(kind, id): digest}`` of every record that could be pushed now."""
    out: dict[tuple[str, str], str] = {}
    for (sid,) in db.execute("SELECT id FROM snapshots"):
        out[("snapshot", sid)] = sid
    for row in db.execute(
        """SELECT r.id, r.name, r.status, r.ended_at, r.exit_code,
                  (SELECT COALESCE(SUM(count), 0) FROM metric_keys WHERE run_id = r.id),
                  (SELECT COUNT(*) FROM run_params WHERE run_id = r.id),
                  (SELECT COUNT(*) FROM run_tags WHERE run_id = r.id),
                  (SELECT COALESCE(MAX(seq), 0) FROM run_logs WHERE run_id = r.id),
                  (SELECT COUNT(*) FROM run_files WHERE run_id = r.id),
                  s.params, s.tags, r.dropped_events,
                  (SELECT COUNT(*) FROM run_conflicts WHERE run_id = r.id),
                  (SELECT COUNT(*) FROM run_refusals WHERE run_id = r.id)
           FROM runs r LEFT JOIN run_summaries s ON s.run_id = r.id WHERE r.status != 'running'"""
    ):
        out[("run", row[0])] = _digest(row)
    for row in db.execute("SELECT name, version, hash, created_at, run_id, (SELECT COUNT(*) FROM"
                          " model_version_runs l WHERE l.name = v.name AND l.version = v.version)"
                          " FROM model_versions v"):
        out[("model_version", version_id(row[0], row[2], row[3], row[4]))] = _digest(row)
    for row in db.execute("SELECT name, alias, version, updated_at FROM model_aliases"):
        out[("alias", f"{row[0]}@{row[1]}")] = _digest(row)
    for row in db.execute("SELECT id, status, ended_at, (SELECT COUNT(*) FROM sweep_members m"
                          " WHERE m.sweep_id = s.id) FROM sweeps s WHERE status != 'running'"):
        out[("sweep", row[0])] = _digest(row)
    for row in db.execute("SELECT id, status, ended_at, (SELECT COUNT(*) FROM stage_runs t"
                          " WHERE t.pipeline_run = p.id) FROM pipeline_runs p WHERE status != 'running'"):
        out[("pipeline_run", row[0])] = _digest(row)
    for row in db.execute("SELECT name, updated_at, revision, state,"
                          " (SELECT COUNT(*) FROM deployment_revisions r WHERE r.deployment = d.name)"
                          " FROM deployments d"):
        out[("deployment", row[0])] = _digest(row)
    return out


def version_id(name: str, digest: str, created_at: float, run_id: str | None) -> str:
    """The global identity of a model version (its number is only local)."""
    return f"{name}|{digest}|{created_at!r}|{run_id or ''}"


# -- building records -----------------------------------------------------------------------------
def build(db: sqlite3.Connection, kind: str, rid: str) -> Record | None:
    """The record of ``(kind, rid)`` as it is now, or None if it vanished."""
    builder = _BUILDERS[kind]
    return builder(db, rid)


def _snapshot(db: sqlite3.Connection, rid: str) -> Record | None:
    rows = _rows(db, "SELECT * FROM snapshots WHERE id = ?", (rid,))
    return {"kind": "snapshot", "id": rid, "row": rows[0]} if rows else None


def _run(db: sqlite3.Connection, rid: str) -> Record | None:
    rows = _rows(db, "SELECT * FROM runs WHERE id = ?", (rid,))
    if not rows:
        return None
    row = rows[0]
    for column in LOCAL_RUN_COLUMNS:
        row.pop(column, None)
    from workbench.store import metric_chunks

    metrics = []
    for key in _rows(db, "SELECT * FROM metric_keys WHERE run_id = ? ORDER BY key", (rid,)):
        steps, times, values = metric_chunks.read(db, key.pop("id"))
        key.pop("run_id")
        key["points"] = [[s, t, None if v != v else v]  # NaN travels as null, as it always has
                         for s, t, v in zip(steps.tolist(), times.tolist(), values.tolist(), strict=True)]
        metrics.append(key)
    return {
        "kind": "run", "id": rid, "row": row,
        "params": [list(r) for r in db.execute(
            "SELECT key, value, source FROM run_params WHERE run_id = ? ORDER BY key", (rid,))],
        "tags": [list(r) for r in db.execute(
            "SELECT key, value FROM run_tags WHERE run_id = ? ORDER BY key", (rid,))],
        "metrics": metrics,
        "logs": [list(r) for r in db.execute(
            "SELECT seq, stream, time, line FROM run_logs WHERE run_id = ? ORDER BY seq", (rid,))],
        "files": _rows(db, "SELECT direction, path, hash, size, source FROM run_files WHERE run_id = ?"
                       " ORDER BY direction, path", (rid,)),
        "extras": {table: _rows(db, f"SELECT * FROM {table} WHERE run_id = ?", (rid,))
                   for table in RUN_CHILD_TABLES},
    }


def _model_version(db: sqlite3.Connection, rid: str) -> Record | None:
    name, digest, created, run = rid.split("|", 3)
    rows = _rows(db, "SELECT v.*, m.created_at AS model_created_at, m.description FROM model_versions v"
                 " JOIN models m ON m.name = v.name WHERE v.name = ? AND v.hash = ? AND v.created_at = ?"
                 " AND COALESCE(v.run_id, '') = ?", (name, digest, float(created), run))
    if not rows:
        return None
    links = _rows(db, "SELECT run_id, path, reused, linked_at FROM model_version_runs"
                  " WHERE name = ? AND version = ? ORDER BY run_id", (name, rows[0]["version"]))
    return {"kind": "model_version", "id": rid, "row": rows[0], "links": links}


def _alias(db: sqlite3.Connection, rid: str) -> Record | None:
    name, alias = rid.split("@", 1)
    rows = _rows(db, "SELECT a.name, a.alias, a.version, a.updated_at, v.hash, v.created_at, v.run_id"
                 " FROM model_aliases a JOIN model_versions v ON v.name = a.name AND v.version = a.version"
                 " WHERE a.name = ? AND a.alias = ?", (name, alias))
    if not rows:
        return None
    row = rows[0]
    row["target"] = version_id(row["name"], row.pop("hash"), row.pop("created_at"), row.pop("run_id"))
    return {"kind": "alias", "id": rid, "row": row}


def _sweep(db: sqlite3.Connection, rid: str) -> Record | None:
    rows = _rows(db, "SELECT * FROM sweeps WHERE id = ?", (rid,))
    if not rows:
        return None
    members = _rows(db, "SELECT idx, params, run_id, status FROM sweep_members WHERE sweep_id = ?"
                    " ORDER BY idx", (rid,))
    return {"kind": "sweep", "id": rid, "row": rows[0], "members": members}


def _pipeline_run(db: sqlite3.Connection, rid: str) -> Record | None:
    rows = _rows(db, "SELECT * FROM pipeline_runs WHERE id = ?", (rid,))
    if not rows:
        return None
    row = rows[0]
    row.pop("pid", None)
    stages = _rows(db, "SELECT * FROM stage_runs WHERE pipeline_run = ? ORDER BY seq", (rid,))
    return {"kind": "pipeline_run", "id": rid, "row": row, "stages": stages}


def _deployment(db: sqlite3.Connection, rid: str) -> Record | None:
    rows = _rows(db, "SELECT * FROM deployments WHERE name = ?", (rid,))
    if not rows:
        return None
    revisions = _rows(db, "SELECT * FROM deployment_revisions WHERE deployment = ? ORDER BY revision", (rid,))
    return {"kind": "deployment", "id": rid, "row": rows[0], "revisions": revisions}


_BUILDERS = {
    "snapshot": _snapshot, "run": _run, "model_version": _model_version, "alias": _alias,
    "sweep": _sweep, "pipeline_run": _pipeline_run, "deployment": _deployment,
}
KINDS = tuple(_BUILDERS)


def object_refs(record: Record) -> tuple[list[str], list[str]]:
    """``(snapshot root trees, plain objects)`` a record needs present before it is merged."""
    kind, row = record["kind"], record["row"]
    if kind == "snapshot":
        return [row["root_tree"]], []
    if kind == "model_version":
        return [], [row["hash"]]
    return [], []


# -- merging --------------------------------------------------------------------------------------
@dataclass
class MergeReport:
    """What a pull merged (counts per kind) and the conflicts it resolved, one line each."""

    added: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    merged_ids: list[tuple[str, str]] = field(default_factory=list)

    def count(self, kind: str) -> None:
        self.added[kind] = self.added.get(kind, 0) + 1


def _known(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> list[str]:
    """The keys of ``row`` that are columns of ``table`` (names from a bundle never reach SQL
    unchecked; columns a newer Workbench added are left out)."""
    names = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    return [c for c in row if c in names]


def _insert(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
    columns = _known(db, table, row)
    marks = ", ".join("?" * len(columns))
    cur = db.execute(f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                     [row[c] for c in columns])
    return cur.rowcount


def merge(db: sqlite3.Connection, records: list[Record], source: str, report: MergeReport) -> None:
    """Merge records into the database (the caller holds the write transaction)."""
    order = {k: i for i, k in enumerate(KINDS)}
    for record in sorted(records, key=lambda r: order.get(r["kind"], 99)):
        merger = _MERGERS.get(record["kind"])
        if merger is not None and merger(db, record, source, report):
            report.count(record["kind"])
        report.merged_ids.append((record["kind"], record["id"]))


def _merge_snapshot(db: sqlite3.Connection, rec: Record, source: str, report: MergeReport) -> bool:
    return _insert(db, "snapshots", rec["row"]) > 0


def _merge_run(db: sqlite3.Connection, rec: Record, source: str, report: MergeReport) -> bool:
    import math

    from workbench.store import metric_chunks
    from workbench.tracking import rollups
    from workbench.tracking.records import refresh_summary

    rid = rec["id"]
    if db.execute("SELECT 1 FROM runs WHERE id = ?", (rid,)).fetchone():
        # An ended run's rows are immutable; what can still be added after it ended (a tag such
        # as ``archived``, a conflict or refusal seen late) is merged as a union.
        added = _merge_run_union(db, rid, rec)
        if added:
            refresh_summary(db, rid)
        return added
    _insert(db, "runs", rec["row"])
    db.executemany("INSERT OR IGNORE INTO run_params (run_id, key, value, source) VALUES (?, ?, ?, ?)",
                   [(rid, *p) for p in rec["params"]])
    db.executemany("INSERT OR IGNORE INTO run_tags (run_id, key, value) VALUES (?, ?, ?)",
                   [(rid, *t) for t in rec["tags"]])
    for key in rec["metrics"]:
        points = key.pop("points")
        key_id = db.execute(
            "INSERT INTO metric_keys (run_id, key, count, last_step, last_value, last_time, min_value,"
            " max_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rid, key["key"], key["count"], key["last_step"], key["last_value"], key["last_time"],
             key["min_value"], key["max_value"])).lastrowid
        if points and key_id is not None:
            metric_chunks.write(db, key_id, metric_chunks.as_points(
                [p[0] for p in points], [p[1] for p in points],
                [math.nan if p[2] is None else p[2] for p in points]))
            rollups.recompute(db, key_id, points[0][0], points[-1][0])
    db.executemany("INSERT OR IGNORE INTO run_logs (run_id, seq, stream, time, line) VALUES (?, ?, ?, ?, ?)",
                   [(rid, *line) for line in rec["logs"]])
    db.executemany("INSERT OR IGNORE INTO run_files (run_id, direction, path, hash, size, source)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   [(rid, f["direction"], f["path"], f["hash"], f["size"], f["source"])
                    for f in rec["files"]])
    _merge_run_union(db, rid, rec)
    refresh_summary(db, rid)
    return True


def _merge_run_union(db: sqlite3.Connection, rid: str, rec: Record) -> bool:
    """Add the run's tags and child-table rows not yet here; True when anything was added."""
    added = db.executemany("INSERT OR IGNORE INTO run_tags (run_id, key, value) VALUES (?, ?, ?)",
                           [(rid, *t) for t in rec["tags"]]).rowcount > 0
    extras = rec.get("extras") or {}
    for table in RUN_CHILD_TABLES:  # table names from the bundle never reach SQL
        for row in extras.get(table, []):
            added = _insert(db, table, {**row, "run_id": rid}) > 0 or added
    return added


def local_version(db: sqlite3.Connection, target: str) -> int | None:
    """The local version number of the model version whose global identity is ``target``."""
    name, digest, created, run = target.split("|", 3)
    row = db.execute("SELECT version FROM model_versions WHERE name = ? AND hash = ? AND created_at = ?"
                     " AND COALESCE(run_id, '') = ?", (name, digest, float(created), run)).fetchone()
    return None if row is None else int(row[0])


def _merge_model_version(db: sqlite3.Connection, rec: Record, source: str, report: MergeReport) -> bool:
    row = dict(rec["row"])
    known = local_version(db, rec["id"])
    if known is not None:
        return _merge_links(db, row["name"], known, rec)
    model_created = row.pop("model_created_at")
    description = row.pop("description")
    db.execute("INSERT OR IGNORE INTO models (name, created_at, description) VALUES (?, ?, ?)",
               (row["name"], model_created, description))
    taken = db.execute("SELECT 1 FROM model_versions WHERE name = ? AND version = ?",
                       (row["name"], row["version"])).fetchone()
    if taken:
        wanted = row["version"]
        row["version"] = int(db.execute("SELECT MAX(version) FROM model_versions WHERE name = ?",
                                        (row["name"],)).fetchone()[0]) + 1
        report.conflicts.append(
            f"model {row['name']}: version {wanted} from {source} exists here with other content;"
            f" stored as version {row['version']}")
    _insert(db, "model_versions", row)
    _merge_links(db, row["name"], int(row["version"]), rec)
    return True


def _merge_links(db: sqlite3.Connection, name: str, version: int, rec: Record) -> bool:
    """Link the version (by its local number) to the runs that registered or reused it."""
    added = False
    for link in rec.get("links") or []:
        if not db.execute("SELECT 1 FROM runs WHERE id = ?", (link["run_id"],)).fetchone():
            continue  # a run not (yet) pulled here: the next pull that brings it links it
        added = _insert(db, "model_version_runs", {**link, "name": name, "version": version}) > 0 or added
    return added


_HISTORY = ("INSERT INTO alias_history (name, alias, version, updated_at, replaced_at, replaced_by)"
            " VALUES (?, ?, ?, ?, ?, ?)")


def _merge_alias(db: sqlite3.Connection, rec: Record, source: str, report: MergeReport) -> bool:
    row = rec["row"]
    version = local_version(db, row["target"])
    if version is None:
        report.conflicts.append(f"alias {rec['id']}: its model version is missing; not merged")
        return False
    current = db.execute("SELECT version, updated_at FROM model_aliases WHERE name = ? AND alias = ?",
                         (row["name"], row["alias"])).fetchone()
    now = time.time()
    if current is None:
        db.execute("INSERT INTO model_aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?)",
                   (row["name"], row["alias"], version, row["updated_at"]))
        return True
    if int(current[0]) == version:
        return False
    label = f"{row['name']}@{row['alias']}"
    if float(row["updated_at"]) > float(current[1]):
        db.execute(_HISTORY, (row["name"], row["alias"], current[0], current[1], now, source))
        db.execute("UPDATE model_aliases SET version = ?, updated_at = ? WHERE name = ? AND alias = ?",
                   (version, row["updated_at"], row["name"], row["alias"]))
        report.conflicts.append(f"alias {label}: version {current[0]} here replaced by the newer"
                                f" version {version} from {source} (kept in alias history)")
        return True
    db.execute(_HISTORY, (row["name"], row["alias"], version, row["updated_at"], now, "local (newer)"))
    report.conflicts.append(f"alias {label}: kept version {current[0]} here (newer than version"
                            f" {version} from {source}; that one is kept in alias history)")
    return False


def _merge_sweep(db: sqlite3.Connection, rec: Record, source: str, report: MergeReport) -> bool:
    if _insert(db, "sweeps", rec["row"]) == 0:
        return False
    for member in rec["members"]:
        _insert(db, "sweep_members", {"sweep_id": rec["id"], **member})
    return True


def _merge_pipeline_run(db: sqlite3.Connection, rec: Record, source: str, report: MergeReport) -> bool:
    if _insert(db, "pipeline_runs", rec["row"]) == 0:
        return False
    for stage in rec["stages"]:
        _insert(db, "stage_runs", stage)
    return True


def _merge_deployment(db: sqlite3.Connection, rec: Record, source: str, report: MergeReport) -> bool:
    row = rec["row"]
    current = db.execute("SELECT updated_at FROM deployments WHERE name = ?", (row["name"],)).fetchone()
    changed = False
    if current is None:
        _insert(db, "deployments", row)
        changed = True
    elif float(row["updated_at"]) > float(current[0]):
        columns = [c for c in _known(db, "deployments", row) if c != "name"]
        db.execute(f"UPDATE deployments SET {', '.join(f'{c} = ?' for c in columns)} WHERE name = ?",
                   [*(row[c] for c in columns), row["name"]])
        report.conflicts.append(f"deployment {row['name']}: the state from {source} is newer;"
                                " it replaced this one")
        changed = True
    for revision in rec["revisions"]:
        if _insert(db, "deployment_revisions", revision) > 0:
            changed = True
    return changed


_MERGERS = {
    "snapshot": _merge_snapshot, "run": _merge_run, "model_version": _merge_model_version,
    "alias": _merge_alias, "sweep": _merge_sweep, "pipeline_run": _merge_pipeline_run,
    "deployment": _merge_deployment,
}
