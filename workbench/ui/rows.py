"""The TUI's view rows: plain dataclasses the screens draw, and the converters that build them.

Service objects (run infos, snapshots, model versions, deployments, GPU samples) are read by
attribute or mapping key through :func:`pick`, so a renamed field costs one line here and not a
hunt through the screens. Nothing here queries the store; :class:`~workbench.ui.data.UiData`
calls the services and hands their results to these converters. Every name is re-exported by
:mod:`workbench.ui.data`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


def pick(obj: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` that ``obj`` has, as an attribute or a mapping key."""
    for name in names:
        if isinstance(obj, dict):
            if name in obj and obj[name] is not None:
                return obj[name]
        else:
            value = getattr(obj, name, None)
            if value is not None:
                return value
    return default


def as_time(value: Any) -> float | None:
    """Unix seconds from a float, an int, an ISO string or a datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        from datetime import datetime

        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


# -- view rows --------------------------------------------------------------------------------------
@dataclass
class RunRow:
    """One run as the tables show it."""

    id: str
    name: str
    status: str
    started: float | None
    ended: float | None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_counts: dict[str, int] = field(default_factory=dict)
    command: str = ""
    exit_code: int | None = None
    executor: str = "local"
    sweep_id: str | None = None
    snapshot_before: str | None = None
    snapshot_after: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    gpus: list[Any] = field(default_factory=list)
    raw: Any = field(default=None, repr=False, compare=False)
    """The service's own run object (filters are evaluated on it)."""
    group: str | None = None
    """Set on the synthetic header row of a sweep group (the sweep id); None on real runs."""
    members: list[str] = field(default_factory=list, compare=False)
    """A group header's run ids, in the order shown."""
    cells: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Formatted table cells by column key, filled as they are drawn (the runs table's cache)."""

    @property
    def short_id(self) -> str:
        return self.id if len(self.id) <= 12 else self.id[:10]

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else (time.time() if self.status == "running" else None)
        return None if end is None else max(0.0, end - self.started)


@dataclass
class Series:
    key: str
    steps: list[float]
    values: list[float]
    times: list[float]


@dataclass
class SnapshotRow:
    id: str
    created: float | None
    kind: str
    message: str
    files: int
    bytes: int
    new_bytes: int
    parent: str | None


@dataclass
class ChangeRow:
    path: str
    change: str
    size: int
    old_size: int


@dataclass
class ModelRow:
    name: str
    version: str
    run_id: str | None
    aliases: list[str]
    framework: str
    path: str
    hash: str


@dataclass
class DeploymentRow:
    name: str
    model: str
    version: str
    target: str
    desired: int
    ready: int
    state: str
    url: str
    message: str = ""
    revision: int = 0
    run_id: str | None = None
    pending: bool = False
    """Not in the store yet: the TUI is still building the model server for it."""


TRAFFIC_KEYS = ("request_rate", "error_rate", "latency_p50", "latency_p99")
"""What the Deployments screen charts, from ``ws.deployments.metrics(name)`` (MetricsSnapshot)."""


@dataclass
class GpuRow:
    index: int
    name: str
    utilisation: float | None
    memory_used: int | None
    memory_total: int | None


@dataclass
class StageRow:
    name: str
    state: str
    reason: str
    deps: list[str]
    level: int = 0
    run_id: str | None = None


@dataclass
class RankRow:
    """One run ranked by a metric, with the params to draw across the parallel axes."""

    run_id: str
    name: str
    params: dict[str, Any]
    value: float


@dataclass
class LaunchSpec:
    """What the launch dialog asks for: the flags of ``workbench run``."""

    command: list[str]
    name: str | None = None
    executor: str | None = None
    image: str | None = None
    namespace: str | None = None
    gpus: str | None = None
    """A count, or ``all``."""
    isolated: bool = False
    """``run --isolated``: its own checkout of the input snapshot, outputs copied back."""


@dataclass
class Launched:
    """A ``workbench run`` process started by the TUI."""

    process: Any = field(repr=False)
    """The ``subprocess.Popen`` of ``workbench run``."""
    token: str
    errors: Any
    """Path of the file that gets the process's stderr."""

    def error_text(self) -> str:
        try:
            lines = self.errors.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""


@dataclass
class Provenance:
    inputs: list[tuple[str, str, str | None]]
    """(path, content hash, run id that wrote it or None)."""
    outputs: list[tuple[str, str]]
    models: list[str]


# -- converters -------------------------------------------------------------------------------------
def float_or_none(value: Any) -> float | None:
    """``float(value)``, or None where it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def list_row(obj: Any) -> RunRow:
    """A run of a listing as the runs table needs it: direct attribute reads (10,000 runs in a few
    tens of ms); the command, environment and GPUs, which only the run detail shows, are left out."""
    if type(obj).__name__ != "RunInfo":
        return run_row(obj)
    metrics: dict[str, float] = {}
    counts: dict[str, int] = {}
    for key, summary in obj.metrics.items():
        if summary.last is not None:
            metrics[key] = summary.last
            counts[key] = summary.count
    return RunRow(obj.id, obj.name or "", obj.status, obj.started_at, obj.ended_at, obj.params, metrics,
                  counts, "", obj.exit_code, obj.executor or "local", obj.sweep_id, obj.snapshot_before,
                  obj.snapshot_after, raw=obj)


def run_row(obj: Any) -> RunRow:
    metrics_raw = pick(obj, "metrics", "summary", "last_metrics", default={}) or {}
    metrics: dict[str, float] = {}
    counts: dict[str, int] = {}
    for key, value in dict(metrics_raw).items():
        number = float_or_none(pick(value, "last", "value", default=value))
        if number is not None:
            metrics[key] = number
            counts[key] = int(pick(value, "count", default=1))
    command = pick(obj, "command", default="")
    if isinstance(command, list | tuple):
        import shlex

        command = shlex.join(str(c) for c in command)
    return RunRow(
        id=str(pick(obj, "id", "run_id", default="?")),
        name=str(pick(obj, "name", default="")),
        status=str(pick(obj, "status", default="unknown")),
        started=as_time(pick(obj, "started_at", "started", "start_time")),
        ended=as_time(pick(obj, "ended_at", "ended", "end_time", "finished_at")),
        params=dict(pick(obj, "params", default={}) or {}),
        metrics=metrics,
        metric_counts=counts,
        command=str(command),
        exit_code=pick(obj, "exit_code", "returncode"),
        executor=str(pick(obj, "executor", default="local")),
        sweep_id=pick(obj, "sweep_id", "sweep"),
        snapshot_before=pick(obj, "snapshot_before", "input_snapshot", "before_snapshot"),
        snapshot_after=pick(obj, "snapshot_after", "output_snapshot", "after_snapshot"),
        tags=dict(pick(obj, "tags", default={}) or {}),
        environment=dict(pick(obj, "environment", "env", default={}) or {}),
        gpus=list(pick(obj, "gpus", default=[]) or []),
        raw=obj,
    )


def snapshot_row(obj: Any) -> SnapshotRow:
    return SnapshotRow(
        id=str(pick(obj, "id")),
        created=as_time(pick(obj, "created_at", "created", "time")),
        kind=str(pick(obj, "kind", default="manual")),
        message=str(pick(obj, "message", default="")),
        files=int(pick(obj, "files", "file_count", default=0)),
        bytes=int(pick(obj, "bytes", "size", default=0)),
        new_bytes=int(pick(obj, "new_bytes", default=0)),
        parent=pick(obj, "parent"),
    )


def change_row(obj: Any) -> ChangeRow:
    return ChangeRow(
        path=str(pick(obj, "path")), change=str(pick(obj, "change", "kind", default="modified")),
        size=int(pick(obj, "size", default=0) or 0), old_size=int(pick(obj, "old_size", default=0) or 0),
    )


def model_rows(obj: Any) -> list[ModelRow]:
    """A registry entry may carry its versions, or be one version itself."""
    versions = pick(obj, "versions")
    if versions:
        return [model_rows(v)[0] if pick(v, "name") else model_version_row(v, str(pick(obj, "name")))
                for v in versions]
    return [model_version_row(obj, str(pick(obj, "name", default="?")))]


def model_version_row(obj: Any, name: str) -> ModelRow:
    """One model version as a row; ``name`` is used where the version does not carry its own."""
    aliases = pick(obj, "aliases", default=[]) or []
    return ModelRow(
        name=str(pick(obj, "name", default=name)), version=str(pick(obj, "version", default="?")),
        run_id=pick(obj, "run_id", "run"), aliases=[str(a) for a in aliases],
        framework=str(pick(obj, "framework", default="")), path=str(pick(obj, "path", default="")),
        hash=str(pick(obj, "hash", default="")),
    )


def deployment_row(obj: Any) -> DeploymentRow:
    return DeploymentRow(
        name=str(pick(obj, "name")),
        model=str(pick(obj, "model", "model_name", default="")),
        version=str(pick(obj, "version", "model_version", default="")),
        target=str(pick(obj, "target", default="local")),
        desired=int(pick(obj, "replicas", "desired_replicas", "desired", default=0) or 0),
        ready=int(pick(obj, "ready_replicas", "ready", default=0) or 0),
        state=str(pick(obj, "state", "rollout_state", "status", default="unknown")),
        url=str(pick(obj, "url", "endpoint", default="")),
        message=str(pick(obj, "message", "reason", default="")),
        revision=int(pick(obj, "revision", default=0) or 0),
        run_id=pick(obj, "run_id"),
    )


def gpu_row(obj: Any, index: int) -> GpuRow:
    return GpuRow(
        index=int(pick(obj, "index", default=index)), name=str(pick(obj, "name", "model", default="GPU")),
        utilisation=float_or_none(pick(obj, "utilization", "utilisation", "util", "gpu_util")),
        memory_used=pick(obj, "memory_used", "mem_used"),
        memory_total=pick(obj, "memory_total", "mem_total", "memory"),
    )


def is_text(data: bytes) -> bool:
    return b"\0" not in data[:8192]
