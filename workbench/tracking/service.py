"""TrackingService (``ws.runs``): the tracking domain as the CLI, the TUI, workflows and deploy use it.

See docs/CONTRACTS.md. Reads first mark runs whose owning process died as failed (keeping every
event they wrote), so no view shows a dead run as running.
"""

from __future__ import annotations

import builtins
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.clock import IdSource
from workbench.errors import UnknownIdError
from workbench.paths import ProjectPaths
from workbench.tracking import filters, manage, records, registry, reproduce
from workbench.tracking.ids import new_run_id
from workbench.tracking.lineage import LineageNode, lineage
from workbench.tracking.records import RunInfo
from workbench.tracking.request import RunRequest, as_request
from workbench.versioning.versioned import VersionedProject

if TYPE_CHECKING:
    from workbench.executors.base import Channel
    from workbench.executors.service import ExecutorService
    from workbench.project import Project
    from workbench.tracking import metrics
    from workbench.tracking.conflicts import Conflict
    from workbench.tracking.reattach import Reconciled
    from workbench.versioning.service import VersioningService

RECOVERY_INTERVAL = 2.0


@dataclass
class LogLine:
    """One stored output line of a run."""

    seq: int
    stream: str
    time: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunFile:
    """An input or output of a run."""

    path: str
    hash: str | None
    size: int | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TrackingService:
    """Runs, metrics, logs, lineage and models of one project."""

    def __init__(self, project: Project, *, versions: VersioningService, executors: ExecutorService,
                 new_id: IdSource = new_run_id) -> None:
        self.project = project
        self.versions = versions
        self.executors = executors
        """Re-attaches or ends remote runs before dead local ones are marked failed."""
        shared = executors.ws.project is project
        self.versioned = executors.ws if shared else VersionedProject(project, versions)
        """What run orchestration works on: the project, its snapshots and (through the executors' own
        one) the remotes container jobs read their inputs from."""
        self.clock = project.clock
        """Stamps the runs this service records (and their logs, stdout metrics, models, aliases)."""
        self.new_id = new_id
        """Mints the id of each run this service starts."""
        self._recovered_at = 0.0
        self._token: tuple[int, int, int, int] = (0, -1, -1, 0)
        """(connection id, data_version, total_changes, counter) of the last change_token read."""

    @property
    def db(self) -> sqlite3.Connection:
        return self.project.db

    def recover(self, *, force: bool = False) -> list[str]:
        """Mark dead 'running' runs as failed (at most every couple of seconds unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._recovered_at < RECOVERY_INTERVAL:
            return []
        self._recovered_at = now
        from workbench.tracking.finalize import recover_stale

        # Remote jobs (Docker, Kubernetes) may outlive their workbench process: re-attach a follower
        # or mark them lost with the reason first, so only truly dead local runs become 'failed'.
        self.reconcile()
        return recover_stale(self.versioned)

    def reconcile(self, *, spawn: bool = True) -> builtins.list[Reconciled]:
        """Re-attach (``spawn``) or mark lost every remote run whose workbench process died
        (:mod:`workbench.tracking.reattach`)."""
        from workbench.tracking.reattach import reconcile

        return reconcile(self.versioned, self.executors, spawn=spawn)

    # -- running -------------------------------------------------------------------------------
    def execute(
        self, request: RunRequest | Sequence[str], *, on_line: Callable[[Channel, bytes], None] | None = None,
        cancel_event: threading.Event | None = None,
    ) -> RunInfo:
        """Run ``request`` (a :class:`RunRequest`, or a bare command with every default) and record
        everything; returns the ended run.

        Resource requests are checked first, for every executor, so a typo records nothing.
        ``isolated`` (local runs) runs it in its own checkout of ``snapshot_before`` (default: a new
        snapshot) and copies its outputs back by the rule of :mod:`workbench.tracking.isolation`.
        ``on_line(channel, bytes)`` gets each output line live; ``cancel_event`` cancels the run.
        """
        from workbench.executors.resources import check_resources
        from workbench.tracking.runner import execute

        request = as_request(request)
        check_resources(request.gpus, request.cpu, request.memory)
        run_id = execute(self.versioned, request, on_line=on_line, cancel_event=cancel_event,
                         clock=self.clock, new_id=self.new_id)
        return self.get(run_id)

    def rerun(
        self, ref: str, *, on_line: Callable[[Channel, bytes], None] | None = None,
        cancel_event: threading.Event | None = None, name: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> RunInfo:
        """Check out the run's input snapshot into a scratch folder and run its command there again,
        as a new run whose ``parent_run`` is the old one, on the old run's executor, image, GPUs and
        namespace unless ``overrides`` (executor, image, gpus, cpu, memory, namespace) says otherwise.
        The new run is tagged ``reproduced`` = reproduced | differs | no outputs (see
        :meth:`reproduction`). The scratch folder is kept."""
        from workbench.errors import UsageError
        from workbench.tracking.ids import new_run_id
        from workbench.tracking.runner import execute

        old = self.get(ref)
        from workbench.tracking.redact import redacted_names

        hidden = redacted_names(old.command)
        if hidden:
            raise UsageError(
                f"run {old.id} was recorded with the value of {', '.join(hidden)} redacted (***), "
                "so its command cannot be run again as recorded",
                "run it again with 'workbench run -- ...' passing the value yourself, or have the "
                "script read it from an environment variable (e.g. HF_TOKEN) so its command holds no secret",
            )
        if not old.snapshot_before:
            raise UsageError(f"run {old.id} has no input snapshot to rerun from",
                             "runs recorded by 'workbench run' in a versioned project have one")
        # Params given to the run from outside its command (a pipeline stage's, resolved from its
        # params file then; a sweep member's) come from the record, not from today's files.
        sources = self.param_sources(old.id)
        given = {k: v for k, v in old.params.items() if sources.get(k) == "api"}
        scratch = self.project.paths.tmp / f"rerun-{old.id}-{new_run_id()}"
        scratch.mkdir(parents=True)
        self.versions.checkout(old.snapshot_before, scratch)
        ProjectPaths(scratch).store_dir.mkdir(exist_ok=True)
        settings = reproduce.launch_settings(old.executor, old.executor_info, overrides or {})
        request = RunRequest(
            tuple(old.command), name=name or (f"rerun of {old.name}" if old.name else f"rerun of {old.id}"),
            tags=(f"rerun_of={old.id}",), parent_run=old.id, workdir=old.workdir,
            snapshot_before=old.snapshot_before, params=given, **settings,
        )
        from workbench.executors.resources import check_resources

        check_resources(request.gpus, request.cpu, request.memory)
        run_id = execute(self.versioned, request, on_line=on_line, cancel_event=cancel_event, root=scratch,
                         clock=self.clock, new_id=self.new_id)
        manage.set_tags(self.db, run_id, {"reproduced": self.reproduction(run_id).verdict})
        return self.get(run_id)

    def reproduction(self, ref: str) -> reproduce.Reproduction:
        """A rerun's outputs against its parent run's, byte for byte (by content hash)."""
        run = self.get(ref)
        if not run.parent_run:
            raise UnknownIdError(f"run {run.id} is not a rerun", "compare it with 'workbench compare'")
        return reproduce.compare_outputs(self.outputs(run.parent_run), self.outputs(run.id))

    # -- reading runs --------------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        return records.resolve(self.db, ref)

    def get(self, ref: str) -> RunInfo:
        self.recover()
        run_id = self.resolve(ref)
        found = records.load_runs(self.db, [run_id], full=True)
        if not found:
            raise UnknownIdError(f"no run {ref!r}", "see 'workbench runs'")
        return found[0]

    def list(self, filter_expr: str | None = None, sort: str | None = None,
             limit: int | None = None, *, archived: bool | None = True) -> builtins.list[RunInfo]:
        """Runs newest first (or by ``sort``), filtered by a ``--filter`` expression.
        ``archived``: True includes archived runs, False leaves them out, None lists only them."""
        node = filters.parse(filter_expr) if filter_expr else None
        self.recover()
        runs = records.load_runs(self.db)
        if archived is not True:
            runs = [r for r in runs if (manage.ARCHIVED_TAG in r.tags) is (archived is None)]
        if node is not None:
            test = filters.compile_filter(node)
            runs = [r for r in runs if test(r)]
        if sort:
            runs = filters.sort_runs(runs, sort)
        return runs[:limit] if limit is not None and limit >= 0 else runs

    def change_token(self) -> int:
        """A number that changes whenever anything a runs view shows may have changed: a run
        created, ended, renamed or recovered, params, tags or metric summaries written (every
        ingest batch of a live run), a model version or alias. Poll it (say every 250 ms) and list
        again only when it differs. Costs about 10 µs when nothing changed: ``PRAGMA data_version``
        (which moves when another connection commits) and this connection's ``total_changes`` tell
        whether the counter row (bumped by triggers in the writers' transactions) needs reading.
        Also marks runs of dead runners as failed, at most every couple of seconds."""
        self.recover()
        db = self.db
        data_version = int(db.execute("PRAGMA data_version").fetchone()[0])
        key = (id(db), data_version, db.total_changes)
        if key == self._token[:3]:
            return self._token[3]
        counter = int(db.execute("SELECT counter FROM tracking_changes WHERE id = 1").fetchone()[0])
        self._token = (*key, counter)
        return counter

    def params(self, run_id: str) -> dict[str, Any]:
        return self.get(run_id).params

    def param_sources(self, run_id: str) -> dict[str, str]:
        """Where each param came from: ``argv`` (the command's flags), ``argparse`` (given on the
        command line), ``argparse-default`` (argparse's default), ``api`` (log_param, pipelines, sweeps)."""
        rows = self.db.execute("SELECT key, source FROM run_params WHERE run_id = ? ORDER BY key",
                               (self.resolve(run_id),))
        return {str(k): str(v) for k, v in rows}

    def metric_keys(self, run_id: str) -> builtins.list[str]:
        from workbench.tracking import metrics  # numpy: a `workbench run` never reads series back

        return metrics.metric_keys(self.db, self.resolve(run_id))

    def metric_series(self, run_id: str, key: str, *, max_points: int | None = None) -> metrics.MetricSeries:
        from workbench.tracking import metrics

        return metrics.metric_series(self.db, self.resolve(run_id), key, max_points=max_points)

    def log_lines(self, run_id: str, *, follow: bool = False, since: int = 0,
                  poll: float = 0.2) -> Iterator[LogLine]:
        """Stored output lines after ``since``; with ``follow``, keep waiting until the run has ended."""
        run_id = self.resolve(run_id)
        seq = since
        while True:
            rows = self.db.execute(
                "SELECT seq, stream, time, line FROM run_logs WHERE run_id = ? AND seq > ?"
                " ORDER BY seq LIMIT 5000",
                (run_id, seq),
            ).fetchall()
            for row in rows:
                seq = int(row[0])
                yield LogLine(seq, row[1], row[2], row[3])
            if rows:
                continue
            if not follow:
                return
            self.recover()
            status = self.db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if status is None or status[0] != "running":
                tail = self.db.execute("SELECT COUNT(*) FROM run_logs WHERE run_id = ? AND seq > ?",
                                       (run_id, seq)).fetchone()
                if not tail[0]:
                    return
                continue
            time.sleep(poll)

    def _files(self, run_id: str, direction: str) -> builtins.list[RunFile]:
        rows = self.db.execute(
            "SELECT path, hash, size, source FROM run_files WHERE run_id = ? AND direction = ? ORDER BY path",
            (self.resolve(run_id), direction),
        )
        return [RunFile(*tuple(r)) for r in rows]

    def conflicts(self, run_id: str) -> builtins.list[Conflict]:
        """Outputs of the run whose bytes the project does not hold (see tracking/conflicts.py)."""
        from workbench.tracking import conflicts

        return conflicts.of_run(self.db, self.resolve(run_id))

    def inputs(self, run_id: str) -> builtins.list[RunFile]:
        return self._files(run_id, "input")

    def outputs(self, run_id: str) -> builtins.list[RunFile]:
        return self._files(run_id, "output")

    def refused_events(self, run_id: str) -> builtins.list[dict[str, Any]]:
        """Paths the boundary refused for this run: ``[{"kind", "path", "reason"}]`` (docs/security.md)."""
        from workbench.tracking import refusals

        return refusals.for_run(self.db, self.resolve(run_id))

    def lineage(self, target: str, *, cwd: Path | None = None) -> LineageNode:
        return lineage(self.versioned, target, cwd=cwd)

    def compare(self, refs: Sequence[str]) -> dict[str, Any]:
        """Params that differ between the runs, and every metric side by side (last values)."""
        runs = [self.get(ref) for ref in refs]
        keys = sorted({k for r in runs for k in r.params})
        differing = {k: [r.params.get(k) for r in runs] for k in keys
                     if len({repr(r.params.get(k)) for r in runs}) > 1}
        metric_names = sorted({k for r in runs for k in r.metrics})
        return {
            "runs": [{"id": r.id, "name": r.name, "status": r.status, "code_snapshot": r.snapshot_before}
                     for r in runs],
            "params": differing,
            "same_params": {k: runs[0].params.get(k) for k in keys if k not in differing},
            "metrics": {
                k: [r.metrics[k].to_dict() if k in r.metrics else None for r in runs] for k in metric_names
            },
            "inputs": self._differing_inputs(runs),
            "code": self._code_changes(runs),
        }

    def _differing_inputs(self, runs: Sequence[RunInfo]) -> dict[str, builtins.list[str | None]]:
        """Input paths whose recorded hash is not the same in every run (None: not an input there)."""
        hashes = [{f.path: f.hash for f in self.inputs(r.id)} for r in runs]
        paths = sorted({p for h in hashes for p in h})
        return {p: [h.get(p) for h in hashes] for p in paths if len({h.get(p, "-") for h in hashes}) > 1}

    def _code_changes(self, runs: Sequence[RunInfo]) -> builtins.list[dict[str, Any]]:
        """What differs between the first run's input snapshot and each other run's: one entry per
        other run, ``{"run", "from", "to", "changes": [{"path", "change"}], "compared"}`` (changes empty
        when identical; ``compared`` false when either run has no input snapshot, e.g. imported)."""
        first = runs[0].snapshot_before
        out: builtins.list[dict[str, Any]] = []
        for run in runs[1:]:
            changes: builtins.list[dict[str, str]] = []
            if first and run.snapshot_before and first != run.snapshot_before:
                changes = [{"path": c.path, "change": c.change}
                           for c in self.versions.diff(first, run.snapshot_before)]
            out.append({"run": run.id, "from": first, "to": run.snapshot_before, "changes": changes,
                        "compared": bool(first and run.snapshot_before)})
        return out

    # -- models --------------------------------------------------------------------------------
    def models(self) -> builtins.list[registry.ModelInfo]:
        return registry.list_models(self.db)

    def model_versions(self, name: str) -> builtins.list[registry.ModelVersion]:
        return registry.versions(self.db, name)

    def run_models(self, run_id: str) -> builtins.list[registry.ModelVersion]:
        """Model versions registered by one run."""
        return registry.versions_of_run(self.db, self.resolve(run_id))

    def model_version(self, spec: str) -> registry.ModelVersion:
        """``name``, ``name:version`` or ``name@alias``."""
        return registry.get_version(self.db, spec)

    def set_alias(self, name: str, version: int, alias: str) -> registry.ModelVersion:
        return registry.set_alias(self.db, name, version, alias, now=self.clock.now())

    def register_model(self, path: Path, *, name: str | None = None, run_id: str | None = None,
                       framework: str = "", framework_version: str = "") -> registry.ModelVersion:
        """Register a model file by hand (stored in the blob cache)."""
        from workbench.tracking.finalize import hash_path

        if not path.is_file():
            raise UnknownIdError(f"no such file: {path}")
        digest = hash_path(self.versioned, path, store=True)
        assert digest is not None
        if not framework:
            framework, detected = registry.detect_framework(path)
            framework_version = framework_version or detected
        try:
            rel = path.resolve().relative_to(self.project.root).as_posix()
        except ValueError:
            rel = str(path.resolve())
        found, reused = registry.register_or_reuse(
            self.db, name=name or registry.model_name_for(rel), run_id=run_id, path=rel, hash=digest,
            size=path.stat().st_size, framework=framework, framework_version=framework_version,
            now=self.clock.now(),
        )
        if not reused and self.versioned.on_model_registered is not None:
            self.versioned.on_model_registered(found, None)
        return found

    # -- managing runs after the fact (workbench/tracking/manage.py) -------------------------------
    def rename(self, ref: str, name: str) -> RunInfo:
        """Give a run a new name; what it recorded stays as it was."""
        run_id = self.resolve(ref)
        manage.rename(self.db, run_id, name)
        return self.get(run_id)

    def tag(self, ref: str, tags: dict[str, str], remove: Sequence[str] = ()) -> RunInfo:
        """Set tags on a run (and drop the keys in ``remove``)."""
        run_id = self.resolve(ref)
        manage.set_tags(self.db, run_id, tags, tuple(remove))
        return self.get(run_id)

    def archive(self, refs: Sequence[str], *, undo: bool = False) -> builtins.list[str]:
        """Archive runs (left out of default listings, nothing deleted), or bring them back."""
        ids = [self.resolve(ref) for ref in refs]
        manage.archive(self.db, ids, undo=undo)
        return ids

    def plan_removal(self, refs: Sequence[str]) -> manage.RemovalPlan:
        """What removing these runs would delete, and which cannot go and why (nothing changes)."""
        ids = builtins.list(dict.fromkeys(self.resolve(ref) for ref in refs))
        return manage.plan_removal(self.db, ids)

    def remove(self, plan: manage.RemovalPlan, progress: Callable[[int, int], None] | None = None,
               ) -> dict[str, Any]:
        """Delete a planned removal, then free the blobs nothing references any more (``gc``)."""
        head = self.versions.head()
        keep = frozenset({head.id}) if head is not None else frozenset()
        dropped = manage.remove(self.db, plan, keep_snapshots=keep)
        for run_id in plan.runs:  # the run's scratch folder (events file, captured library logs)
            scratch = self.project.paths.runs / run_id
            if scratch.is_dir() and not scratch.is_symlink():
                shutil.rmtree(scratch, ignore_errors=True)
        report = self.versions.gc(progress)
        return {"runs": plan.runs, "snapshots": dropped, "points": plan.points,
                "log_lines": plan.log_lines, "files": plan.files, "freed_bytes": report.freed_bytes,
                "objects_deleted": report.deleted}
