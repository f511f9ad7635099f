"""Screen 5, Deployments: live rollout state, scale with ``+``/``-``, roll back with ``r``.

Rows come from ``ws.deployments.list()`` every two seconds (replicas ready/desired are checked
live, the state is the rollout's: progressing, available, degraded, failed), plus the deploys
this TUI has started that are still building their model server. Below the table, three small
charts show the selected deployment's traffic scraped from its replicas' Prometheus metrics
(``ws.deployments.metrics``): requests per second, error rate and latency p50/p99.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from workbench.errors import WorkbenchError
from workbench.ui.data import DeploymentRow, Series
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.screens.dialogs import ConfirmDialog
from workbench.ui.widgets.metric_chart import Curve, MetricChart
from workbench.ui.widgets.tables import fill_table

HISTORY = 120
"""Traffic samples kept per deployment (four minutes at one sample every two seconds)."""
CHARTS = (  # chart id, title, [(metric key, curve label, scale)]
    ("traffic-rate", "requests/s", [("request_rate", "req/s", 1.0)]),
    ("traffic-errors", "errors %", [("error_rate", "errors %", 100.0)]),
    ("traffic-latency", "latency ms", [("latency_p50", "p50", 1000.0), ("latency_p99", "p99", 1000.0)]),
)
_STATE_STYLE = {"available": "text-success", "progressing": "text-primary", "degraded": "text-warning",
                "failed": "text-error", "building": "text-muted"}

Traffic = dict[str, dict[str, float]]


class DeploymentsScreen(WorkbenchScreen):
    TITLE_TEXT = "Deployments"
    RELOAD_SECONDS = 2.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "scale(1)", "Scale +1"),
        Binding("minus", "scale(-1)", "Scale -1"),
        Binding("r", "rollback", "Rollback"),
        Binding("enter", "open_run", "Open run", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[DeploymentRow] = []
        self.samples: dict[str, list[tuple[float, dict[str, float]]]] = {}

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield DataTable(id="deployments-table", cursor_type="row")
        yield Static("", id="deployments-status", classes="status-line")
        with Horizontal(id="traffic"):
            for chart_id, _, _ in CHARTS:
                yield MetricChart(id=chart_id, classes="traffic-chart")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def reload(self, quiet: bool = False) -> None:
        def fetch() -> tuple[list[DeploymentRow], Traffic]:
            rows = self.data.deployments()
            traffic: Traffic = {}
            for row in rows:
                if row.ready:
                    try:
                        traffic[row.name] = self.data.deployment_metrics(row.name)
                    except WorkbenchError:
                        continue
            return rows, traffic

        self.load(fetch, self._show)

    def _pending(self, listed: list[DeploymentRow]) -> list[DeploymentRow]:
        """Deploys started from this TUI that the store does not show as rolling out yet."""
        rolling = {(r.model, r.version) for r in listed if r.state == "progressing"}
        out = []
        for spec, phase in list(self.wb.deploying.items()):
            model, _, version = spec.partition(":")
            if (model, version) not in rolling:
                out.append(DeploymentRow(name="…", model=model, version=version, target="local", desired=0,
                                         ready=0, state="building", url="", message=phase, pending=True))
        return out

    def _show(self, value: tuple[list[DeploymentRow], Traffic]) -> None:
        listed, traffic = value
        now = time.time()
        for name, sample in traffic.items():
            history = self.samples.setdefault(name, [])
            history.append((now, sample))
            del history[:-HISTORY]
        rows = listed + self._pending(listed)
        self.rows = rows
        lines: list[tuple[str | None, list[object]]] = []
        for row in rows:
            state = Text(row.state + (f": {row.message}" if row.message else ""),
                         style=self.theme_style(_STATE_STYLE.get(row.state, "text")))
            lines.append((f"{row.name}/{row.model}:{row.version}",
                          [row.name, f"{row.model}:{row.version}", str(row.revision or ""), row.target,
                           f"{row.ready}/{row.desired}", state, row.url]))
        headers = ("name", "model", "rev", "target", "ready", "state", "endpoint")
        fill_table(self.query_one(DataTable), headers, lines)
        status = (f"{len(listed)} deployments" if rows
                  else "No deployments yet: press d on a model version (4 Models)")
        self.query_one("#deployments-status", Static).update(status)
        self._charts()

    def _charts(self) -> None:
        current = self.current
        points = self.samples.get(current.name, []) if current is not None else []
        start = points[0][0] if points else 0.0
        for chart_id, title, curves_spec in CHARTS:
            curves = []
            for key, label, scale in curves_spec:
                pairs = [(t - start, s[key] * scale) for t, s in points if key in s]
                if pairs:
                    curves.append(Curve(label, Series(key, [p[0] for p in pairs], [p[1] for p in pairs], [])))
            self.query_one(f"#{chart_id}", MetricChart).show(curves, title=title, x_label="s", y_floor=0.0)

    @property
    def current(self) -> DeploymentRow | None:
        table = self.query_one(DataTable)
        return self.rows[table.cursor_row] if 0 <= table.cursor_row < len(self.rows) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._charts()

    def action_open_run(self) -> None:
        row = self.current
        if row is not None and row.run_id:
            self.wb.open_run(row.run_id)

    def action_scale(self, delta: int) -> None:
        row = self.current
        if row is None or row.pending:
            return
        replicas = max(0, row.desired + delta)
        self.notify(f"{row.name}: scaling to {replicas}", timeout=3)

        def job() -> str:
            got = self.data.scale(row.name, replicas)
            return f"{got.name}: {got.ready}/{got.desired} replicas ready"

        self.load(job, self._done, group=f"scale:{row.name}")

    def action_rollback(self) -> None:
        row = self.current
        if row is None or row.pending:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"{row.name}: rolling back", timeout=3)

                def job() -> str:
                    got = self.data.rollback(row.name)
                    return f"{got.name} serves {got.model}:{got.version} again (revision {got.revision})"

                self.load(job, self._done, group=f"rollback:{row.name}")

        self.app.push_screen(ConfirmDialog(
            f"Roll back {row.name}?", f"{row.name} serves {row.model}:{row.version} now (revision "
            f"{row.revision}); it will go back to the last revision that served another model version, "
            "with the same number of replicas.", yes="Roll back"), answered)

    def _done(self, text: str) -> None:
        self.notify(text, title="Deployments")
        self.reload()
