"""MLflow's local stores read without MLflow: the one reader behind live capture
(:mod:`workbench.tracking.capture_mlflow`) and ``workbench import mlflow``
(``importers/mlflow_files.py``, ``importers/mlflow_sqlite.py``).

* The file store (an ``mlruns``-style folder): ``<experiment id>/meta.yaml`` and
  ``<experiment id>/<run id>/{meta.yaml, params/, metrics/, tags/, artifacts/}``; a key with ``/``
  is a nested file; a metric file holds ``<timestamp ms> <value> <step>`` lines. Files are found
  with ``lstat``: a link in the store is never followed (a job may have made it), so nothing
  outside the store is ever read.
* The SQLite store (``mlflow.db``: tables ``experiments``, ``runs``, ``params``, ``tags``,
  ``metrics``, one row per point with ``is_nan`` for NaN), read with :mod:`sqlite3`, read-only.
  Their columns have been stable since MLflow 1.x.

Deleted runs and runs of deleted experiments (``lifecycle_stage: deleted``) are left out by both.
A metric point is ``(step, unix seconds, value)``. Standard library only at import time (a job's
own interpreter imports this at exit); PyYAML, where installed, reads ``meta.yaml`` bounded.
"""

from __future__ import annotations

import math
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar

T = TypeVar("T")
Point = tuple[int, float, float]
"""(step, unix seconds, value): one metric point."""
_BATCH = 500
"""Run ids per ``IN (...)`` query (SQLite's default limit on variables is far above)."""


# -- the file store ---------------------------------------------------------------------------
class FileStoreRun(NamedTuple):
    """A live run of a file store: its experiment's name, its folder and its ``meta.yaml``."""

    experiment: str
    folder: Path
    meta: dict[str, object]


def is_dir(path: Path) -> bool:
    """Whether ``path`` is a folder itself (a link to one is not)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def plain_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix path, file) of the plain files under ``folder``, links never followed."""
    found: list[tuple[str, Path]] = []
    if not is_dir(folder):
        return found
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if is_dir(Path(current, d)))
        for name in sorted(files):
            full = Path(current, name)
            try:
                if not stat.S_ISREG(os.lstat(full).st_mode):
                    continue
            except OSError:
                continue
            found.append((full.relative_to(folder).as_posix(), full))
    return found


def read_text(path: Path, limit: int = 1 << 20) -> str:
    """At most ``limit`` bytes of a plain file; a link is refused (OSError), never followed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path} is not a plain file")
        return handle.read(limit).decode("utf-8", errors="replace")


def read_meta(path: Path) -> dict[str, object]:
    """A ``meta.yaml`` as a dict ({} when it cannot be read: a run still being created)."""
    try:
        text = read_text(path)
    except OSError:
        return {}
    try:
        from workbench import yamlsafe
    except ImportError:  # a job's interpreter without PyYAML: the flat keys this module reads
        return _flat_yaml(text)
    from workbench.errors import UsageError, WorkbenchError

    try:  # bounded: a job wrote it (an alias bomb must not hang the runner)
        loaded = yamlsafe.load(text, str(path), UsageError)
    except WorkbenchError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _flat_yaml(text: str) -> dict[str, object]:
    """``key: value`` lines of MLflow's meta.yaml (integers as ints, quotes stripped)."""
    found: dict[str, object] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if not sep or line.startswith((" ", "-")):
            continue
        value = value.strip().strip("'\"")
        found[key.strip()] = int(value) if value.isdigit() else value
    return found


def metric_points(path: Path) -> list[Point]:
    """The points of one metric file, in the order they were logged (bad lines skipped)."""
    points: list[Point] = []
    for line in read_text(path, 1 << 30).splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            when = int(parts[0]) / 1000.0
            value = float(parts[1])
            step = int(parts[2]) if len(parts) > 2 else 0
        except ValueError:
            continue
        points.append((step, when, value))
    return points


def read_each(folder: Path, read: Callable[[Path], T]) -> dict[str, T]:
    """key -> ``read(file)`` for the plain files under ``folder``; a file replaced by a link or
    removed meanwhile is left out."""
    found: dict[str, T] = {}
    for key, full in plain_files(folder):
        try:
            found[key] = read(full)
        except OSError:
            continue
    return found


