"""``ws.monitor``: profiles at registration, baselines, and a report per deployment with its alerts.

The Workspace builds this service and calls :meth:`MonitorService.profile_registered` for each new
model version; ``workbench monitor`` and the Monitor screen call :meth:`report` / :meth:`reports`,
which first pull in pending captured predictions (the capture side's ``ingest_pending`` when it is
installed), fold the new ones into window buckets, then judge the latest window.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UnknownIdError, UsageError, WorkbenchError
from workbench.monitor import alerts, windows
from workbench.monitor.profile import Profile, build_profile
from workbench.monitor.report import Report, build_report, empty_report
from workbench.monitor.tabular import is_tabular, read_table
from workbench.store.db import atomic

if TYPE_CHECKING:
    from workbench.config import MonitorConfig
    from workbench.project import Project
    from workbench.tracking.registry import ModelVersion
    from workbench.versioning.service import VersioningService

MODEL_SUFFIXES = (".pkl", ".pickle", ".joblib")
TRAINING_METRICS = ("accuracy", "acc", "val_accuracy", "test_accuracy", "f1", "mae", "rmse")
MAX_PROFILE_BYTES = 512 * 1024 * 1024


class MonitorService:
    """Monitoring of one project's deployments."""

    def __init__(self, project: Project, *, versions: VersioningService,
                 ingest: Callable[[str | None], object] | None = None) -> None:
        """``versions`` reads model files from the blob cache; ``ingest(deployment)`` pulls in the
        predictions captured since the last call (the Workspace wires in ``ws.predictions``)."""
        self.ws = project
        self.versions = versions
        self._ingest = ingest

    @property
    def db(self) -> sqlite3.Connection:
        return self.ws.db

    @property
    def config(self) -> MonitorConfig:
        return self.ws.config.monitor

    # -- profiles ------------------------------------------------------------------------------------
    def profile(self, model: str, version: int) -> Profile | None:
        return windows.load_profile(self.db, model, version)

    def save_profile(self, model: str, version: int, source: str, profile: Profile) -> None:
        with atomic(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO monitor_profiles (model, version, source, rows, profile, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (model, version, source, profile.rows, json.dumps(profile.to_dict()), self.ws.clock.now()),
            )
            windows.refold(self.db, model, version, profile)  # one transaction with the new edges

    def profile_registered(self, version: ModelVersion, note: Callable[[str], None] | None = None) -> None:
        """Profile a new version from its run's tabular inputs; a problem is a note, never an error."""
        try:
            found = self._profile_from_run(version)
        except WorkbenchError as exc:
            if note is not None:
                note(f"model {version.name}:{version.version}: no reference profile ({exc.one_line()})")
            return
        except Exception as exc:  # a broken input must never fail the run that registered the model
            if note is not None:
                note(f"model {version.name}:{version.version}: no reference profile ({exc})")
            return
        if found is not None:
            source, profile = found
            self.save_profile(version.name, version.version, source, profile)

    def _profile_from_run(self, version: ModelVersion) -> tuple[str, Profile] | None:
        if not version.run_id:
            return None
        inputs = [
            (str(path), hash_, int(size or 0)) for path, hash_, size in self.db.execute(
                "SELECT path, hash, size FROM run_files WHERE run_id = ? AND direction = 'input'",
                (version.run_id,))
            if is_tabular(str(path)) and int(size or 0) <= MAX_PROFILE_BYTES
        ]
        if not inputs:
            return None
        inputs.sort(key=lambda item: ("train" not in Path(item[0]).name.lower(), -item[2], item[0]))
        path, digest, _ = inputs[0]
        data = self._bytes(digest, self.ws.root / path)
        table = read_table(Path(path), data)
        return f"run {version.run_id}: {path}", build_profile(table, model=self._load_model(version))

    def _bytes(self, digest: str | None, fallback: Path) -> bytes | None:
        if digest:
            try:
                return b"".join(self.versions.iter_object(digest))
            except WorkbenchError:
                pass
        return fallback.read_bytes() if fallback.is_file() else None

    def _load_model(self, version: ModelVersion) -> Any:
        """The model object, for scikit-learn pickles only (the format deploy serves); else None."""
        if version.framework != "sklearn" or not version.path.lower().endswith(MODEL_SUFFIXES):
            return None
        data = self._bytes(version.hash, self.ws.root / version.path)
        if data is None:
            return None
        try:
            import joblib

            return joblib.load(io.BytesIO(data))
        except Exception:
            return None

    def baseline(self, target: str, file: Path, *, label: str | None = None,
                 prediction: str | None = None) -> tuple[str, int, Profile]:
        """Profile ``file`` as the reference of ``DEPLOYMENT`` (its current version) or ``MODEL:V``."""
        model, version, model_version = self._target(target)
        if not file.is_file():
            raise UsageError(f"no such file: {file}", "give the training data as CSV, Parquet or .npy")
        loaded = self._load_model(model_version) if model_version is not None else None
        profile = build_profile(read_table(file), label=label, prediction=prediction, model=loaded)
        self.save_profile(model, version, str(file), profile)
        return model, version, profile

    def _target(self, target: str) -> tuple[str, int, ModelVersion | None]:
        from workbench.tracking import registry

        if ":" in target or "@" in target:
            found = registry.get_version(self.db, target)
            return found.name, found.version, found
        model, version = self.deployment_version(target)
        try:
            return model, version, registry.get_version(self.db, f"{model}:{version}")
        except WorkbenchError:
            return model, version, None

    # -- deployments -------------------------------------------------------------------------------------
    def deployment_version(self, deployment: str) -> tuple[str, int]:
        """The model version a deployment serves now (else the one that answered last)."""
        row = self.db.execute("SELECT model, version FROM deployments WHERE name = ?",
                              (deployment,)).fetchone()
        if row is None:
            row = self.db.execute("SELECT model, version FROM predictions WHERE deployment = ?"
                                  " ORDER BY ts DESC LIMIT 1", (deployment,)).fetchone()
        if row is None:
            raise UnknownIdError(f"no deployment named {deployment!r}", "see 'workbench deployments'")
        try:
            return str(row[0]), int(row[1])
        except (TypeError, ValueError):
            raise UsageError(f"deployment {deployment!r} serves no numbered model version") from None

    def deployment_names(self) -> list[str]:
        live = self.db.execute("SELECT name FROM deployments WHERE state != 'undeployed'")
        names = {str(r[0]) for r in live}
        names |= {str(r[0]) for r in self.db.execute("SELECT deployment FROM monitor_cursors")}
        if not names:
            names = {str(r[0]) for r in self.db.execute("SELECT DISTINCT deployment FROM predictions")}
        return sorted(names)

    # -- reports -----------------------------------------------------------------------------------------
    def ingest(self, deployment: str | None = None) -> None:
        """Pull in captured predictions waiting in spool files or pod logs (``ingest`` as wired)."""
        if self._ingest is not None:
            self._ingest(deployment)

    def fold(self, deployment: str) -> int:
        return windows.fold(self.db, deployment)

    def report(self, deployment: str, window: str | None = None, *, ingest: bool = True,
               alert: bool = True, notes: Callable[[str], None] | None = None) -> Report:
        """Fold what is new, judge the latest window, record the state and fire an alert on a change."""
        spec = windows.parse_window(window or self.config.window)
        model, version = self.deployment_version(deployment)
        if ingest:
            self.ingest(deployment)
        self.fold(deployment)
        profile = self.profile(model, version)
        if profile is None:
            return empty_report(deployment, model, version, spec,
                                f"no reference profile for {model}:{version} (workbench monitor baseline "
                                f"{deployment} FILE)")
        found = windows.load_windows(self.db, deployment, model, version, spec, self.config.history,
                                     windows.Layout.of(profile))
        training = profile.reference_metric or self._training_metric(model, version)
        report = build_report(self.db, deployment, model, version, profile, found, spec, self.config,
                              training)
        if alert and found:
            problem = self._alert(report)
            if problem and notes is not None:
                notes(problem)
        return report

    def reports(self, window: str | None = None, *,
                notes: Callable[[str], None] | None = None) -> list[Report]:
        """A report for every deployment (one ingest first)."""
        windows.parse_window(window or self.config.window)  # a bad window or config fails before any work
        self.ingest()
        out = []
        for name in self.deployment_names():
            try:
                out.append(self.report(name, window, ingest=False, notes=notes))
            except UnknownIdError:
                continue
        return out

    def states(self) -> dict[str, str]:
        """Each monitored deployment's last recorded state (cheap: no folding)."""
        return alerts.stored_states(self.db)

    def _alert(self, report: Report) -> str | None:
        now = self.ws.clock.now()
        previous = alerts.record_state(self.db, report, now)
        if previous is False or not self.config.on_alert:
            return None
        document = alerts.alert_document(report, previous if isinstance(previous, str) else None, now)
        return alerts.run_alert(list(self.config.on_alert), document)

    def _training_metric(self, model: str, version: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT run_id FROM model_versions WHERE name = ? AND version = ?",
                              (model, version)).fetchone()
        if row is None or row[0] is None:
            return None
        found = {str(k).lower(): v for k, v in self.db.execute(
            "SELECT key, last_value FROM metric_keys WHERE run_id = ?", (row[0],)) if v is not None}
        for key in TRAINING_METRICS:
            if key in found:
                name = "accuracy" if "acc" in key else key
                return {"name": name, "value": float(found[key]), "source": f"run metric {key}"}
        return None
