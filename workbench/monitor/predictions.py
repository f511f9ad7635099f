"""PredictionService (``ws.predictions``): ingest, read back, export and label what deployments answered.

Capture (:mod:`workbench.deploy.capture`) spools; :meth:`PredictionService.ingest` moves the spool
(and cluster pods' logs) into the ``predictions`` table; every view reads from there. Labels that
arrive later go to ``feedback`` (by request id and row index) through :meth:`log_feedback` or
:meth:`import_feedback`. :func:`ingest_pending` is the one call other monitoring code (drift) makes
before it reads predictions.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UsageError, WorkbenchError
from workbench.monitor import filters
from workbench.monitor.foldworker import WORKER_BYTES, FoldWorker
from workbench.monitor.ingest import (
    IngestReport,
    apply_retention,
    bulk_cache,
    ingest_file,
    parse_retention,
    retire_consumed,
    source_offset,
    spool_files,
)

if TYPE_CHECKING:
    from workbench.monitor.host import MonitorHost


@dataclass
class Prediction:
    """One answered row (``predictions --json`` prints :meth:`to_json`)."""

    id: int
    deployment: str
    revision: int
    model: str
    version: int | None
    request_id: str
    row_index: int
    ts: float
    latency_ms: float | None
    status: str
    error: str
    features: dict[str, Any]
    output: Any
    label: Any = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DeploymentCounts:
    """How much a deployment answered, for listings."""

    predictions: int
    errors: int

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.predictions if self.predictions else None


_SELECT = (
    "SELECT p.id, p.deployment, p.revision, p.model, p.version, p.request_id, p.row_index, p.ts, "
    "p.latency_ms, p.status, p.error, p.features, p.output, f.label "
    "FROM predictions p LEFT JOIN feedback f ON f.deployment = p.deployment "
    "AND f.request_id = p.request_id AND f.row_index = p.row_index"
)


class PredictionService:
    """The prediction log of every deployment of one project."""

    def __init__(self, ws: MonitorHost) -> None:
        self.ws = ws

    # -- ingest ---------------------------------------------------------------------------------
    def ingest(self, deployment: str | None = None, *, clusters: bool = True) -> IngestReport:
        """Store whatever was spooled (and, ``clusters``, logged by cluster pods) since last time,
        then apply ``[monitor] retention`` to the deployments that got rows."""
        report = IngestReport()
        now = self.ws.clock.now()
        touched: set[str] = set()
        spool = self.ws.paths.monitor_spool
        read: list[tuple[Path, str]] = []
        files = [(name, path, path.relative_to(self.ws.paths.store_dir).as_posix())
                 for name, path in spool_files(spool, deployment)]
        worker = self._fold_worker(files)
        try:
            with bulk_cache(self.ws.db):
                for name, path, source in files:
                    before = report.added
                    ingest_file(self.ws.db, self.ws.atomic, path, source, name, report, now=now)
                    read.append((path, source))
                    if report.added > before:
                        touched.add(name)
        finally:
            if worker is not None:
                worker.finish()
        retire_consumed(self.ws.db, self.ws.atomic, read)
        if clusters:
            from workbench.monitor.podlogs import ingest_cluster

            touched |= ingest_cluster(self.ws, deployment, report, now=now)
        if touched:  # stored means folded: `monitor` then only sums buckets, however much arrived
            from workbench.monitor.windows import fold

            for name in sorted(touched):
                fold(self.ws.db, name)
        rule = parse_retention(self.ws.config.monitor.retention)
        report.deleted = apply_retention(self.ws.atomic, sorted(touched), rule, now)
        return report

    def _fold_worker(self, files: list[tuple[str, Path, str]]) -> FoldWorker | None:
        """A second process folding beside this ingest when the backlog is worth one."""
        waiting = 0
        for _, path, source in files:
            try:
                size = path.stat().st_size
            except OSError:
                continue
            waiting += max(0, size - source_offset(self.ws.db, source))  # what this ingest will read
        if waiting < WORKER_BYTES:
            return None
        return FoldWorker.start(self.ws.paths.db, sorted({name for name, _, _ in files}))

    # -- reading --------------------------------------------------------------------------------
    def query(
        self,
        deployment: str,
        *,
        since: str | float | None = None,
        where: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[Prediction]:
        """The deployment's predictions (with their label, if one arrived), newest first."""
        if limit is not None and limit < 0:
            raise UsageError(f"--limit cannot be negative, got {limit}", "give 0 or more")
        sql, params = self._where(deployment, since, where)
        order = "DESC" if newest_first else "ASC"
        text = f"{_SELECT} WHERE {sql} ORDER BY p.ts {order}, p.id {order}"
        if limit is not None:
            text += " LIMIT ?"
            params.append(limit)
        return [_prediction(row) for row in self.ws.db.execute(text, params)]

    def _where(
        self, deployment: str, since: str | float | None, where: str | None
    ) -> tuple[str, list[Any]]:
        clauses = ["p.deployment = ?"]
        params: list[Any] = [deployment]
        if since is not None:
            clauses.append("p.ts >= ?")
            now = self.ws.clock.now()
            when = since if isinstance(since, float | int) else filters.parse_since(since, now)
            params.append(when)
        if where:
            sql, more = filters.compile_filter(where)
            clauses.append(f"({sql})")
            params.extend(more)
        return " AND ".join(clauses), params

    def counts(self, deployments: list[str] | None = None) -> dict[str, DeploymentCounts]:
        """Predictions and errors per deployment (one grouped query)."""
        rows = self.ws.db.execute(
            "SELECT deployment, count(*), sum(status = 'error') FROM predictions GROUP BY deployment"
        ).fetchall()
        found = {r[0]: DeploymentCounts(int(r[1]), int(r[2] or 0)) for r in rows}
        if deployments is not None:
            return {d: found.get(d, DeploymentCounts(0, 0)) for d in deployments}
        return found

    def known(self, deployment: str) -> bool:
        db = self.ws.db
        return bool(
            db.execute("SELECT 1 FROM deployments WHERE name = ?", (deployment,)).fetchone()
            or db.execute("SELECT 1 FROM predictions WHERE deployment = ? LIMIT 1", (deployment,)).fetchone()
        )

    def export_csv(self, rows: list[Prediction], dest: Path) -> int:
        """Write rows as CSV with one column per feature (the union of the rows' features)."""
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row.features))
        base = ["request_id", "row_index", "ts", "revision", "version", "status", "error", "latency_ms"]
        try:
            with open(dest, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow([*base, *names, "output", "label"])
                for row in rows:
                    writer.writerow(
                        [row.request_id, row.row_index, row.ts, row.revision, row.version, row.status,
                         row.error, row.latency_ms, *(_cell(row.features.get(n)) for n in names),
                         _cell(row.output), _cell(row.label)]
                    )
        except OSError as exc:
            raise WorkbenchError(f"cannot write {dest}: {exc.strerror or exc}") from None
        return len(rows)

    # -- feedback -------------------------------------------------------------------------------
    def log_feedback(
        self, request_id: str, label: Any, *, deployment: str | None = None, row_index: int = 0
    ) -> str:
        """Record the true label of one answered row; returns the deployment it belongs to.

        Without ``deployment`` the request id is looked up among the stored predictions (ingesting
        first); a label for a request not (yet) seen needs the deployment named.
        """
        if deployment is None:
            deployment = self._deployment_of(request_id)
        with self.ws.atomic() as conn:
            conn.execute(
                "INSERT INTO feedback (deployment, request_id, row_index, label, ts) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET label = excluded.label, ts = excluded.ts",
                (deployment, str(request_id), int(row_index), json.dumps(label), self.ws.clock.now()),
            )
        return deployment

    def _deployment_of(self, request_id: str) -> str:
        query = "SELECT DISTINCT deployment FROM predictions WHERE request_id = ?"
        found = [r[0] for r in self.ws.db.execute(query, (request_id,))]
        if not found:
            self.ingest(clusters=False)
            found = [r[0] for r in self.ws.db.execute(query, (request_id,))]
        if len(found) != 1:
            where = "in several deployments" if found else "not among the recorded predictions"
            raise UsageError(
                f"request '{request_id}' is {where}",
                "name the deployment: log_feedback(request_id, label, deployment=...)",
            )
        return str(found[0])

    def import_feedback(self, deployment: str, path: Path) -> int:
        """Labels from a CSV with a ``request_id`` column, a ``label`` column and optionally ``row_index``."""
        from workbench.monitor.feedback import read_labels

        labels = read_labels(path)
        now = self.ws.clock.now()
        with self.ws.atomic() as conn:
            conn.executemany(
                "INSERT INTO feedback (deployment, request_id, row_index, label, ts) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET label = excluded.label, ts = excluded.ts",
                [(deployment, rid, row, json.dumps(label), now) for rid, row, label in labels],
            )
        return len(labels)

    def labelled(
        self, deployment: str, *, since: float | None = None, limit: int = 10_000
    ) -> list[Prediction]:
        """Answered rows that have a label, newest first: the data ``retrain --compare`` scores on."""
        params: list[Any] = [deployment]
        text = f"{_SELECT} WHERE p.deployment = ? AND p.status = 'ok' AND f.label IS NOT NULL"
        if since is not None:
            text += " AND p.ts >= ?"
            params.append(since)
        text += " ORDER BY p.ts DESC LIMIT ?"
        params.append(limit)
        return [_prediction(row) for row in self.ws.db.execute(text, params)]


def ingest_pending(ws: MonitorHost, deployment: str | None = None) -> int:
    """Ingest every spooled or logged prediction not yet stored; returns how many rows were added.

    Cheap when nothing is new (a ``stat`` per spool file). Cluster pods are read too; a cluster that
    does not answer is skipped (its lines stay in the pods' logs for the next call)."""
    return ws.predictions.ingest(deployment).added


def _prediction(row: Any) -> Prediction:
    return Prediction(
        id=int(row[0]),
        deployment=row[1],
        revision=int(row[2]),
        model=row[3],
        version=row[4],
        request_id=row[5],
        row_index=int(row[6]),
        ts=float(row[7]),
        latency_ms=row[8],
        status=row[9],
        error=row[10],
        features=json.loads(row[11] or "{}"),
        output=json.loads(row[12] or "null"),
        label=json.loads(row[13]) if row[13] is not None else None,
    )


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value
