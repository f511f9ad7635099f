"""Run detail: params and environment, live metric charts, the log tail, and provenance.

Tabs: ``p`` summary (params, command, environment, GPUs), ``m`` metrics (chart of the selected
key, ``[``/``]`` to change key; redrawn live while the run is going), ``l`` log (follows new
lines), ``o`` provenance (inputs with the hash they had and the run that wrote them -> this run
-> outputs and model versions; Enter jumps to the producing run).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from workbench import format as fmt
from workbench.ui.data import Provenance, RunRow, Series
from workbench.ui.messages import Coalescer
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.widgets.log_tail import LogTail
from workbench.ui.widgets.metric_chart import Curve, MetricChart

CHART_POINTS = 600


def summary_table(run: RunRow) -> Table:
    workdir = run.raw.workdir if run.raw is not None else "."
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    rows: list[tuple[str, str]] = [
        ("run", f"{run.id}  {run.name}"), ("status", f"{run.status}" + (
            f" (exit {run.exit_code})" if run.exit_code is not None else "")),
        ("command", run.command),
        *((("in", f"{workdir}/"),) if workdir not in ("", ".") else ()),
        ("executor", run.executor),
        ("started", fmt.short_time(run.started)), ("duration", fmt.duration(run.duration)),
        ("code+data in", (run.snapshot_before or "")[:12]),
        ("outputs snapshot", (run.snapshot_after or "")[:12]),
    ]
    if run.sweep_id:
        rows.append(("sweep", str(run.sweep_id)))
    rows.append(("", ""))
    rows.extend((f"param {k}", fmt.number(v)) for k, v in sorted(run.params.items()))
    rows.extend((f"metric {k}", fmt.number(v)) for k, v in sorted(run.metrics.items()))
    env = run.environment
    if env:
        rows.append(("", ""))
        for key in ("python", "python_version", "os", "platform", "cpu", "cpus", "memory", "git_commit",
                    "git_dirty", "hostname"):
            if key in env:
                rows.append((key.replace("_", " "), str(env[key])))
        packages = env.get("packages")
        if packages:
            rows.append(("packages", f"{len(packages)} installed"))
    for gpu in run.gpus:
        rows.append(("gpu", " ".join(f"{k}={v}" for k, v in (gpu.items() if isinstance(gpu, dict) else []))))
    for key, value in rows:
        table.add_row(key, Text(value))
    return table


def best_key(run: RunRow, keys: list[str]) -> str | None:
    """The metric to show first: the one with the most points (a curve), then alphabetical."""
    if not keys:
        return None
    return sorted(keys, key=lambda k: (-run.metric_counts.get(k, 0), k))[0]


class RunDetailScreen(WorkbenchScreen):
    TITLE_TEXT = "Run"
    RELOAD_SECONDS = 1.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "tab('summary')", "Summary"),
        Binding("m", "tab('metrics')", "Metrics"),
        Binding("l", "tab('log')", "Log"),
        Binding("o", "tab('provenance')", "Provenance"),
        Binding("right_square_bracket", "metric(1)", "Next metric"),
        Binding("left_square_bracket", "metric(-1)", "Prev metric", show=False),
        Binding("L", "log_scale", "Log y", show=False),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: RunRow | None = None
        self.keys: list[str] = []
        self.key: str | None = None
        self.series: Series | None = None
        self._log_stop = threading.Event()
        self._log_started = False
        self._lines: Coalescer[str] = Coalescer(self._flush_lines)
        self.provenance: Provenance | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"Run {self.run_id[:12]}", classes="screen-title", id="run-title")
        with TabbedContent(initial="summary", id="run-tabs"):
            with TabPane("Summary", id="summary"), VerticalScroll():
                yield Static("loading…", id="run-summary")
            with TabPane("Metrics", id="metrics"), Horizontal():
                yield OptionList(id="metric-keys")
                yield MetricChart(id="run-chart")
            with TabPane("Log", id="log"):
                yield LogTail(id="run-log")
            with TabPane("Provenance", id="provenance"):
                yield OptionList(id="run-provenance")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.set_interval(0.1, self._lines.drain)

    def on_unmount(self) -> None:
        self._log_stop.set()

    # -- loading ------------------------------------------------------------------------------------
    def reload(self, quiet: bool = False) -> None:
        if quiet and self.run is not None and self.run.status != "running":
            return
        key = self.key

        def fetch() -> tuple[RunRow, list[str], Series | None]:
            run = self.data.run(self.run_id)
            keys = self.data.metric_keys(run.id)
            chosen = key if key in keys else best_key(run, keys)
            series = self.data.metric_series(run.id, chosen, max_points=CHART_POINTS) if chosen else None
            return run, keys, series

        self.load(fetch, self._show)
        if self.provenance is None or self.run is None or self.run.status == "running":
            self.load(lambda: self.data.provenance(self.run_id), self._show_provenance)

    def _show(self, value: tuple[RunRow, list[str], Series | None]) -> None:
        run, keys, series = value
        self.run = run
        self.query_one("#run-title", Static).update(
            f"Run {run.short_id}  {run.name}  [{run.status}]")
        self.query_one("#run-summary", Static).update(summary_table(run))
        if keys != self.keys:
            self.keys = keys
            options = self.query_one("#metric-keys", OptionList)
            options.clear_options()
            options.add_options([Option(k, id=k) for k in keys])
        if series is not None:
            self.key = series.key
            self.series = series
            self._draw()
        elif not keys:
            self.query_one(MetricChart).show([], title="this run logged no metrics")
        if not self._log_started:
            self._log_started = True
            self._follow_log(run.status == "running")

    def _draw(self) -> None:
        if self.series is None:
            return
        chart = self.query_one(MetricChart)
        chart.show([Curve(self.series.key, self.series)], title=self.series.key)
        options = self.query_one("#metric-keys", OptionList)
        if self.key in self.keys:
            options.highlighted = self.keys.index(self.key)

    def _show_series(self, series: Series) -> None:
        self.series = series
        self._draw()

    def select_metric(self, key: str) -> None:
        self.key = key
        run_id = self.run.id if self.run else self.run_id
        self.load(lambda: self.data.metric_series(run_id, key, max_points=CHART_POINTS),
                   self._show_series)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "metric-keys" and event.option.id:
            self.select_metric(event.option.id)
        elif event.option_list.id == "run-provenance" and event.option.id:
            kind, _, target = event.option.id.partition(":")
            if kind == "run" and target and target != self.run_id:
                self.wb.open_run(target)
            elif kind == "model":
                self.wb.action_screen("models")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "metric-keys" and event.option.id and event.option.id != self.key:
            self.select_metric(event.option.id)

    # -- log ------------------------------------------------------------------------------------------
    def _follow_log(self, follow: bool) -> None:
        stop = self._log_stop
        run_id = self.run_id

        def job() -> None:
            for line in self.data.log_lines(run_id, follow=follow, stop=stop):
                self._lines.push(line)

        self.run_worker(job, thread=True, exit_on_error=False, group="log", name="log-tail")

    def _flush_lines(self, lines: list[str]) -> None:
        self.query_one(LogTail).add_batch(lines)

    # -- provenance -----------------------------------------------------------------------------------
    def _show_provenance(self, prov: Provenance) -> None:
        self.provenance = prov
        options = self.query_one("#run-provenance", OptionList)
        options.clear_options()
        items: list[Option | None] = []
        for path, digest, producer in prov.inputs:
            who = f"  ← run {producer[:8]}" if producer else ""
            items.append(Option(f"in   {path}  {digest[:10]}{who}",
                                id=f"run:{producer}" if producer else None))
        items.append(Option(f"──▶ this run {self.run_id[:8]}", id=f"run:{self.run_id}"))
        for path, digest in prov.outputs:
            items.append(Option(f"out  {path}  {digest[:10]}"))
        for model in prov.models:
            items.append(Option(f"model {model}", id=f"model:{model}"))
        options.add_options(items)

    # -- actions --------------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        focus: dict[str, Any] = {"metrics": "#metric-keys", "log": "#run-log",
                                 "provenance": "#run-provenance"}
        if tab in focus:
            self.query_one(focus[tab]).focus()

    def action_metric(self, delta: int) -> None:
        if self.keys:
            index = self.keys.index(self.key) if self.key in self.keys else 0
            self.select_metric(self.keys[(index + delta) % len(self.keys)])

    def action_log_scale(self) -> None:
        chart = self.query_one(MetricChart)
        chart.log_y = not chart.log_y
        chart.redraw()
