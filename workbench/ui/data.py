"""The TUI's only door to the project: plain view rows built from the Workspace services.

Every method here blocks (it queries the store through ``ws.versions``, ``ws.runs``,
``ws.deployments``, ``ws.workflows`` and the GPU probe) and is therefore only ever called from a
thread worker; screens receive the results as messages. Nothing here talks to SQL or the file
system itself. Service objects are read by attribute name through :func:`pick`, so a renamed
field costs one line here and not a hunt through the screens. A service or method that does not
exist in this build raises :class:`NotAvailable`, which screens show as a notice, not a crash.
The row dataclasses and their converters live in :mod:`workbench.ui.rows` and are re-exported here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.ui.rows import (
    TRAFFIC_KEYS,
    ChangeRow,
    DeploymentRow,
    GpuRow,
    Launched,
    LaunchSpec,
    ModelRow,
    Provenance,
    RankRow,
    RunRow,
    Series,
    SnapshotRow,
    StageRow,
    as_time,
    change_row,
    deployment_row,
    float_or_none,
    gpu_row,
    is_text,
    list_row,
    model_rows,
    model_version_row,
    pick,
    run_row,
    snapshot_row,
)

if TYPE_CHECKING:
    from workbench.core.workspace import Workspace

__all__ = [
    "TRAFFIC_KEYS", "ChangeRow", "DeploymentRow", "GpuRow", "LaunchSpec", "Launched", "ModelRow",
    "NotAvailable", "Provenance", "RankRow", "RunRow", "Series", "SnapshotRow", "StageRow", "UiData",
    "as_time", "change_row", "deployment_row", "gpu_row", "is_text", "list_row", "model_rows", "pick",
    "run_row", "snapshot_row",
]


class NotAvailable(WorkbenchError):
    """A service or operation that this build of Workbench does not provide yet."""


# -- the source -------------------------------------------------------------------------------------
class UiData:
    """Blocking queries and actions for the screens, built on one Workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    @property
    def root(self) -> str:
        return str(self.ws.root)

    def _service(self, name: str) -> Any:
        try:
            return getattr(self.ws, name)
        except (ImportError, AttributeError) as exc:
            raise NotAvailable(f"{name} is not available in this build", str(exc)) from None

    def _method(self, service: str, *names: str) -> Callable[..., Any]:
        svc = self._service(service)
        for name in names:
            method = getattr(svc, name, None)
            if callable(method):
                return method  # type: ignore[no-any-return]
        raise NotAvailable(f"ws.{service}.{names[0]} is not available in this build")

    # -- runs ---------------------------------------------------------------------------------------
    def runs(self, filter_expr: str | None = None, limit: int | None = None,
             archived: bool | None = True) -> list[RunRow]:
        """``archived``: True includes archived runs, False leaves them out, None only them."""
        rows = self.ws.runs.list(filter_expr=filter_expr or None, limit=limit, archived=archived)
        return [list_row(r) for r in rows]

    def change_token(self) -> object:
        """``ws.runs.change_token()``: equal tokens mean the runs views need no new query. A fresh
        object (never equal) where the tracking service has none."""
        try:
            return self._method("runs", "change_token")()
        except NotAvailable:
            return object()

    def filter_rows(self, rows: list[RunRow], filter_expr: str) -> list[RunRow]:
        """Apply a ``--filter`` expression to rows already loaded (the tracking package's own
        parser and matcher, so the TUI and the CLI agree), without another query."""
        if not filter_expr.strip():
            return rows
        try:
            from workbench.tracking import filters
        except ImportError:
            raise NotAvailable("run filters are not available in this build") from None
        node = filters.parse(filter_expr)
        return [r for r in rows if r.raw is not None and filters.matches(node, r.raw)]

    def run(self, ref: str) -> RunRow:
        row = run_row(self._method("runs", "get")(ref))
        if not row.params:
            try:
                row.params = dict(self._method("runs", "params")(row.id))
            except NotAvailable:
                pass
        return row

    def metric_keys(self, run_id: str) -> list[str]:
        return list(self._method("runs", "metric_keys")(run_id))

    def metric_series(self, run_id: str, key: str, max_points: int | None = 2000) -> Series:
        raw = self._method("runs", "metric_series")(run_id, key, max_points=max_points)
        steps = list(pick(raw, "steps", default=[]))
        values = [float(v) if v is not None else math.nan for v in pick(raw, "values", default=[])]
        times = list(pick(raw, "times", "timestamps", default=[]))
        if not steps:
            steps = list(range(len(values)))
        return Series(key, [float(s) for s in steps], values, [float(t) for t in times])

    def log_lines(self, run_id: str, *, follow: bool, since: int = 0,
                  stop: threading.Event | None = None, poll: float = 0.25) -> Iterator[str]:
        """Stored output lines; with ``follow``, keep polling until the run ends or ``stop`` is set.

        Following is done here (one non-blocking read per poll) so that ``stop`` always ends it
        within one poll interval, even while the run prints nothing.
        """
        read = self._method("runs", "log_lines")
        seq = since
        while True:
            got = False
            for line in read(run_id, follow=False, since=seq):
                got = True
                seq = int(pick(line, "seq", default=seq + 1))
                text = pick(line, "text", "line", default=line)
                yield text if isinstance(text, str) else str(text)
                if stop is not None and stop.is_set():
                    return
            if not follow or (stop is not None and stop.is_set()):
                return
            if not got:
                if self.run(run_id).status != "running":
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
        for index, item in enumerate(self._method("runs", "inputs")(run_id)):
            path, digest = str(pick(item, "path")), str(pick(item, "hash", default="") or "")
            producer = None
            if digest and index < 25:
                try:
                    producer = self.producer_of(path)
                except WorkbenchError:
                    producer = None
            inputs.append((path, digest, producer if producer != run_id else None))
        outputs = [(str(pick(i, "path")), str(pick(i, "hash", default="") or ""))
                   for i in self._method("runs", "outputs")(run_id)]
        models = []
        try:
            for model in self.models():
                if model.run_id == run_id:
                    models.append(f"{model.name}:{model.version}")
        except NotAvailable:
            pass
        return Provenance(inputs, outputs, models)

    def producer_of(self, path: str) -> str | None:
        """The run that wrote ``path`` (the first run in its lineage), or None."""
        node = self._method("runs", "lineage")(path)
        for child in pick(node, "children", default=[]):
            if pick(child, "kind") == "run":
                return str(pick(pick(child, "details", default={}), "id", default=pick(child, "label")))
        return None

    def launch(self, spec: LaunchSpec) -> Launched:
        """Start ``workbench run ... -- COMMAND`` as its own process (argv list, no shell) in a new
        session, so the run neither shares this process's threads nor dies when the TUI quits.
        The job's output goes to the run's log in the store; the ``workbench run`` process's own
        stderr (an early error such as "command not found") goes to a file under .workbench/tmp.
        The run carries the tag ``launch=<token>`` so that :meth:`find_launched` can find it."""
        import secrets
        import subprocess
        import sys

        token = secrets.token_hex(6)
        argv = [sys.executable, "-m", "workbench", "run", "-q", "--tag", f"launch={token}"]
        for flag, value in (("--name", spec.name), ("--executor", spec.executor), ("--image", spec.image),
                            ("--namespace", spec.namespace), ("--gpus", spec.gpus)):
            if value:
                argv += [flag, str(value)]
        argv += ["--isolated"] if spec.isolated else []
        argv += ["--", *spec.command]
        errors = self.ws.paths.tmp / f"launch-{token}.log"
        errors.parent.mkdir(parents=True, exist_ok=True)
        with errors.open("wb") as sink:
            process = subprocess.Popen(argv, cwd=self.ws.root, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)
        return Launched(process, token, errors)

    def find_launched(self, launched: Launched) -> RunRow | None:
        """The launched run once ``workbench run`` has recorded it (newest runs first), else None."""
        get = self._method("runs", "get")
        for depth in range(4):
            try:
                row = run_row(get("latest" if depth == 0 else f"latest~{depth}"))
            except WorkbenchError:
                return None
            if row.tags.get("launch") == launched.token:
                return row
        return None

    # -- sweeps ------------------------------------------------------------------------------------
    def sweep_names(self) -> dict[str, str]:
        """Every sweep's id -> name (``ws.workflows.sweeps()``); {} when workflows are absent."""
        try:
            sweeps = self._method("workflows", "sweeps")()
        except NotAvailable:
            return {}
        return {str(s.id): str(s.name or s.id) for s in sweeps}

    def rank_sweep(self, sweep_id: str, metric: str, order: str) -> list[RankRow]:
        """The sweep's runs that logged ``metric``, best first (``ws.workflows.rank``), with the
        sweep's own params (the swept ones)."""
        _, members = self._method("workflows", "rank")(sweep_id, metric, mode="last", order=order)
        return [RankRow(str(m.run_id), f"#{m.idx}", dict(m.params), float(m.metric))
                for m in members if m.run_id and m.metric is not None]

    # -- models & deployments -------------------------------------------------------------------------
    def models(self) -> list[ModelRow]:
        """Every version of every model, newest version first within a name."""
        rows: list[ModelRow] = []
        version_of = None
        for entry in self._method("runs", "models")():
            versions = pick(entry, "versions")
            listed = pick(entry, "version_list")
            if listed is not None:  # every version with its aliases, in the one call
                rows.extend(model_version_row(v, str(pick(entry, "name"))) for v in listed)
            elif isinstance(versions, int):  # a summary: fetch each version
                version_of = version_of or self._method("runs", "model_version")
                name = str(pick(entry, "name"))
                latest = int(pick(entry, "latest_version", default=versions))
                for number in range(latest, 0, -1):
                    try:
                        rows.append(model_version_row(version_of(f"{name}:{number}"), name))
                    except WorkbenchError:
                        continue
            else:
                rows.extend(model_rows(entry))
        return rows

    def set_alias(self, name: str, version: str, alias: str) -> None:
        self._method("runs", "set_alias")(name, int(version) if version.isdigit() else version, alias)

    def deployments(self) -> list[DeploymentRow]:
        """``ws.deployments.list()``: replicas desired and ready (checked live), rollout state."""
        return [deployment_row(d) for d in self._method("deployments", "list")()]

    def server_ready(self, spec: str) -> bool:
        """Whether the local model server for this model version is built (no first-use wait)."""
        return bool(self._method("deployments", "server_ready")(spec))

    def prepare_server(self, spec: str, progress: Callable[[int, int], None] | None = None) -> None:
        """Build the local model server for this version (first use: about a minute)."""
        self._method("deployments", "prepare_server")(spec, progress=progress)

    def deploy(self, spec: str) -> DeploymentRow:
        """Serve ``name:version`` with the project's deploy defaults; blocks until it is ready."""
        return deployment_row(self._method("deployments", "deploy")(spec))

    def scale(self, name: str, replicas: int) -> DeploymentRow:
        return deployment_row(self._method("deployments", "scale")(name, replicas))

    def rollback(self, name: str) -> DeploymentRow:
        return deployment_row(self._method("deployments", "rollback")(name))

    def deployment_metrics(self, name: str) -> dict[str, float]:
        """Request rate (1/s), error rate (fraction) and latency p50/p99 (s) since the last scrape;
        a key is missing when it has no value yet (first scrape, no request in the interval)."""
        raw = self._method("deployments", "metrics")(name)
        out: dict[str, float] = {}
        for key in TRAFFIC_KEYS:
            value = float_or_none(pick(raw, key))
            if value is not None and math.isfinite(value):
                out[key] = value
        return out

    # -- versioning -----------------------------------------------------------------------------------
    def snapshots(self, include_auto: bool = True, limit: int | None = None) -> list[SnapshotRow]:
        rows = self._method("versions", "log")(limit=limit, include_auto=include_auto)
        return [snapshot_row(s) for s in rows]

    def changes(self, snapshot: SnapshotRow) -> list[ChangeRow]:
        """What the snapshot changed compared with its parent (everything, for the first)."""
        if snapshot.parent:
            raw = self._method("versions", "diff")(snapshot.parent, snapshot.id)
            return [change_row(c) for c in raw]
        files = self._method("versions", "files")(snapshot.id)
        return [ChangeRow(path, "added", int(pick(e, "size", default=0)), 0) for path, e in files.items()]

    def compare_snapshots(self, a: str, b: str) -> list[ChangeRow]:
        return [change_row(c) for c in self._method("versions", "diff")(a, b)]

    def working_changes(self) -> list[ChangeRow]:
        return [change_row(c) for c in self._method("versions", "status")()]

    def file_diff(self, old: str | None, new: str, path: str) -> tuple[str, str]:
        """(kind, text): kind is ``text`` (a unified diff), ``table`` or ``binary`` (a summary)."""
        read = self._method("versions", "read_file")
        new_bytes = _read_or_empty(read, new, path)
        old_bytes = _read_or_empty(read, old, path) if old else b""
        if path.lower().endswith((".csv", ".tsv")) and max(len(new_bytes), len(old_bytes)) < 64 << 20:
            return "table", _table_summary(old_bytes, new_bytes, path)
        if is_text(new_bytes) and is_text(old_bytes):
            if old:
                return "text", str(self._method("versions", "unified_diff")(old, new, path))
            import difflib

            lines = new_bytes.decode("utf-8", "replace").splitlines(keepends=True)
            return "text", "".join(difflib.unified_diff([], lines, "/dev/null", f"b/{path}"))
        files = self._method("versions", "files")
        old_hash = str(pick(files(old).get(path), "hash", default="-")) if old else "-"
        new_hash = str(pick(files(new).get(path), "hash", default="-"))
        return "binary", (f"binary file {path}\nsize {len(old_bytes):,} -> {len(new_bytes):,} bytes "
                          f"({len(new_bytes) - len(old_bytes):+,})\nhash {old_hash[:16]} -> {new_hash[:16]}")

    def restore_preview(self, ref: str, paths: list[str] | None) -> list[ChangeRow]:
        """Files in the working folder that restoring would overwrite or delete."""
        changes = [change_row(c) for c in self._method("versions", "diff")(ref, None)]
        if paths:
            wanted = set(paths)
            changes = [c for c in changes if c.path in wanted]
        return changes

    def restore(self, ref: str, paths: list[str] | None) -> str:
        result = self._method("versions", "restore")(ref, paths or None, force=False)
        restored = pick(result, "restored", "written", "files", default=None)
        safety = pick(result, "safety_snapshot", "safety")
        count = len(restored) if isinstance(restored, list | tuple | set) else restored
        text = f"restored {count if count is not None else ''} file(s) from {ref[:8]}".replace("  ", " ")
        if safety:
            text += f"; unsaved work kept in snapshot {str(pick(safety, 'id', default=safety))[:8]}"
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
        info = self._method("versions", "snapshot")(message=message, kind="manual")
        return str(pick(info, "id"))

    # -- workflows & GPUs -------------------------------------------------------------------------------
    def stages(self) -> list[StageRow]:
        """The pipeline's stages (``ws.workflows.dag()``) with each one's state and why
        (``ws.workflows.dag_status()``: fresh, stale with reasons, running, failed); [] without a
        ``workbench.yaml``."""
        workflows = self._service("workflows")
        if not workflows.has_pipeline():
            return []
        status = workflows.dag_status()
        rows = []
        for item in workflows.dag()["stages"]:
            name = str(item["name"])
            state = status.get(name)
            rows.append(StageRow(name, str(pick(state, "state", default="?")),
                                 "; ".join(str(r) for r in pick(state, "reasons", default=[])),
                                 [str(u) for u in item.get("upstream", [])], int(item.get("level", 0)),
                                 pick(state, "run_id")))
        return rows

    def gpus(self) -> tuple[list[GpuRow], str]:
        """Per-GPU utilisation and memory, and the reason when there is none."""
        try:
            from workbench.executors import gpus as probe
        except ImportError:
            return [], "no GPU probe in this build"
        facts = {f["index"]: f for f in probe.gpu_facts()}
        rows = []
        for sample in probe.sample_gpus():
            merged = {**facts.get(sample["index"], {}), **sample}
            rows.append(gpu_row(merged, int(sample["index"])))
        return rows, ("" if rows else (probe.no_gpu_reason() or "no GPU"))


def _read_or_empty(read: Callable[..., bytes], ref: str | None, path: str) -> bytes:
    try:
        return bytes(read(ref, path))
    except WorkbenchError:
        return b""


def _table_summary(old: bytes, new: bytes, path: str) -> str:
    def shape(data: bytes) -> tuple[int, int]:
        text = data.decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if line.strip()]
        sep = "\t" if path.lower().endswith(".tsv") else ","
        cols = len(lines[0].split(sep)) if lines else 0
        return max(0, len(lines) - 1), cols

    (r0, c0), (r1, c1) = shape(old), shape(new)
    return (f"{path}\nrows    {r0:>10,} -> {r1:,} ({r1 - r0:+,})\n"
            f"columns {c0:>10,} -> {c1:,} ({c1 - c0:+,})\nsize    {len(old):>10,} -> {len(new):,} bytes")

