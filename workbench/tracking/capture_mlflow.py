"""What a script logged with MLflow, read back from a local MLflow store without importing MLflow.

Both local store formats (the file store and ``sqlite:///``) are read by
:mod:`workbench.tracking.mlflow_store`, the reader ``workbench import mlflow`` uses too.

:func:`read_store` returns :class:`MlflowRun` values; ``since``/``until`` (unix seconds) keep only
runs that started in that window (a store the user shares between many runs). Deleted runs
(``lifecycle_stage: deleted``) are left out. A link in a file store is never followed (a job may
have made it), so nothing outside the store is ever read.

:func:`local_store` says whether a tracking URI names a local store this module can read.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from workbench.tracking.mlflow_store import (
    StoreError,
    connect_readonly,
    file_store_runs,
    metric_points,
    plain_files,
    read_each,
    read_text,
    sqlite_keyed,
    sqlite_metrics,
    sqlite_runs,
)

ARTIFACTS_PREFIX = "mlflow-artifacts"
"""A run's outputs named ``mlflow-artifacts/<artifact path>`` hold what its job logged as artifacts."""
SYSTEM_TAG_PREFIX = "mlflow."
_NAMED_SERVERS = frozenset({"databricks", "databricks-uc", "uc"})
"""Tracking URIs that look like relative paths but name Databricks' servers."""
"""MLflow's own tags (``mlflow.user``, ``mlflow.source.name``, ``mlflow.runName``...)."""


@dataclass
class MlflowRun:
    """One MLflow run as the store holds it."""

    run_id: str
    name: str
    experiment: str
    start_time: float | None
    """Unix seconds."""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    """key -> [(step, unix seconds, value)] in the order they were logged."""
    artifacts: list[tuple[str, Path]] = field(default_factory=list)
    """(path inside the run's artifacts, the file) for each artifact file kept on this machine."""


def local_store(uri: str) -> tuple[str, Path] | None:
    """``("file", folder)`` or ``("sqlite", database)`` for a tracking URI naming a local store
    (a plain path, ``file:``, ``sqlite:///``), None for anything else (a server, Databricks). A
    relative path is relative to the job's working directory (the caller resolves it)."""
    if not uri or uri in _NAMED_SERVERS:
        return None
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") and (not parsed.netloc or parsed.netloc == "localhost"):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return ("file", Path(path).expanduser())
    if parsed.scheme == "sqlite" and uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):].split("?", 1)[0]
        return ("sqlite", Path(unquote(path)))
    return None


def read_store(kind: str, path: Path, *, since: float | None = None,
               until: float | None = None) -> list[MlflowRun]:
    """The runs of the local store ``(kind, path)`` (see :func:`local_store`), oldest first."""
    runs = _read_sqlite(path) if kind == "sqlite" else _read_file_store(path)
    kept = [run for run in runs if _within(run.start_time, since, until)]
    return sorted(kept, key=lambda run: (run.start_time or 0.0, run.run_id))


def _within(start: float | None, since: float | None, until: float | None) -> bool:
    if since is None and until is None:
        return True
    if start is None:
        return False
    return (since is None or start >= since) and (until is None or start <= until)


@dataclass
class Captured:
    """What a set of MLflow runs logged, as one Workbench run records it (see :func:`flatten`)."""

    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    series: dict[str, tuple[list[int], list[float], list[float]]] = field(default_factory=dict)
    """key -> (steps, values, unix times), one point per step, in step order."""
    artifacts: list[tuple[str, Path]] = field(default_factory=list)
    """(output name ``<prefix>/<artifact path>``, the file)."""
    points: int = 0


def flatten(runs: list[MlflowRun], artifacts_prefix: str = ARTIFACTS_PREFIX) -> Captured:
    """The runs' params (typed: ``"0.1"`` -> 0.1), user tags (MLflow's own ``mlflow.*`` left out),
    metric series and artifacts under one Workbench run. With several MLflow runs (nested runs, a
    loop of runs) each key is prefixed with its run's name (``outer/loss``)."""
    from workbench.tracking.capture import typed

    captured = Captured()
    several = len(runs) > 1
    for run in runs:
        prefix = (run.name or run.run_id[:12]).replace("/", "_") + "/" if several else ""
        for key, value in run.params.items():
            captured.params[prefix + key] = typed(value)
        for key, value in run.tags.items():
            if not key.startswith(SYSTEM_TAG_PREFIX):
                captured.tags[prefix + key] = value
        for key, points in run.metrics.items():
            captured.series[prefix + key] = series = _series(points)
            captured.points += len(series[0])
        captured.artifacts.extend((f"{artifacts_prefix}/{prefix}{rel}", full) for rel, full in run.artifacts)
    return captured


def _series(points: list[tuple[int, float, float]]) -> tuple[list[int], list[float], list[float]]:
    """One key's points as parallel lists by step. A step logged again keeps its last value, as in
    Workbench; a key logged several times and always at step 0 (MLflow's default when no step is
    given) was a sequence: its points get the steps 0, 1, 2... in the order they were logged."""
    if len(points) > 1 and all(step == 0 for step, _, _ in points):
        ordered = sorted(enumerate(points), key=lambda item: (item[1][1], item[0]))
        values = [float(p[2]) for _, p in ordered]
        return list(range(len(points))), values, [float(p[1]) for _, p in ordered]
    by_step: dict[int, tuple[float, float]] = {}
    for step, when, value in points:
        by_step[step] = (float(value), float(when))
    steps = sorted(by_step)
    return steps, [by_step[s][0] for s in steps], [by_step[s][1] for s in steps]


def _read_file_store(root: Path) -> list[MlflowRun]:
    runs: list[MlflowRun] = []
    for experiment, run_dir, meta in file_store_runs(root):
        start = meta.get("start_time")
        runs.append(MlflowRun(
            run_id=str(meta.get("run_id") or run_dir.name),
            name=str(meta.get("run_name") or ""), experiment=experiment,
            start_time=start / 1000.0 if isinstance(start, int) else None,
            params=read_each(run_dir / "params", read_text),
            tags=read_each(run_dir / "tags", read_text),
            metrics=read_each(run_dir / "metrics", metric_points),
            artifacts=plain_files(run_dir / "artifacts"),
        ))
    return runs


def _read_sqlite(path: Path) -> list[MlflowRun]:
    try:
        db = connect_readonly(path)
    except StoreError:
        return []  # not (yet) a store: the job made no run there
    try:
        rows = sqlite_runs(db)
        ids = [row.run_id for row in rows]
        params, tags = sqlite_keyed(db, "params", ids), sqlite_keyed(db, "tags", ids)
        runs: list[MlflowRun] = []
        for row in rows:
            run = MlflowRun(
                run_id=row.run_id, name=row.name or "", experiment=str(row.experiment or ""),
                start_time=row.start_time / 1000.0 if isinstance(row.start_time, int) else None,
                params=params.get(row.run_id, {}), tags=tags.get(row.run_id, {}),
                metrics=sqlite_metrics(db, row.run_id),
            )
            where = local_store(row.artifact_uri or "")
            if where is not None and where[0] == "file" and where[1].is_absolute():
                run.artifacts = plain_files(where[1])
            runs.append(run)
        return runs
    except sqlite3.Error:
        return []
    finally:
        db.close()


__all__ = ["ARTIFACTS_PREFIX", "SYSTEM_TAG_PREFIX", "Captured", "MlflowRun", "flatten", "local_store",
           "read_store"]
