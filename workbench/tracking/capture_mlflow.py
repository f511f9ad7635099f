"""What a script logged with MLflow, read back from a local MLflow store without importing MLflow.

Two store formats are read:

* the file store (an ``mlruns``-style folder: ``<experiment id>/meta.yaml`` and
  ``<experiment id>/<run id>/{meta.yaml, params/, metrics/, tags/, artifacts/}``; a key with ``/``
  is a nested file; a metric file holds ``<timestamp ms> <value> <step>`` lines);
* the SQLite store (``sqlite:///mlflow.db``: tables ``experiments``, ``runs``, ``params``,
  ``tags``, ``metrics``), read with :mod:`sqlite3`, read-only.

:func:`read_store` returns :class:`MlflowRun` values; ``since``/``until`` (unix seconds) keep only
runs that started in that window (a store the user shares between many runs). Deleted runs
(``lifecycle_stage: deleted``) are left out. Files are found with ``lstat``: a link in the store is
never followed (a job may have made it), so nothing outside the store is ever read.

:func:`local_store` says whether a tracking URI names a local store this module can read.
"""

from __future__ import annotations

import math
import os
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

ARTIFACTS_PREFIX = "mlflow-artifacts"
"""A run's outputs named ``mlflow-artifacts/<artifact path>`` hold what its job logged as artifacts."""
SYSTEM_TAG_PREFIX = "mlflow."
T = TypeVar("T")
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


# -- the file store ---------------------------------------------------------------------------
def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _plain_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix path, file) of the plain files under ``folder``, links never followed."""
    found: list[tuple[str, Path]] = []
    if not _is_dir(folder):
        return found
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if _is_dir(Path(current, d)))
        for name in sorted(files):
            full = Path(current, name)
            try:
                if not stat.S_ISREG(os.lstat(full).st_mode):
                    continue
            except OSError:
                continue
            found.append((full.relative_to(folder).as_posix(), full))
    return found


def _text(path: Path, limit: int = 1 << 20) -> str:
    """At most ``limit`` bytes of a plain file; a link is refused (OSError), never followed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path} is not a plain file")
        return handle.read(limit).decode("utf-8", errors="replace")


def _meta(path: Path) -> dict[str, object]:
    """A ``meta.yaml`` as a dict ({} when it cannot be read: a run still being created)."""
    try:
        text = _text(path)
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


def _metric_lines(path: Path) -> list[tuple[int, float, float]]:
    points: list[tuple[int, float, float]] = []
    for line in _text(path, 1 << 30).splitlines():
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


def _read_each(folder: Path, read: Callable[[Path], T]) -> dict[str, T]:
    """key -> ``read(file)`` for the plain files under ``folder``; a file replaced by a link or
    removed meanwhile is left out."""
    found: dict[str, T] = {}
    for key, full in _plain_files(folder):
        try:
            found[key] = read(full)
        except OSError:
            continue
    return found


def _read_file_store(root: Path) -> list[MlflowRun]:
    runs: list[MlflowRun] = []
    if not _is_dir(root):
        return runs
    for experiment_dir in sorted(root.iterdir()):
        if not _is_dir(experiment_dir) or experiment_dir.name.startswith("."):
            continue
        experiment_meta = _meta(experiment_dir / "meta.yaml")
        if not experiment_meta or experiment_meta.get("lifecycle_stage") == "deleted":
            continue
        experiment = str(experiment_meta.get("name") or experiment_dir.name)
        for run_dir in sorted(experiment_dir.iterdir()):
            if not _is_dir(run_dir) or not (run_dir / "meta.yaml").is_file():
                continue
            meta = _meta(run_dir / "meta.yaml")
            if not meta or meta.get("lifecycle_stage") == "deleted":
                continue
            start = meta.get("start_time")
            run = MlflowRun(
                run_id=str(meta.get("run_id") or run_dir.name),
                name=str(meta.get("run_name") or ""), experiment=experiment,
                start_time=start / 1000.0 if isinstance(start, int) else None,
            )
            run.params = _read_each(run_dir / "params", _text)
            run.tags = _read_each(run_dir / "tags", _text)
            run.metrics = _read_each(run_dir / "metrics", _metric_lines)
            run.artifacts = _plain_files(run_dir / "artifacts")
            runs.append(run)
    return runs


# -- the SQLite store -------------------------------------------------------------------------
def _read_sqlite(path: Path) -> list[MlflowRun]:
    if not path.is_file():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = dict(conn.execute("SELECT experiment_id, name FROM experiments").fetchall())
        runs: dict[str, MlflowRun] = {}
        for run_id, name, experiment_id, start, stage, artifact_uri in conn.execute(
            "SELECT run_uuid, name, experiment_id, start_time, lifecycle_stage, artifact_uri FROM runs"
        ):
            if stage == "deleted":
                continue
            runs[run_id] = MlflowRun(
                run_id=run_id, name=name or "", experiment=str(names.get(experiment_id, experiment_id)),
                start_time=start / 1000.0 if isinstance(start, int) else None,
            )
            where = local_store(artifact_uri or "")
            if where is not None and where[0] == "file" and where[1].is_absolute():
                runs[run_id].artifacts = _plain_files(where[1])
        for key, value, run_id in conn.execute("SELECT key, value, run_uuid FROM params"):
            if run_id in runs:
                runs[run_id].params[key] = value or ""
        for key, value, run_id in conn.execute("SELECT key, value, run_uuid FROM tags"):
            if run_id in runs:
                runs[run_id].tags[key] = value or ""
        for key, value, when, run_id, step, is_nan in conn.execute(
            "SELECT key, value, timestamp, run_uuid, step, is_nan FROM metrics ORDER BY timestamp, step"
        ):
            if run_id in runs:
                number = math.nan if is_nan else float(value)
                runs[run_id].metrics.setdefault(key, []).append((int(step or 0), when / 1000.0, number))
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    return list(runs.values())


__all__ = ["ARTIFACTS_PREFIX", "SYSTEM_TAG_PREFIX", "Captured", "MlflowRun", "flatten", "local_store",
           "read_store"]
