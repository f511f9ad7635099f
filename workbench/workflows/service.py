"""WorkflowService (``ws.workflows``): pipelines and sweeps for the CLI and the TUI.

Pipelines: :meth:`load`, :meth:`dag`, :meth:`plan` (``repro --dry``), :meth:`repro`,
:meth:`dag_status` (stage -> fresh | stale(reasons) | running | failed, for the TUI's DAG view),
:meth:`pipeline_runs` and :meth:`pipeline_run`.
Sweeps: :meth:`expand_sweep` (validate without running), :meth:`sweep`, :meth:`sweeps`,
:meth:`get_sweep`, :meth:`rank` (members ordered by a metric).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from workbench.errors import UsageError, WorkbenchError
from workbench.executors.registry import resolve_name
from workbench.tracking.request import RunRequest, as_request
from workbench.workflows import records
from workbench.workflows.backend import ServiceBackend
from workbench.workflows.dag import Dag, build_dag
from workbench.workflows.dvc import DVC_FILENAME, load_dvc
from workbench.workflows.plan import PlanItem, Planner
from workbench.workflows.records import HashCache
from workbench.workflows.repro import Repro, ReproResult, StageEvent, pipeline_lock
from workbench.workflows.spec import PIPELINE_FILENAME, Pipeline, PipelineError, load_pipeline
from workbench.workflows.sweep import Space, expand
from workbench.workflows.sweep_runner import (
    SweepEvent,
    SweepInfo,
    SweepMember,
    SweepRunner,
    create_sweep,
    get_sweep,
    list_sweeps,
)

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.tracking.service import TrackingService
    from workbench.versioning.service import VersioningService


@dataclass
class StageStatus:
    """A stage's state for the DAG views."""

    stage: str
    state: str  # fresh | stale | running | failed
    reasons: list[str] = field(default_factory=list)
    run_id: str | None = None
    """The run that made the stage's current outputs, is running it, or failed."""

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "state": self.state, "reasons": self.reasons, "run_id": self.run_id}


