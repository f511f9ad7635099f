"""Logging libraries captured under ``workbench run`` without code changes: MLflow and TensorBoard.

**MLflow.** When the user has not set ``MLFLOW_TRACKING_URI``, the runner asks the job's capture
``sitecustomize`` (:data:`ENV_MLFLOW`) to point MLflow at a file store of the run's own, in the
folder of the run's events file (``.workbench/runs/<id>/mlflow`` for a local run, the mounted run
folder of a Docker job): never the project's tree. When the job has ended the store is read
(:mod:`workbench.tracking.capture_mlflow`, without importing MLflow) and its params, metrics (steps
and times kept), tags and artifacts become the run's own. When the user did set a local store
(a path, ``file:``, ``sqlite:///``), it is left alone and the runs in it that started while the
job ran are read the same way; a server URI is left alone and not read.

**TensorBoard.** The run's outputs whose names mark TensorBoard event files (``*tfevents*``) are
read after the job (:mod:`workbench.tracking.capture_tb`) from wherever its outputs are (the
project, an isolated checkout, a Docker or Kubernetes job's folder) and their scalars become series.

Nothing is imported or read for a run that used neither: the MLflow store folder does not exist
unless MLflow wrote it, and the event-file check is one query over the run's outputs.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.store.db import atomic
from workbench.tracking.ingest import Ingester

if TYPE_CHECKING:
    from workbench.versioning.versioned import VersionedProject

ENV_MLFLOW = "WORKBENCH_CAPTURE_MLFLOW"
"""Set to ``1`` in a job's environment: its sitecustomize points an unset ``MLFLOW_TRACKING_URI``
at ``<folder of WORKBENCH_EVENTS>/mlflow`` (and allows MLflow's file store there)."""
MLFLOW_URI = "MLFLOW_TRACKING_URI"
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
"""MLflow 3.x refuses its file store unless this is ``true``; set only where the user has not."""
MLFLOW_DIRNAME = "mlflow"
SOURCE = "mlflow"


@dataclass
class Capture:
    """Where to look for what a job logged through the libraries, once it has ended."""

    store: tuple[str, Path] | None
    """The MLflow store to read: the run's own file store, or the user's local store."""
    since: float | None = None
    """Only runs of the store that started at or after this (unix seconds): the user's store."""


def plan(env: Mapping[str, str], run_dir: Path, cwd: Path, started: float,
         local: bool) -> tuple[dict[str, str], Capture]:
    """The job's extra environment and what to read afterwards, given the environment the job
    inherits (``env``). ``run_dir`` is the host folder of the run's events file. A ``local`` job
    is given the store's path directly (so a job without the capture sitecustomize is captured
    too); a job elsewhere gets it from its sitecustomize, which knows where its run folder is."""
    uri = env.get(MLFLOW_URI, "")
    if not uri or env.get(ENV_MLFLOW) == "1":  # unset, or an enclosing run's store: not the user's
        store = run_dir / MLFLOW_DIRNAME
        extra = {ENV_MLFLOW: "1"}
        if local:
            extra.update({MLFLOW_URI: str(store), ALLOW_FILE_STORE: "true"})
        return extra, Capture(("file", store))
    from workbench.tracking.capture_mlflow import local_store

    found = local_store(uri)
    if found is None:
        return {}, Capture(None)
    kind, path = found
    return {}, Capture((kind, path if path.is_absolute() else cwd / path), since=started - 1.0)


def collect(
    ws: VersionedProject, conn: sqlite3.Connection, ingester: Ingester, run_id: str, *, root: Path,
    capture: Capture, store_folder: Path | None = None,
) -> None:
    """Read what the job logged through MLflow and TensorBoard into its run. ``root`` holds the
    run's outputs (the project, or the job's own folder); ``store_folder`` overrides the folder of
    the run's own MLflow store (a Docker job's run folder)."""
    store = capture.store
    if store is not None and capture.since is None and store_folder is not None:
        store = ("file", store_folder / MLFLOW_DIRNAME)
    if store is not None and store[1].exists():
        _collect_mlflow(ws, conn, ingester, run_id, store, capture.since)
    _collect_tensorboard(conn, ingester, run_id, root)


# -- MLflow -------------------------------------------------------------------------------------
def _collect_mlflow(ws: VersionedProject, conn: sqlite3.Connection, ingester: Ingester, run_id: str,
                    store: tuple[str, Path], since: float | None) -> None:
    from workbench.tracking.capture_mlflow import flatten, read_store

    runs = read_store(*store, since=since)
    if not runs:
        return
    found = flatten(runs)
    for key, value in found.params.items():
        _safely(ingester, ingester.add_param, key, value, SOURCE)
    for key, text in found.tags.items():
        _safely(ingester, ingester.add_tag, key, text)
    for key, (steps, values, times) in found.series.items():
        ingester.replaces_parsed(key, "MLflow")
        _safely(ingester, ingester.add_series, key, steps, values, times)
    ingester.flush()
    _record_artifacts(ws, conn, ingester, run_id, found.artifacts)
    where = "the run's own MLflow store" if since is None else f"MLflow store {store[1]}"
    ingester.note(f"captured from {where}: {len(runs)} MLflow run(s), {len(found.params)} params,"
                  f" {len(found.series)} metrics ({found.points} points), {len(found.artifacts)} artifacts")


def _record_artifacts(ws: VersionedProject, conn: sqlite3.Connection, ingester: Ingester, run_id: str,
                      artifacts: list[tuple[str, Path]]) -> None:
    """Each artifact file into the blob cache, and a run output ``mlflow-artifacts/...`` pointing
    at it (never replacing an output of the same name the job wrote itself)."""
    if not artifacts:
        return
    from workbench.errors import WorkbenchError
    from workbench.tracking.finalize import hash_path

    rows = []
    for name, full in artifacts:
        try:
            digest = hash_path(ws, full, store=True)
            if digest is not None:
                rows.append((run_id, name, digest, full.stat().st_size))
        except (OSError, WorkbenchError) as exc:  # one unreadable artifact must not lose the others
            ingester.note(f"could not keep MLflow artifact {name}: {exc}")
    with atomic(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO run_files (run_id, direction, path, hash, size, source)"
            f" VALUES (?, 'output', ?, ?, ?, '{SOURCE}')", rows,
        )


# -- TensorBoard --------------------------------------------------------------------------------
def event_files(conn: sqlite3.Connection, run_id: str) -> list[str]:
    """The run's outputs that are TensorBoard event files."""
    from workbench.tracking.capture_tb import EVENT_FILE_MARK, is_event_file

    rows = conn.execute(
        "SELECT path FROM run_files WHERE run_id = ? AND direction = 'output' AND instr(path, ?) > 0",
        (run_id, EVENT_FILE_MARK),
    ).fetchall()
    return [path for (path,) in rows if is_event_file(path) and not os.path.isabs(path)]


def _collect_tensorboard(conn: sqlite3.Connection, ingester: Ingester, run_id: str, root: Path) -> None:
    paths = event_files(conn, run_id)
    if not paths:
        return
    from workbench.tracking.capture_tb import series_of
    from workbench.tracking.finalize import _inside

    files: list[tuple[str, Path]] = []
    for path in paths:
        full = _inside(root, path)  # links resolved, never out of the job's folder
        if full is not None and full.is_file():
            files.append((path, full))
    warnings: list[str] = []
    found = series_of(files, warnings)
    points = 0
    for key, series in found.items():
        steps, values, times = _dedupe(series.steps, series.values, series.times)
        ingester.replaces_parsed(key, "TensorBoard")
        _safely(ingester, ingester.add_series, key, steps, values, times)
        points += len(steps)
    for warning in warnings:
        ingester.note(warning)
    ingester.note(f"captured from TensorBoard: {len(found)} series ({points} points) from {len(files)}"
                  " event file(s)")
    ingester.flush()


def _dedupe(steps: Iterable[int], values: Iterable[float],
            times: Iterable[float]) -> tuple[list[int], list[float], list[float]]:
    """By step, the last point written for each (a resumed run writes its steps again)."""
    by_step: dict[int, tuple[float, float]] = {}
    for step, value, when in zip(steps, values, times, strict=True):
        by_step[step] = (value, when if math.isfinite(when) else 0.0)
    ordered = sorted(by_step)
    return ordered, [by_step[s][0] for s in ordered], [by_step[s][1] for s in ordered]


def _safely(ingester: Ingester, add: Callable[..., None], *args: Any) -> None:
    try:
        add(*args)
    except ValueError as exc:
        ingester.note(f"ignored a captured value: {exc}")


__all__ = ["ENV_MLFLOW", "MLFLOW_DIRNAME", "Capture", "collect", "event_files", "plan"]