def file_store_runs(root: Path) -> Iterator[FileStoreRun]:
    """The live runs of the file store ``root``, experiment by experiment, in folder-name order."""
    if not is_dir(root):
        return
    for experiment_dir in sorted(root.iterdir()):
        if not is_dir(experiment_dir) or experiment_dir.name.startswith("."):
            continue
        experiment_meta = read_meta(experiment_dir / "meta.yaml")
        if not experiment_meta or experiment_meta.get("lifecycle_stage") == "deleted":
            continue
        experiment = str(experiment_meta.get("name") or experiment_dir.name)
        for run_dir in sorted(experiment_dir.iterdir()):
            if not is_dir(run_dir) or not (run_dir / "meta.yaml").is_file():
                continue
            meta = read_meta(run_dir / "meta.yaml")
            if meta and meta.get("lifecycle_stage") != "deleted":
                yield FileStoreRun(experiment, run_dir, meta)


# -- the SQLite store -------------------------------------------------------------------------
class StoreError(ValueError):
    """A file that is not an MLflow SQLite store: what is wrong, and what to give instead."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.hint = hint


class SqliteRun(NamedTuple):
    """A live run's row of an SQLite store (times in MLflow's milliseconds)."""

    run_id: str
    name: str | None
    status: str | None
    start_time: int | None
    end_time: int | None
    artifact_uri: str | None
    experiment: str | None


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the MLflow SQLite store ``path``; :class:`StoreError` for a
    missing file, a file that is not SQLite, or a database without MLflow's tables."""
    if not path.is_file():
        raise StoreError(f"no such MLflow database: {path}", "give the path of an existing mlflow.db")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not an SQLite database ({exc})",
                         "give an MLflow SQLite store (mlflow.db)") from None
    if not {"runs", "metrics", "params", "tags", "experiments"} <= tables:
        db.close()
        raise StoreError(f"{path} is not an MLflow tracking database (no runs/metrics tables)",
                         "give the database MLflow's --backend-store-uri points at")
    return db


def sqlite_runs(db: sqlite3.Connection) -> list[SqliteRun]:
    """The live runs, oldest first."""
    return [SqliteRun(*row) for row in db.execute(
        "SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, r.artifact_uri, e.name"
        " FROM runs r LEFT JOIN experiments e ON e.experiment_id = r.experiment_id"
        " WHERE COALESCE(r.lifecycle_stage, 'active') != 'deleted'"
        " AND COALESCE(e.lifecycle_stage, 'active') != 'deleted' ORDER BY r.start_time, r.run_uuid"
    )]


def sqlite_keyed(db: sqlite3.Connection, table: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
    """run id -> {key: value} of the ``params`` or ``tags`` table, for the runs ``run_ids``."""
    if table not in ("params", "tags"):
        raise ValueError(f"not a key/value table of MLflow's: {table}")
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(run_ids), _BATCH):
        chunk = run_ids[start:start + _BATCH]
        marks = ",".join("?" * len(chunk))
        for key, value, run in db.execute(
            f"SELECT key, value, run_uuid FROM {table} WHERE run_uuid IN ({marks})", chunk
        ):
            out.setdefault(run, {})[key] = "" if value is None else str(value)
    return out


def sqlite_metrics(db: sqlite3.Connection, run_id: str, key: str | None = None,
                   after: int | None = None) -> dict[str, list[Point]]:
    """key -> points of one run (only ``key``'s where given; only steps past ``after`` where
    given), in the order they were logged (by time, then step)."""
    where, args = "run_uuid = ?", list[object]([run_id])
    if key is not None:
        where, args = where + " AND key = ?", [*args, key]
    if after is not None:
        where, args = where + " AND step > ?", [*args, after]
    out: dict[str, list[Point]] = {}
    # No ORDER BY: with one, SQLite's planner may pick the primary key's index (key first) over
    # MLflow's (run_uuid, key, step) index and walk every run's points of the key (measured: 12x
    # slower on a 200-run store). Sorting one run's points here costs little.
    for name, value, timestamp, step, is_nan in db.execute(
        f"SELECT key, value, timestamp, step, is_nan FROM metrics WHERE {where}", args
    ):
        out.setdefault(name, []).append(
            (int(step or 0), int(timestamp) / 1000.0, math.nan if is_nan else float(value)))
    for points in out.values():
        points.sort(key=_logged_order)
    return out


def _logged_order(point: Point) -> tuple[float, int]:
    return point[1], point[0]


__all__ = ["FileStoreRun", "Point", "SqliteRun", "StoreError", "connect_readonly", "file_store_runs",
           "is_dir", "metric_points", "plain_files", "read_each", "read_meta", "read_text",
           "sqlite_keyed", "sqlite_metrics", "sqlite_runs"]
