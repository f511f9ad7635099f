"""The TUI's door to the project: plain view rows built from the Workspace services.

Every method here blocks (it calls ``ws.versions``, ``ws.runs``, ``ws.deployments``,
``ws.workflows`` and ``ws.executors``) and is therefore only ever called from a thread worker;
screens receive the results through typed callbacks (:meth:`WorkbenchScreen.load`). The services
are called directly with their real signatures and result types, and the converters in
:mod:`workbench.ui.rows` read real attributes, so mypy (strict on ``workbench.ui.*``) catches a
renamed method or field. Nothing here talks to SQL or the file system itself. The row dataclasses
and converters are re-exported here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError
from workbench.ui.rows import (
    FOLDED_KINDS,
    TRAFFIC_KEYS,
    ChangeRow,
    DeploymentRow,
    GpuRow,
    Launched,
    ModelRow,
    Provenance,
    RankRow,
    RunRow,
    Series,
    SnapshotRow,
    StageRow,
    change_row,
    deployment_row,
    fold_run_row,
    gpu_row,
    list_row,
    model_version_row,
    run_row,
    snapshot_row,
)

if TYPE_CHECKING:
    from workbench.core.workspace import Workspace
    from workbench.monitor.report import Report
    from workbench.tracking.request import RunRequest

__all__ = [
    "TRAFFIC_KEYS", "ChangeRow", "DeploymentRow", "GpuRow", "Launched", "ModelRow",
    "Provenance", "RankRow", "RunRow", "Series", "SnapshotRow", "StageRow", "UiData",
    "change_row", "deployment_row", "gpu_row", "list_row", "model_version_row", "run_row", "snapshot_row",
]


# -- the source -------------------------------------------------------------------------------------
class UiData:
    """Blocking queries and actions for the screens, built on one Workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    @property
    def root(self) -> str:
        return str(self.ws.root)

    # -- runs ---------------------------------------------------------------------------------------
    def runs(self, filter_expr: str | None = None, limit: int | None = None,
             archived: bool | None = True) -> list[RunRow]:
        """``archived``: True includes archived runs, False leaves them out, None only them."""
        rows = self.ws.runs.list(filter_expr=filter_expr or None, limit=limit, archived=archived)
        return [list_row(r) for r in rows]

    def change_token(self) -> object:
        """``ws.runs.change_token()``: equal tokens mean the runs views need no new query."""
        return self.ws.runs.change_token()

    def filter_rows(self, rows: list[RunRow], filter_expr: str) -> list[RunRow]:
        """Apply a ``--filter`` expression to rows already loaded (the tracking package's own
        parser and matcher, so the TUI and the CLI agree), without another query."""
        if not filter_expr.strip():
            return rows
        from workbench.tracking import filters

        test = filters.compile_filter(filters.parse(filter_expr))
        return [r for r in rows if r.raw is not None and test(r.raw)]

    @staticmethod
    def narrows(old_expr: str, new_expr: str) -> bool:
        """True when every run ``new_expr`` lets through is one ``old_expr`` lets through, judged
        from the parsed filters (not the text: ``lr<0.01`` -> ``lr<0.013`` widens), so the runs
        already filtered by ``old_expr`` can be filtered again instead of all of them. Holds when
        the new filter is the old one, or the old one's ``and`` terms followed by more terms."""
        from workbench.tracking import filters

        if not old_expr.strip():
            return True
        try:
            old, new = filters.parse(old_expr), filters.parse(new_expr)
        except WorkbenchError:
            return False
        if old == new:
            return True
        if not (isinstance(new, filters.BoolOp) and new.op == "and"):
            return False
        terms = old.items if isinstance(old, filters.BoolOp) and old.op == "and" else [old]
        return len(new.items) > len(terms) and new.items[:len(terms)] == terms

    def run(self, ref: str) -> RunRow:
        return run_row(self.ws.runs.get(ref))

    def metric_keys(self, run_id: str) -> list[str]:
        return self.ws.runs.metric_keys(run_id)

    def metric_series(self, run_id: str, key: str, max_points: int | None = 2000) -> Series:
        raw = self.ws.runs.metric_series(run_id, key, max_points=max_points)
        values = [float(v) if v is not None else math.nan for v in raw.values]
        steps = [float(s) for s in raw.steps] or [float(i) for i in range(len(values))]
        return Series(key, steps, values, [float(t) for t in raw.times])

    def log_lines(self, run_id: str, *, follow: bool, since: int = 0,
                  stop: threading.Event | None = None, poll: float = 0.25) -> Iterator[str]:
        """Stored output lines; with ``follow``, keep polling until the run ends or ``stop`` is set.

        Following is done here (one non-blocking read per poll) so that ``stop`` always ends it
        within one poll interval, even while the run prints nothing.
        """
        seq = since
        while True:
            got = False
            for line in self.ws.runs.log_lines(run_id, follow=False, since=seq):
                got = True
                seq = line.seq
                yield line.text
                if stop is not None and stop.is_set():
                    return
            if not follow or (stop is not None and stop.is_set()):
                return
            if not got:
                if self.ws.runs.get(run_id).status != "running":
                    follow = False  # one last read catches lines written just before the end
                    continue
                if stop is not None:
                    if stop.wait(poll):
                        return
                else:
                    time.sleep(poll)

    def provenance(self, run_id: str) -> Provenance:
        """Inputs (with the run that wrote each, through lineage), outputs and model versions."""
        inputs = []
        for index, item in enumerate(self.ws.runs.inputs(run_id)):
            digest = item.hash or ""
            producer = None
            if digest and index < 25:
                try:
                    producer = self.producer_of(item.path)
                except WorkbenchError:
                    producer = None
            inputs.append((item.path, digest, producer if producer != run_id else None))
        outputs = [(i.path, i.hash or "") for i in self.ws.runs.outputs(run_id)]
        models = [f"{m.name}:{m.version}" for m in self.ws.runs.run_models(run_id)]
        return Provenance(inputs, outputs, models)

    def producer_of(self, path: str) -> str | None:
        """The run that wrote ``path`` (the first run in its lineage), or None."""
        node = self.ws.runs.lineage(path)
        for child in node.children:
            if child.kind == "run":
                return str(child.details.get("id", child.label))
        return None

    def launch(self, request: RunRequest) -> Launched:
        """Start ``workbench run ... -- COMMAND`` for ``request`` as its own process (argv list, no
        shell) in a new session, so the run neither shares this process's threads nor dies when the
        TUI quits. The job's output goes to the run's log in the store; the ``workbench run``
        process's own stderr (an early error such as "command not found") goes to a file under
        .workbench/tmp. The run carries the tag ``launch=<token>`` so that :meth:`find_launched`
        can find it."""
        import secrets
        import subprocess
        import sys
        from dataclasses import replace

        from workbench.tracking.request import run_argv

        token = secrets.token_hex(6)
        tagged = replace(request, tags=(*request.tags, f"launch={token}"))
        argv = [sys.executable, "-m", "workbench", "run", "-q", *run_argv(tagged)]
        errors = self.ws.paths.tmp / f"launch-{token}.log"
        errors.parent.mkdir(parents=True, exist_ok=True)
        with errors.open("wb") as sink:
            process = subprocess.Popen(argv, cwd=self.ws.root, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)
        return Launched(process, token, errors)

    def find_launched(self, launched: Launched) -> RunRow | None:
        """The launched run once ``workbench run`` has recorded it (newest runs first), else None."""
        for depth in range(4):
            try:
                row = run_row(self.ws.runs.get("latest" if depth == 0 else f"latest~{depth}"))
            except WorkbenchError:
                return None
            if row.tags.get("launch") == launched.token:
                return row
        return None

    # -- sweeps ------------------------------------------------------------------------------------
    def sweep_names(self) -> dict[str, str]:
        """Every sweep's id -> name (``ws.workflows.sweeps()``)."""
        return {s.id: s.name or s.id for s in self.ws.workflows.sweeps()}

    def rank_sweep(self, sweep_id: str, metric: str, order: str) -> list[RankRow]:
        """The sweep's runs that logged ``metric``, best first (``ws.workflows.rank``), with the
        sweep's own params (the swept ones)."""
        _, members = self.ws.workflows.rank(sweep_id, metric, mode="last", order=order)
        return [RankRow(m.run_id, f"#{m.idx}", dict(m.params), m.metric)
                for m in members if m.run_id and m.metric is not None]

    # -- models & deployments -------------------------------------------------------------------------
    def models(self) -> list[ModelRow]:
        """Every version of every model, newest version first within a name."""
        return [model_version_row(v) for model in self.ws.runs.models() for v in model.version_list]

    def set_alias(self, name: str, version: str, alias: str) -> None:
        self.ws.runs.set_alias(name, int(version), alias)

    def deployments(self) -> list[DeploymentRow]:
        """``ws.deployments.list()``: replicas desired and ready (checked live), rollout state."""
        states = self.ws.monitor.states()
        rows = [deployment_row(d) for d in self.ws.deployments.list()]
        for row in rows:
            row.monitor = states.get(row.name, "")
        return rows

    def monitor_reports(self, window: str | None = None) -> list[Report]:
        """``ws.monitor.reports()``: fold new predictions, judge each deployment's latest window."""
        return self.ws.monitor.reports(window)

    def monitor_alerts(self) -> dict[str, str]:
        """Deployments whose last monitoring state is not ``ok`` (cheap: no folding)."""
        return {name: state for name, state in self.ws.monitor.states().items() if state != "ok"}

    def server_ready(self, spec: str) -> bool:
        """Whether the local model server for this model version is built (no first-use wait): the
        server its live deployment runs, else ``[deploy] server``."""
        return self.ws.deployments.server_ready(spec, self.ws.deployments.server_for(spec))

    def prepare_server(self, spec: str, progress: Callable[[int, int], None] | None = None) -> None:
        """Build the local model server for this version (first use: about a minute)."""
        deployments = self.ws.deployments
        deployments.prepare_server(spec, progress=progress, server=deployments.server_for(spec))

    def deploy(self, spec: str) -> DeploymentRow:
        """Serve ``name:version`` with the project's deploy defaults; blocks until it is ready."""
        return deployment_row(self.ws.deployments.deploy(spec))

    def scale(self, name: str, replicas: int) -> DeploymentRow:
        return deployment_row(self.ws.deployments.scale(name, replicas))

    def rollback(self, name: str) -> DeploymentRow:
        return deployment_row(self.ws.deployments.rollback(name))

    def deployment_metrics(self, name: str) -> dict[str, float]:
        """Request rate (1/s), error rate (fraction) and latency p50/p99 (s) since the last scrape;
        a key is missing when it has no value yet (first scrape, no request in the interval)."""
        snap = self.ws.deployments.metrics(name)
        values = {"request_rate": snap.request_rate, "error_rate": snap.error_rate,
                  "latency_p50": snap.latency_p50, "latency_p99": snap.latency_p99}
        return {k: v for k, v in values.items() if v is not None and math.isfinite(v)}

    # -- versioning -----------------------------------------------------------------------------------
    def snapshots(self, include_auto: bool = True, limit: int | None = None) -> list[SnapshotRow]:
        return [snapshot_row(s) for s in self.ws.versions.log(limit=limit, include_auto=include_auto)]

    def history(self, unfold: bool = False, limit: int | None = None) -> tuple[list[SnapshotRow], int]:
        """History's rows and how many are folded away. Folded (the default): the watcher's auto
        snapshots and each run's run-before snapshot (the edits a run started from) are left out, and
        each run's run-after snapshot shows as one ``run`` row whose changes are the run's outputs;
        ``unfold`` lists every snapshot as it is."""
        rows = [snapshot_row(s) for s in self.ws.versions.log(limit=limit, include_auto=True)]
        if unfold:
            return rows, 0
        shown = [fold_run_row(r) for r in rows if r.kind not in FOLDED_KINDS]
        return shown, len(rows) - len(shown)

    def changes(self, snapshot: SnapshotRow) -> list[ChangeRow]:
        """What the snapshot changed compared with its parent (everything, for the first)."""
        if snapshot.parent:
            return [change_row(c) for c in self.ws.versions.diff(snapshot.parent, snapshot.id)]
        files = self.ws.versions.files(snapshot.id)
        return [ChangeRow(path, "added", entry.size, 0) for path, entry in files.items()]

    def compare_snapshots(self, a: str, b: str) -> list[ChangeRow]:
        return [change_row(c) for c in self.ws.versions.diff(a, b)]

    def working_changes(self) -> list[ChangeRow]:
        return [change_row(c) for c in self.ws.versions.status()]

    def file_diff(self, old: str | None, new: str, path: str) -> tuple[str, str]:
        """(kind, text): kind is ``text`` (a unified diff), ``table`` or ``binary`` (a summary),
        from ``ws.versions.file_diff`` (the same as ``workbench diff A B -- PATH``)."""
        kind, text = self.ws.versions.file_diff(old, new, path)
        return kind, text

    def restore_preview(self, ref: str, paths: list[str] | None) -> list[ChangeRow]:
        """Files in the working folder that restoring would overwrite or delete."""
        changes = [change_row(c) for c in self.ws.versions.diff(ref, None)]
        if paths:
            wanted = set(paths)
            changes = [c for c in changes if c.path in wanted]
        return changes

    def restore(self, ref: str, paths: list[str] | None) -> str:
        result = self.ws.versions.restore(ref, paths or None, force=False)
        text = f"restored {len(result.written)} file(s) from {ref[:8]}"
        if result.safety_snapshot:
            text += f"; unsaved work kept in snapshot {result.safety_snapshot[:8]}"
        return text

    def remote_line(self) -> str:
        """``origin: 2 to push, 0 to pull`` against the default remote (local bookkeeping), or ''."""
        summary = self.ws.remote.summary()
        if summary is None:
            return ""
        behind = "?" if summary["behind"] is None else summary["behind"]
        return f"{summary['name']}: {summary['ahead']} to push, {behind} to pull"

    def remote_sync(self, direction: str) -> str:
        """Push to or pull from the default remote; a one-line summary of what moved."""
        if direction == "push":
            pushed = self.ws.remote.push()
            return f"pushed {pushed.objects_sent} objects, {sum(pushed.records.values())} records"
        pulled = self.ws.remote.pull()
        return f"pulled {sum(pulled.added.values())} records, {len(pulled.conflicts)} conflicts"

    def snapshot_now(self, message: str) -> str:
        return self.ws.versions.snapshot(message=message, kind="manual").id

    # -- workflows & GPUs -------------------------------------------------------------------------------
    def stages(self) -> list[StageRow]:
        """The pipeline's stages (``ws.workflows.load()``'s Dag, in declaration order) with each
        one's level, state and why (``ws.workflows.dag_status()``: fresh, stale with reasons,
        running, failed); [] without a ``workbench.yaml``."""
        workflows = self.ws.workflows
        if not workflows.has_pipeline():
            return []
        _, dag = workflows.load()
        status = workflows.dag_status()
        level_of = {name: i for i, level in enumerate(dag.levels()) for name in level}
        rows = []
        for name in dag.order:
            state = status.get(name)
            rows.append(StageRow(name, state.state if state else "?",
                                 "; ".join(state.reasons) if state else "",
                                 list(dag.upstream[name]), level_of.get(name, 0),
                                 state.run_id if state else None))
        return rows

    def gpus(self) -> tuple[list[GpuRow], str]:
        """Per-GPU utilisation and memory (``ws.executors.gpus()``), and the reason when there is none."""
        local = self.ws.executors.gpus()
        rows = [gpu_row(g) for g in local["gpus"]]
        return rows, ("" if rows else str(local.get("reason") or "no GPU"))
