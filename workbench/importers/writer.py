"""Writes imported runs through the tracking layer: run rows, the one ingester, the model registry.

A run seen before (its ``imported_from`` tag holds the same ``KIND:SOURCE_ID``) is not made again:
its params and tags are set again (unchanged values change nothing), only points past the last step
already stored for each key are added, artifacts already listed are skipped, and the status is
updated if the source run has ended since. Each run is written in one transaction, so an import
that is interrupted leaves whole runs, never half of one; importing again finishes the job.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.importers.model import SOURCE_TAG, ModelFile, Series, Source, SourceRun, sorted_series
from workbench.store.db import atomic
from workbench.tracking import records, registry
from workbench.tracking.ids import new_run_id
from workbench.tracking.ingest import Ingester
from workbench.tracking.service import TrackingService

MAX_ARTIFACT_FILES = 10_000
"""At most this many artifact files per run are stored (the rest are counted, not kept)."""


@dataclass
class ImportReport:
    """What one import added."""

    kind: str
    source: str
    runs_seen: int = 0
    runs_new: int = 0
    runs_updated: int = 0
    points: int = 0
    artifacts: int = 0
    models_new: int = 0
    run_ids: dict[str, str] = field(default_factory=dict)
    """source id -> workbench run id, for every run seen."""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class ImportWriter:
    """Writes one source's runs and models into a project."""

    def __init__(self, runs: TrackingService, *, artifacts: bool = True) -> None:
        self.runs = runs
        self.db: sqlite3.Connection = runs.db
        self.keep_artifacts = artifacts
        self._known: dict[str, str] = {
            str(value): str(run_id)
            for value, run_id in self.db.execute(
                "SELECT value, run_id FROM run_tags WHERE key = ?", (SOURCE_TAG,))
        }

    def write_source(self, source: Source,
                     progress: Callable[[int, int], None] | None = None) -> ImportReport:
        report = ImportReport(source.kind, source.description)
        parents: dict[str, str] = {}
        for done, run in enumerate(source.runs(), start=1):
            run_id = self.write_run(run, report)
            if run.parent_id:
                parents[run_id] = f"{run.kind}:{run.parent_id}"
            if progress is not None:
                progress(done, max(source.count, done))
        with atomic(self.db):  # nested runs point at their parent once both are in
            self.db.executemany("UPDATE runs SET parent_run = ? WHERE id = ? AND parent_run IS NULL",
                                [(self._known[p], r) for r, p in parents.items() if p in self._known])
        for model in source.models():
            self.write_model(model, source.kind, report)
        return report

    # -- runs ----------------------------------------------------------------------------------
    def write_run(self, run: SourceRun, report: ImportReport) -> str:
        report.runs_seen += 1
        run_id = self._known.get(run.source_key)
        new = run_id is None
        if run_id is not None and run.load_new_metrics is not None:
            stored = dict(self.db.execute("SELECT key, last_step FROM metric_keys"
                                          " WHERE run_id = ? AND last_step IS NOT NULL", (run_id,)))
            loaded = run.load_new_metrics(stored)
        else:
            loaded = run.load_metrics()
        series = {key: sorted_series(s) for key, s in loaded.items()}
        ended = run.ended_at
        if ended is None and run.status != "running":
            ended = max((s.times[-1] for s in series.values() if s.times), default=run.started_at)
        db = self.db
        with atomic(db):
            if run_id is None:
                run_id = new_run_id(run.started_at)
                records.create_run(db, run_id, name=run.name[:200], command=[], executor="import",
                                   source="import", now=run.started_at)
                db.execute("UPDATE runs SET pid = NULL, pid_started = NULL, host = '' WHERE id = ?",
                           (run_id,))  # no process owns it: never "recovered" as a dead run
            ingester = Ingester(db, run_id, self.runs.project.root)
            for key, value in run.params.items():
                try:
                    ingester.add_param(key, value, "import")
                except ValueError as exc:  # an empty, overlong or unprintable key: noted, not fatal
                    ingester.note(f"import: skipped param: {exc}")
            for key, text in {**run.tags, SOURCE_TAG: run.source_key}.items():
                try:
                    ingester.add_tag(key, text)
                except ValueError as exc:
                    ingester.note(f"import: skipped tag: {exc}")
            before = ingester.points_written
            self._add_points(ingester, run_id, series)
            ingester.flush()
            added = ingester.points_written - before
            files = self._add_artifacts(run_id, run) if self.keep_artifacts and run.artifacts else 0
            changed = self._set_status(run_id, run.status, ended, new)
        self._known[run.source_key] = run_id
        report.run_ids[run.source_id] = run_id
        report.points += added
        report.artifacts += files
        if new:
            report.runs_new += 1
        elif added or files or changed:
            report.runs_updated += 1
        return run_id

    def _add_points(self, ingester: Ingester, run_id: str, series: dict[str, Series]) -> None:
        stored = dict(self.db.execute(
            "SELECT key, last_step FROM metric_keys WHERE run_id = ? AND last_step IS NOT NULL", (run_id,)))
        for key, points in series.items():
            if not points.steps:
                continue
            last = stored.get(key)
            if last is not None:  # only what is past the stored series is new
                start = next((i for i, step in enumerate(points.steps) if step > last), len(points.steps))
                points = Series(points.steps[start:], points.times[start:], points.values[start:])
                if not points.steps:
                    continue
            try:
                ingester.add_series(key, points.steps, points.values, points.times)
            except ValueError as exc:
                ingester.note(f"import: skipped metric {key[:60]!r}: {exc}")

    def _set_status(self, run_id: str, status: str, ended: float | None, new: bool) -> bool:
        row = self.db.execute("SELECT status, ended_at FROM runs WHERE id = ?", (run_id,)).fetchone()
        if not new and (row[0], row[1]) == (status, ended):
            records.refresh_summary(self.db, run_id)
            return False
        if status == "running":
            self.db.execute("UPDATE runs SET status = 'running', ended_at = NULL WHERE id = ?", (run_id,))
            records.refresh_summary(self.db, run_id)
        else:
            records.end_run(self.db, run_id, status=status, exit_code=None, now=ended,
                            reason="" if status != "failed" else "failed in the imported source")
        return not new

    def _add_artifacts(self, run_id: str, run: SourceRun) -> int:
        """Store the run's artifact files in the blob cache, listed as its outputs under
        ``KIND-artifacts/``; files already listed are skipped."""
        root = run.artifacts
        assert root is not None
        if root.is_symlink() or not root.exists():
            return 0
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        prefix = f"{run.kind}-artifacts"
        listed = {str(p) for (p,) in self.db.execute(
            "SELECT path FROM run_files WHERE run_id = ? AND direction = 'output'", (run_id,))}
        added = 0
        for path in files[:MAX_ARTIFACT_FILES]:
            rel = path.name if root.is_file() else path.relative_to(root).as_posix()
            name = f"{prefix}/{rel}"
            if name in listed:
                continue
            digest = self.runs.versions.put_file(path)
            self.db.execute(
                "INSERT OR IGNORE INTO run_files (run_id, direction, path, hash, size, source)"
                " VALUES (?, 'output', ?, ?, ?, 'import')", (run_id, name, digest, path.stat().st_size))
            added += 1
        return added

    # -- registered models ---------------------------------------------------------------------
    def write_model(self, model: ModelFile, kind: str, report: ImportReport) -> None:
        """Register the model version's file (a folder: its MLmodel's model file, else skipped)."""
        path = model.path
        if path is not None and path.is_dir():
            path = _model_file_in(path)
        if path is None or path.is_symlink() or not path.is_file():
            report.notes.append(f"model {model.name} version {model.version}: its files were not found")
            return
        run_id = self._known.get(f"{kind}:{model.run_source_id}") if model.run_source_id else None
        digest = self.runs.versions.put_file(path)
        framework, version = registry.detect_framework(path)
        name = _safe_model_name(model.name)
        found, reused = registry.register_or_reuse(
            self.db, name=name, run_id=run_id, path=f"{kind}-models/{model.name}/{model.version}/{path.name}",
            hash=digest, size=path.stat().st_size, framework=framework, framework_version=version,
            now=self.runs.clock.now())
        if not reused:
            report.models_new += 1
        for alias in model.aliases:
            registry.set_alias(self.db, found.name, found.version, alias, now=self.runs.clock.now())


_MLFLOW_ENV_FILES = ("MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt")


def _model_file_in(folder: Path) -> Path | None:
    """The file an MLflow model folder holds its model in (named by MLmodel's flavors), else the
    folder's only file."""
    mlmodel = folder / "MLmodel"
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    if mlmodel.is_file():
        text = mlmodel.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            key, _, value = line.strip().partition(":")
            if key in ("model_path", "pickled_model", "data") and value.strip():
                candidate = folder / value.strip()
                if candidate.is_file():
                    return candidate
    files = [p for p in files if p.name not in _MLFLOW_ENV_FILES]
    return files[0] if len(files) == 1 else None


def _safe_model_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-._") or "model"
    return cleaned[:128]
