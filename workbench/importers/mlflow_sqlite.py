"""MLflow's SQLite store (``mlflow.db``, MLflow's default tracking store since 3.x), read directly
with :mod:`sqlite3`, read-only. Runs, params, tags and metrics are read by
:mod:`workbench.tracking.mlflow_store` (the reader live capture uses); this module adds re-import
of only the new points and the registry's ``model_versions`` and ``registered_model_aliases``.
Their columns have been stable since MLflow 1.x; a newer MLflow adds tables this never reads. No
MLflow or SQLAlchemy is needed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from workbench.importers.mlflow_common import PARENT_TAG, as_series, local_path, split_tags, status_of
from workbench.importers.model import ImportSourceError, ModelFile, Series, Source, SourceRun
from workbench.tracking import mlflow_store


def connect_readonly(path: Path) -> sqlite3.Connection:
    try:
        return mlflow_store.connect_readonly(path)
    except mlflow_store.StoreError as exc:
        raise ImportSourceError(str(exc), exc.hint) from None



def read_metrics(db: sqlite3.Connection, run_id: str) -> dict[str, Series]:
    return {key: as_series(points) for key, points in mlflow_store.sqlite_metrics(db, run_id).items()}


def read_new_metrics(db: sqlite3.Connection, run_id: str, stored: dict[str, int]) -> dict[str, Series]:
    """The points past the last step stored per key (all points of keys not stored yet), found
    through MLflow's (run_uuid, key, step) index without reading the rest."""
    out: dict[str, Series] = {}
    highs = db.execute("SELECT key, MAX(step) FROM metrics WHERE run_uuid = ? GROUP BY key", (run_id,))
    for key, high in highs.fetchall():
        after = stored.get(key)
        if after is not None and high <= after:
            continue
        points = mlflow_store.sqlite_metrics(db, run_id, key, after).get(key, [])
        out[key] = as_series(points)
    return out


def open_sqlite_store(path: Path) -> Source:
    db = connect_readonly(path)
    bases = [path.resolve().parent, Path.cwd()]
    rows = mlflow_store.sqlite_runs(db)

    def runs() -> Iterator[SourceRun]:
        for start in range(0, len(rows), 500):
            batch = rows[start:start + 500]
            ids = [row[0] for row in batch]
            params = mlflow_store.sqlite_keyed(db, "params", ids)
            tags = mlflow_store.sqlite_keyed(db, "tags", ids)
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