class WorkflowService:
    """Pipelines and sweeps of one project."""

    def __init__(self, project: Project, *, runs: TrackingService, versions: VersioningService) -> None:
        self.project = project
        self.runs = runs
        self.backend = ServiceBackend(project, runs=runs, versions=versions)

    # -- pipelines -----------------------------------------------------------------------------
    def load(self) -> tuple[Pipeline, Dag]:
        """Parse and validate ``workbench.yaml``, or a DVC project's ``dvc.yaml`` where there is no
        ``workbench.yaml`` (raises PipelineError with file:line:column)."""
        root = self.project.root
        if not (root / PIPELINE_FILENAME).exists() and (root / DVC_FILENAME).is_file():
            pipeline = load_dvc(root)
        else:
            pipeline = load_pipeline(root)
        return pipeline, build_dag(pipeline)

    def has_pipeline(self) -> bool:
        root = self.project.root
        return (root / PIPELINE_FILENAME).is_file() or (root / DVC_FILENAME).is_file()

    def dag(self) -> dict[str, Any]:
        """Drawing data: stages with levels, edges with the paths that link them."""
        _, dag = self.load()
        return dag.to_dict()

    def _planner(self, pipeline: Pipeline, dag: Dag) -> Planner:
        cache = HashCache(self.project.db, self.project.root, self.backend.hash_file)
        return Planner(self.project.root, pipeline, dag, self.project.db, cache)

    @staticmethod
    def _select(pipeline: Pipeline, dag: Dag, stages: list[str] | None) -> list[str]:
        if not stages:
            return dag.topological()
        wanted: set[str] = set()
        for name in stages:
            # A foreach/matrix group's name (dvc.yaml) selects all its members, as with dvc repro.
            members = [s for s in pipeline.stages if s.startswith(name + "@")]
            for member in [name] if name in pipeline.stages or not members else members:
                pipeline.stage(member)  # raises with the list of stages
                wanted |= dag.ancestors(member)
        return dag.topological(wanted)

    def plan(self, stages: list[str] | None = None, *, force: bool = False) -> list[PlanItem]:
        """What ``repro`` would do now, and why (nothing runs, nothing is written but the hash cache)."""
        pipeline, dag = self.load()
        planner = self._planner(pipeline, dag)
        items = planner.plan(self._select(pipeline, dag, stages), force=force)
        flush = getattr(planner.hasher, "flush", None)
        if callable(flush):
            flush()
        return items

    def repro(self, stages: list[str] | None = None, *, force: bool = False, jobs: int = 1,
              check: bool = False, on_event: Callable[[StageEvent], None] | None = None,
              cancel_event: threading.Event | None = None, stream_lines: bool = False) -> ReproResult:
        """Bring the selected stages (and what they depend on) up to date."""
        if jobs < 1:
            raise UsageError("-j must be at least 1")
        pipeline, dag = self.load()
        selected = self._select(pipeline, dag, stages)
        planner = self._planner(pipeline, dag)
        planner.check_inputs(selected)
        with pipeline_lock(self.project.paths.locks):
            repro = Repro(pipeline, dag, planner, self.backend, force=force, jobs=jobs,
                          check=check, default_executor=None, on_event=on_event,
                          cancel_event=cancel_event, stream_lines=stream_lines)
            return repro.run(selected, list(stages or []))

    def dag_status(self) -> dict[str, StageStatus]:
        """Each stage's state: running (in a live repro), failed (its last run), fresh or stale."""
        pipeline, dag = self.load()
        db = self.project.db
        out: dict[str, StageStatus] = {}
        live = next((r for r in records.pipeline_runs(db, limit=5) if records.is_live(r)), None)
        if live is not None:
            for rec in records.stages_of(db, live["id"]):
                if rec.status == "running":
                    out[rec.stage] = StageStatus(rec.stage, "running", [rec.reason] if rec.reason else [],
                                                 rec.run_id)
        for name in pipeline.stages:
            if name in out:
                continue
            last = records.last_record(db, name)
            if last is not None and last.status == "failed":
                out[name] = StageStatus(name, "failed", [last.reason] if last.reason else [], last.run_id)
        try:
            items = self._planner(pipeline, dag).plan(dag.topological())
        except PipelineError as exc:
            for name in pipeline.stages:
                out.setdefault(name, StageStatus(name, "stale", [exc.message]))
            return {name: out[name] for name in pipeline.stages}
        for item in items:
            if item.stage in out:
                continue
            if item.action == "skip":
                out[item.stage] = StageStatus(item.stage, "fresh", [], item.source_run)
            elif item.action == "restore":
                out[item.stage] = StageStatus(item.stage, "stale",
                                              [*item.reasons, f"cached in run {item.source_run}"],
                                              item.source_run)
            else:
                out[item.stage] = StageStatus(item.stage, "stale", item.reasons)
        return {name: out[name] for name in pipeline.stages}

    def pipeline_runs(self, limit: int | None = 20) -> list[dict[str, Any]]:
        return records.pipeline_runs(self.project.db, limit)

    def pipeline_run(self, ref: str) -> dict[str, Any]:
        row = records.pipeline_run(self.project.db, ref)
        if row is None:
            from workbench.errors import UnknownIdError

            raise UnknownIdError(f"no pipeline run '{ref}'")
        row["stages"] = [s.to_dict() for s in records.stages_of(self.project.db, row["id"])]
        return row

    # -- sweeps --------------------------------------------------------------------------------
    def expand_sweep(self, command: list[str], params: list[str], *, random_n: int | None = None,
                     seed: int | None = None) -> tuple[Space, list[tuple[dict[str, Any], list[str]]]]:
        """Validate a sweep and list its members (params and argv) without running anything."""
        return expand(command, params, random_n=random_n, seed=seed)

    def sweep(self, request: RunRequest | Sequence[str], params: list[str], *, random_n: int | None = None,
              seed: int | None = None, parallel: int = 1,
              on_event: Callable[[SweepEvent], None] | None = None,
              on_created: Callable[[SweepInfo], None] | None = None,
              cancel_event: threading.Event | None = None) -> SweepInfo:
        """Launch every member as a run grouped under one sweep, ``parallel`` at a time.

        ``request`` (or a bare command) is the template: its command holds ``{name}`` where each
        parameter goes, its name names the sweep (members are NAME-0, NAME-1 ...), and its
        executor, image, GPUs and limits are every member's."""
        request = as_request(request)
        command = list(request.command)
        if parallel < 1:
            raise UsageError("--parallel must be at least 1")
        _, members = self.expand_sweep(command, params, random_n=random_n, seed=seed)
        executor_name = request.executor or self.project.config.executor.default or "local"
        resolve_name(executor_name)  # an unknown executor is refused before the sweep is recorded
        name = request.name
        sweep_id = create_sweep(self.project.db, name=name or "", command=command, space=params,
                                mode="random" if random_n is not None else "grid",
                                members=[p for p, _ in members], parallel=parallel,
                                executor=executor_name, seed=seed)
        if not name:
            with self.project.atomic() as db:
                db.execute("UPDATE sweeps SET name = ? WHERE id = ?", (f"sweep-{sweep_id[-6:]}", sweep_id))
        info = get_sweep(self.project.db, sweep_id)
        if on_created is not None:
            on_created(info)
        runner = SweepRunner(self.backend, lambda: self.project.db, sweep_id, members, name=info.name,
                             parallel=parallel, template=replace(request, executor=executor_name),
                             cancel_event=cancel_event, on_event=on_event)
        runner.run()
        return get_sweep(self.project.db, sweep_id)

    def sweeps(self, limit: int | None = None) -> list[SweepInfo]:
        return list_sweeps(self.project.db, limit)

    def get_sweep(self, ref: str) -> SweepInfo:
        return get_sweep(self.project.db, ref)

    def metric_value(self, run_id: str, key: str, mode: str = "last") -> float | None:
        """A run's metric as one number: its last, min or max value (None when never logged)."""
        try:
            series = self.runs.metric_series(run_id, key)
        except WorkbenchError:
            return None
        values = [float(v) for v in getattr(series, "values", []) if v is not None]
        if not values:
            return None
        if mode == "min":
            return min(values)
        if mode == "max":
            return max(values)
        return values[-1]

    def first_metric(self, info: SweepInfo) -> str | None:
        """The first metric key logged by the sweep's first run that logged any (for a default rank)."""
        for member in info.members:
            if not member.run_id:
                continue
            try:
                keys: list[str] = list(self.runs.metric_keys(member.run_id))
            except WorkbenchError:
                continue
            if keys:
                return str(keys[0])
        return None

    def rank(self, ref: str, metric: str, *, mode: str = "last",
             order: str = "min") -> tuple[SweepInfo, list[SweepMember]]:
        """The sweep's members that logged ``metric``, best first (``order`` min or max is best)."""
        if order not in ("min", "max"):
            raise UsageError(f"unknown order '{order}'", "use min or max")
        info = self.get_sweep(ref)
        ranked: list[SweepMember] = []
        for member in info.members:
            if member.run_id:
                member.metric = self.metric_value(member.run_id, metric, mode)
            if member.metric is not None:
                ranked.append(member)
        ranked.sort(key=lambda m: m.metric if m.metric is not None else 0.0, reverse=order == "max")
        return info, ranked
