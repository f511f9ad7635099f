"""Screen 5, Deployments: live rollout state, scale with ``+``/``-``, roll back with ``r``.

The chart below the table shows the selected deployment's request rate, error rate and latency,
sampled from the deploy service every refresh.
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from workbench.errors import WorkbenchError
from workbench.ui.data import DeploymentRow, Series
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.screens.dialogs import ConfirmDialog
from workbench.ui.widgets.metric_chart import Curve, MetricChart

HISTORY = 120


class DeploymentsScreen(WorkbenchScreen):
    TITLE_TEXT = "Deployments"
    RELOAD_SECONDS = 2.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "scale(1)", "Scale +1"),
        Binding("minus", "scale(-1)", "Scale -1"),
        Binding("r", "rollback", "Rollback"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[DeploymentRow] = []
        self.samples: dict[str, list[tuple[float, dict[str, float]]]] = {}

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield DataTable(id="deployments-table", cursor_type="row")
        yield Static("", id="deployments-status", classes="status-line")
        yield MetricChart(id="traffic-chart")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("name", "model", "target", "ready", "state", "endpoint")
        self.query_one(DataTable).focus()
        super().on_mount()

    def reload(self, quiet: bool = False) -> None:
        def fetch() -> tuple[list[DeploymentRow], dict[str, dict[str, float]]]:
            rows = self.data.deployments()
            traffic: dict[str, dict[str, float]] = {}
            for row in rows:
                try:
                    traffic[row.name] = self.data.deployment_metrics(row.name)
                except WorkbenchError:
                    continue
            return rows, traffic

        self.query_data("deployments", fetch)

    def on_loaded_deployments(self, value: tuple[list[DeploymentRow], dict[str, dict[str, float]]]) -> None:
        rows, traffic = value
        now = time.time()
        for name, sample in traffic.items():
            self.samples.setdefault(name, []).append((now, sample))
            del self.samples[name][:-HISTORY]
        self.rows = rows
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for row in rows:
            table.add_row(row.name, f"{row.model}:{row.version}", row.target, f"{row.ready}/{row.desired}",
                          row.state + (f" ({row.message})" if row.message else ""), row.url, key=row.name)
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        status = f"{len(rows)} deployments" if rows else "No deployments yet: press d on a model (4)"
        self.query_one("#deployments-status", Static).update(status)
        self._chart()

    def _chart(self) -> None:
        current = self.current
        chart = self.query_one(MetricChart)
        if current is None or not self.samples.get(current.name):
            chart.show([], title="traffic")
            return
        points = self.samples[current.name]
        start = points[0][0]
        curves = []
        for key in sorted({k for _, s in points for k in s}):
            pairs = [(t - start, s[key]) for t, s in points if key in s]
            series = Series(key, [p[0] for p in pairs], [p[1] for p in pairs], [])
            curves.append(Curve(key, series))
        chart.show(curves, title=f"{current.name}: requests, errors, latency")

    @property
    def current(self) -> DeploymentRow | None:
        table = self.query_one(DataTable)
        return self.rows[table.cursor_row] if 0 <= table.cursor_row < len(self.rows) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._chart()

    def action_scale(self, delta: int) -> None:
        row = self.current
        if row is None:
            return
        replicas = max(0, row.desired + delta)

        def job() -> str:
            self.data.scale(row.name, replicas)
            return f"{row.name}: scaling to {replicas}"

        self.query_data("done", job)

    def action_rollback(self) -> None:
        row = self.current
        if row is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                def job() -> str:
                    self.data.rollback(row.name)
                    return f"{row.name}: rolling back"

                self.query_data("done", job)

        self.app.push_screen(ConfirmDialog(
            f"Roll back {row.name}?", f"{row.name} serves {row.model}:{row.version} now; it will go back "
            "to the spec it had before its last deploy.", yes="Roll back"), answered)

    def on_loaded_done(self, text: str) -> None:
        self.notify(text)
        self.reload()
