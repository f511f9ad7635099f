"""The TUI's view rows: plain dataclasses the screens draw, and the converters that build them.

Each converter takes the service's own result type (``RunInfo``, ``SnapshotInfo``, ``Change``,
``ModelVersion``, ``DeploymentInfo``, ``StageStatus``...) and reads its attributes directly, so
mypy (strict on ``workbench.ui.*``) fails when a core field is renamed, instead of the screen
showing "?". Nothing here queries the store; :class:`~workbench.ui.data.UiData` calls the services
and hands their results to these converters. Every name is re-exported by :mod:`workbench.ui.data`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path
    from subprocess import Popen

    from workbench.deploy.types import DeploymentInfo
    from workbench.tracking.records import RunInfo
    from workbench.tracking.registry import ModelVersion
    from workbench.versioning.models import Change, SnapshotInfo


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
    raw: RunInfo | None = field(default=None, repr=False, compare=False)
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
    monitor: str = ""
    """The last monitoring state (ok, warning, drifting, degraded), '' when never monitored."""


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
class Launched:
    """A ``workbench run`` process started by the TUI."""

    process: Popen[bytes] = field(repr=False)
    """The ``subprocess.Popen`` of ``workbench run``."""
    token: str
    errors: Path
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
def list_row(info: RunInfo) -> RunRow:
    """A run of a listing as the runs table needs it: direct attribute reads (10,000 runs in a few
    tens of ms); the command, tags, environment and GPUs, which only the run detail shows, are left out."""
    metrics, counts = info.last_values()
    return RunRow(info.id, info.name or "", info.status, info.started_at, info.ended_at, info.params, metrics,
                  counts, "", info.exit_code, info.executor or "local", info.sweep_id, info.snapshot_before,
                  info.snapshot_after, raw=info)


def run_row(info: RunInfo) -> RunRow:
    """One run with everything the run detail shows (``ws.runs.get``)."""
    import shlex

    row = list_row(info)
    row.params = dict(info.params)
    row.command = shlex.join(str(c) for c in info.command)
    row.tags = dict(info.tags)
    row.environment = dict(info.environment)
    row.gpus = list(info.gpus)
    return row


def snapshot_row(info: SnapshotInfo) -> SnapshotRow:
    return SnapshotRow(id=info.id, created=info.created_at, kind=info.kind, message=info.message,
                       files=info.files, bytes=info.bytes, new_bytes=info.new_bytes, parent=info.parent)


FOLDED_KINDS = frozenset({"auto", "run-before"})
"""Snapshots History folds away by default: the watcher's, and the state each run started from."""


def fold_run_row(row: SnapshotRow) -> SnapshotRow:
    """A run-after snapshot as History's one row for its run (its changes: the run's outputs)."""
    if row.kind != "run-after":
        return row
    message = row.message.removeprefix("after run ")
    return replace(row, kind="run", message=f"run {message}")


def change_row(change: Change) -> ChangeRow:
    return ChangeRow(path=change.path, change=change.change, size=change.size, old_size=change.old_size)


def model_version_row(version: ModelVersion) -> ModelRow:
    return ModelRow(name=version.name, version=str(version.version), run_id=version.run_id,
                    aliases=list(version.aliases), framework=version.framework, path=version.path,
                    hash=version.hash)


def deployment_row(info: DeploymentInfo) -> DeploymentRow:
    return DeploymentRow(name=info.name, model=info.model, version=info.version, target=info.target,
                         desired=info.replicas, ready=info.ready, state=info.state, url=info.endpoint,
                         message=info.message, revision=info.revision, run_id=info.run_id)


def gpu_row(gpu: Mapping[str, Any]) -> GpuRow:
    """One GPU of ``ws.executors.gpus()["gpus"]`` (facts merged with the current sample: index,
    model, utilisation in percent, memory_used and memory_total in bytes)."""
    used, total, util = gpu.get("memory_used"), gpu.get("memory_total"), gpu.get("utilisation")
    return GpuRow(index=int(gpu["index"]), name=str(gpu.get("model") or "GPU"),
                  utilisation=None if util is None else float(util),
                  memory_used=None if used is None else int(used),
                  memory_total=None if total is None else int(total))
