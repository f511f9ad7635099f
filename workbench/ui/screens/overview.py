"""Screen 1, Overview: the project at a glance, refreshed live.

Project path, the watcher's state, pending changes, recent snapshots, running and recent runs,
the GPU strip and deployments when there are any, with their monitoring state; a banner names the
deployments whose monitoring state is not ok (7 opens Monitor). Enter on a run opens it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from workbench import format as fmt
from workbench.errors import WorkbenchError
from workbench.ui.data import DeploymentRow, GpuRow, RunRow, SnapshotRow
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.widgets.gpu_strip import GpuStrip

T = TypeVar("T")
D = TypeVar("D")


@dataclass
class OverviewData:
    runs: list[RunRow]
    snapshots: list[SnapshotRow]
    pending: int | None
    deployments: list[DeploymentRow]
    gpus: list[GpuRow]
    gpu_reason: str
    notes: list[str]
    remote: str = ""
    alerts: dict[str, str] | None = None


class OverviewScreen(WorkbenchScreen):
    TITLE_TEXT = "Overview"
    RELOAD_SECONDS = 2.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_run", "Open run"),
        Binding("j", "move(1)", "Down", show=False),
        Binding("k", "move(-1)", "Up", show=False),
        Binding("n", "app.launch", "New run"),
        Binding("S", "app.snapshot", "Snapshot"),
        Binding("P", "sync('push')", "Push", show=False),
        Binding("L", "sync('pull')", "Pull", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield Static("", id="project-line")
        yield Static("", id="alert-banner")
        yield GpuStrip("", id="gpu-strip")
        with Horizontal(id="overview-body"):
            with Vertical(id="overview-runs", classes="panel"):
                yield Static("Runs", classes="panel-title")
                yield DataTable(id="recent-runs", cursor_type="row", zebra_stripes=False)
            with Vertical(id="overview-side"):
                with Vertical(id="overview-snapshots", classes="panel"):
                    yield Static("Snapshots", classes="panel-title")
                    yield DataTable(id="recent-snapshots", cursor_type="row")
                with Vertical(id="overview-deployments", classes="panel"):
                    yield Static("Deployments", classes="panel-title")
                    yield DataTable(id="recent-deployments", cursor_type="row")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#recent-runs", DataTable).add_columns("", "name", "id", "started", "time", "metric")
        self.query_one("#recent-snapshots", DataTable).add_columns("id", "kind", "when", "message")
        self.query_one("#recent-deployments", DataTable).add_columns("name", "model", "ready", "state",
                                                                     "monitor")
        self.query_one("#overview-deployments").display = False
        self.watch(self.wb, "watcher_state", self._show_project_line)

    _runs_cache: tuple[object, list[RunRow]] | None = None
    """(change token, runs) of the last poll: the runs are listed again only when the token moves."""

    def reload(self, quiet: bool = False) -> None:
        self.load(self._fetch, self._show)

    def _fetch(self) -> OverviewData:
        data = self.data
        notes: list[str] = []

        def attempt(fn: Callable[[], T], default: D) -> T | D:
            try:
                return fn()
            except WorkbenchError as exc:
                notes.append(exc.one_line())
                return default

        token = attempt(data.change_token, None)
        cached = self._runs_cache
        if cached is not None and token is not None and cached[0] == token and \
                not any(r.status == "running" for r in cached[1]):
            runs = list(cached[1])  # nothing changed in the runs since the last poll
        else:
            runs = attempt(lambda: data.runs(limit=200), [])
            runs.sort(key=lambda r: (r.status != "running", -(r.started or 0)))
            self._runs_cache = (token, runs)
        snapshots = attempt(lambda: data.snapshots(limit=12), [])
        pending = attempt(lambda: len(data.working_changes()), None)
        deployments = attempt(data.deployments, [])
        gpus, reason = data.gpus() if self.wb.gpu_probe else ([], "GPU probe off")
        remote = attempt(data.remote_line, "")
        alerts = attempt(data.monitor_alerts, {})
        return OverviewData(runs[:30], snapshots, pending, deployments, gpus, reason, notes, remote, alerts)

    def _show_project_line(self, _: object = None) -> None:
        state = self.wb.watcher_state
        pending = getattr(self, "_pending", None)
        last = self.wb.last_snapshot
        home = str(Path.home())
        root = self.data.root
        root = "~" + root[len(home):] if root.startswith(home + "/") else root
        parts = [f"[b]{escape(root)}[/b]", f"watcher: [b]{escape(state)}[/b]"]
        if last:
            parts.append(f"last auto snapshot {last[:8]}")
        if pending is not None:
            parts.append(f"{pending} pending change{'s' if pending != 1 else ''}")
        remote = getattr(self, "_remote", "")
        if remote:
            parts.append(f"remote {escape(remote)}")
        self.query_one("#project-line", Static).update("  ·  ".join(parts))

    def _show(self, value: OverviewData) -> None:
        self._pending = value.pending
        self._remote = value.remote
        self._show_project_line()
        self.query_one(GpuStrip).show(value.gpus, value.gpu_reason)
        runs = self.query_one("#recent-runs", DataTable)
        keep = runs.cursor_row
        runs.clear()
        for run in value.runs:
            metric = next(iter(sorted(run.metrics.items())), None)
            runs.add_row(
                {"running": "▶", "succeeded": "✓", "failed": "✗"}.get(run.status, "■"),
                run.name[:20], run.short_id, fmt.short_time(run.started), fmt.duration(run.duration),
                f"{metric[0]}={metric[1]:.4g}" if metric else "", key=run.id,
            )
        if value.runs:
            runs.move_cursor(row=min(keep, len(value.runs) - 1))
        snaps = self.query_one("#recent-snapshots", DataTable)
        snaps.clear()
        now = self.wb.clock()
        for snap in value.snapshots:
            snaps.add_row(snap.id[:8], snap.kind, fmt.age(snap.created, now), snap.message[:30], key=snap.id)
        deps = self.query_one("#recent-deployments", DataTable)
        deps.clear()
        for dep in value.deployments:
            deps.add_row(dep.name, f"{dep.model}:{dep.version}", f"{dep.ready}/{dep.desired}", dep.state,
                         dep.monitor or "-")
        self.query_one("#overview-deployments").display = bool(value.deployments)
        banner = self.query_one("#alert-banner", Static)
        alerts = value.alerts or {}
        banner.set_class(bool(alerts), "shown")
        banner.update("⚠ " + ", ".join(f"{name} {state}" for name, state in sorted(alerts.items()))
                      + "  ·  7: Monitor" if alerts else "")
        if value.notes and not getattr(self, "_noted", False):
            self._noted = True
            self.notify("\n".join(value.notes[:3]), title="Some data is not available", severity="warning")

    def action_sync(self, direction: str) -> None:
        """Push to or pull from the default remote in a thread; errors go to the app's one handler."""
        self.notify(f"{direction} to the default remote…" if direction == "push" else
                    "pull from the default remote…", title="Remote", timeout=3)

        def job() -> None:
            done = self.data.remote_sync(direction)
            self.app.call_from_thread(self.notify, done, title="Remote")
            self.app.call_from_thread(self.reload)

        self.app.run_worker(job, thread=True, exit_on_error=False, group="remote", exclusive=True)

    def action_move(self, delta: int) -> None:
        focused = self.focused
        table = focused if isinstance(focused, DataTable) else self.query_one("#recent-runs", DataTable)
        table.move_cursor(row=table.cursor_row + delta)

    def action_open_run(self) -> None:
        table = self.query_one("#recent-runs", DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if key:
                self.wb.open_run(str(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "recent-runs" and event.row_key.value:
            self.wb.open_run(str(event.row_key.value))
