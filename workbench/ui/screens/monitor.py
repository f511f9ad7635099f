"""Screen 7, Monitor: each deployment's drift, worst first, and what it looked like in training.

Rows come from ``ws.monitor.reports()`` every five seconds (new predictions are folded first, so a
reload costs the new rows only). The table shows each feature's metric, score, state and a sparkline
of its score over the last windows. Below it: training-versus-production histograms of the selected
feature (plotext, on the reference's bins), the prediction distribution, and measured accuracy per
window beside the confidence-based estimate when labels exist. ``d`` shows the next deployment.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from workbench import format as fmt
from workbench.monitor.report import Report
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.widgets.tables import fill_table

STATE_STYLE = {"ok": "text-success", "warning": "text-warning", "drifting": "text-error",
               "degraded": "text-error"}


class MonitorScreen(WorkbenchScreen):
    TITLE_TEXT = "Monitor"
    RELOAD_SECONDS = 5.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "next_deployment", "Next deployment"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[Report] = []
        self.selected = 0

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield Static("", id="monitor-status", classes="status-line")
        yield DataTable(id="monitor-features", cursor_type="row")
        with Horizontal(id="monitor-charts"):
            yield PlotextPlot(id="monitor-histogram", classes="monitor-chart")
            yield PlotextPlot(id="monitor-prediction", classes="monitor-chart")
            yield PlotextPlot(id="monitor-accuracy", classes="monitor-chart")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def reload(self, quiet: bool = False) -> None:
        self.load(self.data.monitor_reports, self._show)

    @property
    def report(self) -> Report | None:
        return self.reports[self.selected % len(self.reports)] if self.reports else None

    def _show(self, reports: list[Report]) -> None:
        self.reports = reports
        report = self.report
        status = self.query_one("#monitor-status", Static)
        table = self.query_one(DataTable)
        if report is None:
            status.update("Nothing to monitor yet: deploy a model and send it requests (5 Deployments)")
            fill_table(table, ("feature", "metric", "score", "state", "trend"), [])
            self._charts()
            return
        window = report.window
        others = f"  ·  d: next of {len(reports)}" if len(reports) > 1 else ""
        status.update(Text.assemble(
            (report.deployment, "bold"), f"  {report.model}:{report.version}  ",
            (report.state, self.theme_style(STATE_STYLE.get(report.state, "text"))),
            f"  ·  window {window.get('size')}: {window.get('rows', 0)} rows, "
            f"{window.get('errors', 0)} errors{('  ·  ' + report.message) if report.message else ''}{others}",
        ))
        lines: list[tuple[str | None, list[object]]] = []
        for verdict in report.features:
            lines.append((verdict.name, [
                verdict.name, verdict.metric, fmt.number(verdict.score),
                Text(verdict.state, style=self.theme_style(STATE_STYLE.get(verdict.state, "text"))),
                fmt.sparkline(report.history.get(verdict.name, []), 1.0),
            ]))
        fill_table(table, ("feature", "metric", "score", "state", "trend"), lines)
        self._charts()

    def _selected_feature(self) -> str | None:
        report = self.report
        table = self.query_one(DataTable)
        if report is None or not report.features:
            return None
        row = min(max(table.cursor_row, 0), len(report.features) - 1)
        return report.features[row].name

    def _charts(self) -> None:
        report = self.report
        name = self._selected_feature()
        histogram = self.query_one("#monitor-histogram", PlotextPlot)
        self._bars(histogram, f"{name}: training vs production" if name else "feature",
                   report.references.get(name) if report and name else None,
                   report.comparisons[name].histogram if report and name in report.comparisons else None)
        prediction = report.prediction if report else {}
        self._bars(self.query_one("#monitor-prediction", PlotextPlot), "prediction",
                   (prediction["bins"], prediction["reference"]) if "bins" in prediction else None,
                   prediction.get("current"))
        self._accuracy(report)

    def _bars(self, chart: PlotextPlot, title: str, reference: tuple[list[str], list[float]] | None,
              current: list[float] | None) -> None:
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        if reference is not None and current is not None and len(current) == len(reference[0]):
            labels = [label[:8] for label in reference[0]]
            # The stub says label=, plotext itself takes labels=.
            plt.multiple_bar(labels, [reference[1], current],
                             labels=["training", "production"])  # type: ignore[call-arg]
        else:
            plt.title(f"{title}  (no data)")
        chart.refresh()

    def _accuracy(self, report: Report | None) -> None:
        chart = self.query_one("#monitor-accuracy", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("accuracy per window")
        windows = report.windows if report else []
        measured = [(i, w["labelled"].get("accuracy")) for i, w in enumerate(windows) if "labelled" in w]
        estimated = [(i, w["estimated_accuracy"]) for i, w in enumerate(windows)
                     if w.get("estimated_accuracy") is not None]
        drawn = False
        for label, points in (("measured", measured), ("estimated", estimated)):
            points = [(x, y) for x, y in points if y is not None]
            if points:
                plt.plot([p[0] for p in points], [p[1] for p in points], label=label, marker="braille")
                drawn = True
        if drawn:
            plt.ylim(0, 1)
        else:
            plt.title("accuracy per window  (no labels)")
        chart.refresh()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._charts()

    def action_next_deployment(self) -> None:
        if self.reports:
            self.selected = (self.selected + 1) % len(self.reports)
            self._show(self.reports)
