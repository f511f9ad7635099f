"""MLflow's SQLite store (``mlflow.db``, MLflow's default tracking store since 3.x), read directly
with :mod:`sqlite3`, read-only: tables ``experiments``, ``runs``, ``params``, ``tags``, ``metrics``
(one row per point, ``is_nan`` for NaN), ``registered_models``, ``model_versions`` and
``registered_model_aliases``. Their columns have been stable since MLflow 1.x; a newer MLflow
adds tables this never reads. No MLflow or SQLAlchemy is needed."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from workbench.importers.mlflow_common import PARENT_TAG, local_path, split_tags, status_of
from workbench.importers.model import ImportSourceError, ModelFile, Series, Source, SourceRun


def connect_readonly(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise ImportSourceError(f"no such MLflow database: {path}", "give the path of an existing mlflow.db")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise ImportSourceError(f"{path} is not an SQLite database ({exc})",
                                "give an MLflow SQLite store (mlflow.db)") from None
    if not {"runs", "metrics", "params", "tags", "experiments"} <= tables:
        db.close()
        raise ImportSourceError(f"{path} is not an MLflow tracking database (no runs/metrics tables)",
                                "give the database MLflow's --backend-store-uri points at")
    return db


def read_metrics(db: sqlite3.Connection, run_id: str) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for key, value, timestamp, step, is_nan in db.execute(
        "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ?", (run_id,)
    ):
        series = out.get(key)
        if series is None:
            series = out[key] = Series()
        series.add(int(step), int(timestamp) / 1000.0, math.nan if is_nan else float(value))
    return out


def read_new_metrics(db: sqlite3.Connection, run_id: str, stored: dict[str, int]) -> dict[str, Series]:
    """The points past the last step stored per key (all points of keys not stored yet), found
    through MLflow's (run_uuid, key, step) index without reading the rest."""
    out: dict[str, Series] = {}
    highs = db.execute("SELECT key, MAX(step) FROM metrics WHERE run_uuid = ? GROUP BY key", (run_id,))
    for key, high in highs.fetchall():
        after = stored.get(key)
        if after is not None and high <= after:
            continue
        series = out[key] = Series()
        for value, timestamp, step, is_nan in db.execute(
            "SELECT value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? AND key = ? AND step > ?",
            (run_id, key, -(2**63) if after is None else after),
        ):
            series.add(int(step), int(timestamp) / 1000.0, math.nan if is_nan else float(value))
    return out


def _grouped(db: sqlite3.Connection, table: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for key, value, run in db.execute(
            f"SELECT key, value, run_uuid FROM {table} WHERE run_uuid IN ({marks})", chunk
        ):
            out.setdefault(run, {})[key] = "" if value is None else str(value)
    return out


def open_sqlite_store(path: Path) -> Source:
    db = connect_readonly(path)
    bases = [path.resolve().parent, Path.cwd()]
    rows = db.execute(
        "SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, r.artifact_uri, e.name"
        " FROM runs r LEFT JOIN experiments e ON e.experiment_id = r.experiment_id"
        " WHERE COALESCE(r.lifecycle_stage, 'active') = 'active'"
        " AND COALESCE(e.lifecycle_stage, 'active') = 'active' ORDER BY r.start_time, r.run_uuid"
    ).fetchall()

    def runs() -> Iterator[SourceRun]:
        for start in range(0, len(rows), 500):
            batch = rows[start:start + 500]
            ids = [row[0] for row in batch]
            params, tags = _grouped(db, "params", ids), _grouped(db, "tags", ids)
            for run_id, name, status, started, ended, artifact_uri, experiment in batch:
                tag_name, run_tags = split_tags(tags.get(run_id, {}))
                yield SourceRun(
                    kind="mlflow", source_id=run_id, name=str(name or tag_name or run_id),
                    status=status_of(status), started_at=(started or 0) / 1000.0,
                    ended_at=ended / 1000.0 if ended else None, params=dict(params.get(run_id, {})),
                    tags={**run_tags, "experiment": str(experiment or "")},
                    parent_id=run_tags.get(PARENT_TAG),
                    load_metrics=partial(read_metrics, db, run_id),
                    load_new_metrics=partial(read_new_metrics, db, run_id),
                    artifacts=local_path(artifact_uri, bases),
                )

    def models() -> list[ModelFile]:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "model_versions" not in tables:
            return []
        aliases: dict[tuple[str, int], list[str]] = {}
        if "registered_model_aliases" in tables:
            for alias, version, name in db.execute(
                    "SELECT alias, version, name FROM registered_model_aliases"):
                aliases.setdefault((name, int(version)), []).append(alias)
        columns = {row[1] for row in db.execute("PRAGMA table_info(model_versions)")}
        storage_column = "storage_location" if "storage_location" in columns else "NULL"  # MLflow < 2.x
        found = []
        for name, version, source, storage, run_id, stage in db.execute(
            f"SELECT name, version, source, {storage_column}, run_id, current_stage FROM model_versions"
            " ORDER BY name, version"
        ):
            if str(stage or "").lower().startswith("deleted"):
                continue
            where = local_path(storage, bases) or local_path(source, bases)
            found.append(ModelFile(str(name), int(version), where, run_id or None,
                                   aliases.get((name, int(version)), [])))
        return found

    return Source("mlflow", str(path), len(rows), runs, models)
