"""``workbench retrain DEPLOYMENT``: close the loop from production back to training.

The run that produced the deployed model version is run again on the project's *current* data (its
command in the project folder, not its old snapshot; a pipeline stage is re-run through ``repro``),
as a new run linked to the old one (``parent_run``) and tagged with the deployment. The version that
run registers under the same model name is the challenger. ``compare`` scores champion (deployed) and
challenger on the deployment's labelled production rows (predictions joined to feedback);
``deploy_if_better`` rolls the challenger out when it scores better. Each retrain is a row of
``retrains`` (migration ``0205_retrains``): the lineage deployment -> predictions -> retrain run ->
new version.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import UsageError, WorkbenchError
from workbench.monitor import scoring

if TYPE_CHECKING:
    from workbench.monitor.host import MonitorHost

LineCallback = Callable[[Any, bytes], None]


@dataclass
class RetrainResult:
    """What one retrain did (``retrain --json`` prints :meth:`to_json`)."""

    deployment: str
    model: str
    champion_version: str
    source_run: str
    run_id: str
    challenger_version: str | None
    predictions: int
    labelled: int
    metric: str = ""
    champion_score: float | None = None
    challenger_score: float | None = None
    decision: str = "not-compared"
    deployed_revision: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> list[str]:
        model, champ, new = self.model, self.champion_version, self.challenger_version
        lines = [
            f"deployment {self.deployment} ({model}:{champ}, "
            f"{self.predictions} predictions, {self.labelled} labelled)",
            f"  -> retrain run {self.run_id} (re-ran {self.source_run})",
            f"  -> {model}:{new}" if new else "  -> no new version",
        ]
        if self.champion_score is not None and self.challenger_score is not None:
            lines.append(f"  {self.metric} on {self.labelled} labelled rows: "
                         f"champion {self.champion_score:.4g}, challenger {self.challenger_score:.4g}")
        if self.decision == "deployed":
            lines.append(f"  deployed {model}:{new} as revision {self.deployed_revision}")
        elif self.decision == "kept":
            lines.append(f"  kept {model}:{champ} (the challenger did not score better)")
        lines.extend(f"  note: {n}" for n in self.notes)
        return lines


def retrain(
    ws: MonitorHost, deployment: str, *, compare: bool = False, deploy_if_better: bool = False,
    since: str | None = None, on_line: LineCallback | None = None,
    cancel_event: threading.Event | None = None,
) -> RetrainResult:
    """Retrain what ``deployment`` serves; see the module docstring."""
    from workbench.deploy.types import ModelRef

    row = ws.deployments.records.row(deployment)
    spec = ws.deployments.records.spec_of(deployment, int(row["revision"]))
    champion = spec.model
    if not champion.run_id:
        raise UsageError(
            f"{champion.name}:{champion.version} (deployed as '{deployment}') was not made by a recorded run",
            "retrain needs the run that trained it: train with 'workbench run' and deploy that version",
        )
    compare = compare or deploy_if_better
    labelled_rows: list[Any] = []
    if compare:
        ws.predictions.ingest(deployment)
        from workbench.monitor.filters import parse_since

        start = parse_since(since, ws.clock.now()) if since else None
        labelled_rows = ws.predictions.labelled(deployment, since=start)
        if not labelled_rows:
            raise UsageError(f"'{deployment}' has no labelled predictions to compare on",
                             f"record labels first: 'workbench feedback {deployment} labels.csv'")
    old = ws.runs.get(champion.run_id)
    run_id = _run_again(ws, old, deployment, on_line, cancel_event)
    new = ws.runs.get(run_id)
    if new.status != "succeeded":
        raise WorkbenchError(f"retrain run {run_id} {new.status} (exit {new.exit_code})",
                             f"see 'workbench logs {run_id}'")
    made = [m for m in ws.runs.run_models(run_id) if m.name == champion.name]
    challenger = ModelRef.from_registry(made[-1]) if made else None
    counts = ws.predictions.counts([deployment])[deployment]
    upto = ws.db.execute("SELECT coalesce(max(id), 0) FROM predictions WHERE deployment = ?",
                         (deployment,)).fetchone()[0]
    result = RetrainResult(
        deployment=deployment, model=champion.name, champion_version=str(champion.version),
        source_run=old.id, run_id=run_id, challenger_version=str(challenger.version) if challenger else None,
        predictions=counts.predictions, labelled=len(labelled_rows),
    )
    if challenger is None:
        result.notes.append(f"run {run_id} registered no version of model {champion.name}")
    elif challenger.hash == champion.hash:
        result.notes.append("the new run produced the same model bytes as the deployed version")
    if compare and challenger is not None:
        _compare(ws, result, champion, challenger, labelled_rows)
        if deploy_if_better:
            if result.challenger_score is not None and result.champion_score is not None and scoring.Score(
                result.metric, result.challenger_score, 0
            ).better_than(scoring.Score(result.metric, result.champion_score, 0)):
                info = ws.deployments.deploy(
                    challenger, name=deployment, target=str(row["target"]), namespace=spec.namespace or None,
                    replicas=int(row["replicas"]) or 1, log_predictions=spec.log_predictions,
                )
                result.decision, result.deployed_revision = "deployed", info.revision
            else:
                result.decision = "kept"
        else:
            result.decision = "compared"
    _record(ws, result, int(row["revision"]), int(upto))
    return result


def _run_again(ws: MonitorHost, old: Any, deployment: str, on_line: LineCallback | None,
               cancel_event: threading.Event | None) -> str:
    """Run the producing run (or its pipeline stage) again on today's data; returns the new run id."""
    from workbench.tracking import manage, reproduce

    tags = {"retrain_of": old.id, "retrain_for": deployment}
    if old.pipeline_run and old.stage:
        outcome = ws.workflows.repro([old.stage], force=True, cancel_event=cancel_event)
        stage_runs = [s.run_id for s in outcome.stages if s.stage == old.stage and s.run_id]
        if outcome.status != "succeeded" or not stage_runs:
            raise WorkbenchError(f"retraining stage '{old.stage}' {outcome.status}: {outcome.message}"[:400],
                                 "see 'workbench repro' for the stage's log")
        manage.set_tags(ws.db, stage_runs[-1], tags)
        return stage_runs[-1]
    sources = ws.runs.param_sources(old.id)
    given = {k: v for k, v in old.params.items() if sources.get(k) == "api"}
    settings = reproduce.launch_settings(old.executor, old.executor_info or {}, {})
    from workbench.tracking.request import RunRequest

    request = RunRequest(
        tuple(old.command), name=f"retrain of {deployment}", tags=tuple(f"{k}={v}" for k, v in tags.items()),
        parent_run=old.id, workdir=old.workdir, params=given, **settings,
    )
    info = ws.runs.execute(request, on_line=on_line, cancel_event=cancel_event)
    return str(info.id)


def _compare(ws: MonitorHost, result: RetrainResult, champion: Any, challenger: Any, rows: list[Any]) -> None:
    names = list(rows[0].features)
    usable = [r for r in rows if list(r.features) == names]
    matrix = [[float(r.features[n]) for n in names] for r in usable]
    labels = [r.label for r in usable]
    metric = scoring.metric_for(labels)
    result.metric, result.labelled = metric, len(usable)
    result.champion_score = scoring.score(scoring.predict_offline(ws, champion, matrix), labels, metric)
    result.challenger_score = scoring.score(scoring.predict_offline(ws, challenger, matrix), labels, metric)


def _record(ws: MonitorHost, result: RetrainResult, revision: int, upto: int) -> None:
    with ws.atomic() as conn:
        conn.execute(
            "INSERT INTO retrains (deployment, revision, model, champion_version, source_run, run_id, "
            "challenger_version, predictions_upto, predictions, labelled, metric, champion_score, "
            "challenger_score, decision, deployed_revision, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (result.deployment, revision, result.model, result.champion_version, result.source_run,
             result.run_id, result.challenger_version, upto, result.predictions, result.labelled,
             result.metric, result.champion_score, result.challenger_score, result.decision,
             result.deployed_revision, ws.clock.now()),
        )


def retrains(ws: MonitorHost, deployment: str) -> list[dict[str, Any]]:
    """Every retrain of a deployment, oldest first (the loop's lineage)."""
    cursor = ws.db.execute("SELECT * FROM retrains WHERE deployment = ? ORDER BY id", (deployment,))
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, r, strict=True)) for r in cursor]
