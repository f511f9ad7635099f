"""Compare the marked runs: overlaid curves, the params that differ, and the code diff.

Curves: ``[``/``]`` choose the metric, ``x`` step or time, ``s`` smoothing, ``L`` log scale.
Params: only those that differ between the runs, with each run's last metric values. Rank: the
runs ordered by the chosen metric's last value (``o``: lower or higher is better), and a
parallel-coordinates view of the params against it; for a sweep the ranking is the workflows
service's (``ws.workflows.rank``) over the sweep's own params. Code: the files that differ between
the first two runs' code snapshots; Enter shows a file's diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from workbench import format as fmt
from workbench.ui.data import ChangeRow, RankRow, RunRow, Series
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.widgets.diff_view import DiffView
from workbench.ui.widgets.metric_chart import Curve, MetricChart
from workbench.ui.widgets.parallel_chart import ParallelChart
from workbench.ui.widgets.tables import fill_table

SMOOTHING = (0.0, 0.6, 0.9)
HIGHER_IS_BETTER = ("acc", "auc", "f1", "score", "precision", "recall", "r2", "map", "iou", "reward")


def default_order(metric: str) -> str:
    """``max`` for metrics named like accuracies and scores, ``min`` (losses, errors) otherwise."""
    name = metric.lower()
    return "max" if any(word in name for word in HIGHER_IS_BETTER) else "min"


def rank_runs(runs: list[RunRow], metric: str, order: str) -> list[RankRow]:
    """The runs that logged ``metric``, best first by its last value."""
    rows = [RankRow(r.id, r.name or r.short_id, r.params, r.metrics[metric])
            for r in runs if metric in r.metrics]
    rows.sort(key=lambda r: r.value, reverse=order == "max")
    return rows


@dataclass
class CompareData:
    runs: list[RunRow]
    keys: list[str]
    code_changes: list[ChangeRow]
    not_compared: str = ""
    """The run without an input snapshot (imported, or recorded before snapshots), if any."""


def differing_params(runs: list[RunRow]) -> list[str]:
    keys = sorted({k for r in runs for k in r.params})
    return [k for k in keys if len({repr(r.params.get(k)) for r in runs}) > 1]


class CompareScreen(WorkbenchScreen):
    TITLE_TEXT = "Compare"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right_square_bracket", "metric(1)", "Next metric"),
        Binding("left_square_bracket", "metric(-1)", "Prev metric", show=False),
        Binding("x", "x_axis", "Step/time"),
        Binding("s", "smoothing", "Smooth"),
        Binding("L", "log_scale", "Log y"),
        Binding("v", "tab('curves')", "Curves", show=False),
        Binding("p", "tab('params')", "Params", show=False),
        Binding("r", "tab('rank')", "Rank"),
        Binding("o", "order", "Best: min/max", show=False),
        Binding("f", "tab('code')", "Code", show=False),
    ]

    def __init__(self, run_ids: list[str], sweep_id: str | None = None) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.sweep_id = sweep_id
        self.data_: CompareData | None = None
        self.key: str | None = None
        self.order: str | None = None
        """min or max is best; None: guessed from the metric's name."""
        self.ranked: list[RankRow] = []

    def compose(self) -> ComposeResult:
        yield Static(f"Compare {len(self.run_ids)} runs", classes="screen-title", id="compare-title")
        with TabbedContent(initial="curves"):
            with TabPane("Curves", id="curves"):
                yield MetricChart(id="compare-chart")
            with TabPane("Params", id="params"):
                yield DataTable(id="compare-params", cursor_type="row")
            with TabPane("Rank", id="rank"), Horizontal():
                yield DataTable(id="compare-rank", cursor_type="row")
                yield ParallelChart(id="compare-parallel")
            with TabPane("Code", id="code"), Horizontal():
                yield OptionList(id="compare-files")
                yield DiffView(id="compare-diff")
        yield self.compose_footer()

    def reload(self, quiet: bool = False) -> None:
        def fetch() -> CompareData:
            runs = [self.data.run(r) for r in self.run_ids]
            keys: list[str] = []
            for run in runs:
                for key in self.data.metric_keys(run.id):
                    if key not in keys:
                        keys.append(key)
            changes: list[ChangeRow] = []
            a, b = runs[0].snapshot_before, runs[1].snapshot_before
            if a and b and a != b:
                changes = self.data.compare_snapshots(a, b)
            missing = next((r.name or r.short_id for r in runs[:2] if not r.snapshot_before), "")
            return CompareData(runs, keys, changes, missing)

        self.load(fetch, self._show)

    def _show(self, value: CompareData) -> None:
        self.data_ = value
        names = ", ".join(r.name or r.short_id for r in value.runs)
        what = "sweep " + (value.runs[0].sweep_id or "") if self.sweep_id else f"{len(value.runs)} runs"
        self.query_one("#compare-title", Static).update(f"Compare {what}: {names}")
        self._fill_params(value.runs)
        files = self.query_one("#compare-files", OptionList)
        files.clear_options()
        if value.code_changes:
            files.add_options([Option(f"{c.change[:1].upper()} {c.path}", id=c.path)
                               for c in value.code_changes])
        elif value.not_compared:
            note = f"not compared: {value.not_compared} has no input snapshot"
            files.add_option(Option(note, disabled=True))
        else:
            files.add_option(Option("code and data identical", disabled=True))
        if value.keys:
            counts: dict[str, int] = {}
            for run in value.runs:
                for key, count in run.metric_counts.items():
                    counts[key] = counts.get(key, 0) + count
            first = sorted(value.keys, key=lambda k: (-counts.get(k, 0), k))[0]
            self.show_metric(self.key if self.key in value.keys else first)

    def _fill_params(self, runs: list[RunRow]) -> None:
        lines: list[tuple[str | None, list[object]]] = []
        for key in differing_params(runs):
            lines.append((None, [key, *[fmt.number(r.params.get(key)) for r in runs]]))
        for key in sorted({k for r in runs for k in r.metrics}):
            lines.append((None, [f"▸ {key}", *[fmt.number(r.metrics.get(key)) for r in runs]]))
        headers = ["", *[r.name[:14] or r.short_id for r in runs]]
        fill_table(self.query_one("#compare-params", DataTable), headers, lines)

    def show_metric(self, key: str) -> None:
        self.key = key
        runs = self.data_.runs if self.data_ else []

        def fetch() -> list[tuple[RunRow, Series]]:
            return [(r, self.data.metric_series(r.id, key, max_points=400)) for r in runs]

        self.load(fetch, self._show_curves)
        self.rank()

    @property
    def rank_order(self) -> str:
        return self.order or default_order(self.key or "")

    def rank(self) -> None:
        """Rank the runs by the current metric (in a worker for a sweep: the service reads series)."""
        if self.key is None or self.data_ is None:
            return
        key, order, runs, sweep = self.key, self.rank_order, self.data_.runs, self.sweep_id

        def fetch() -> tuple[list[RankRow], list[str]]:
            if sweep:
                ranked = self.data.rank_sweep(sweep, key, order)
                wanted = set(self.run_ids)
                ranked = [r for r in ranked if r.run_id in wanted]
                params = sorted({p for r in ranked for p in r.params})
                by_id = {r.id: r for r in runs}
                for row in ranked:
                    row.name = by_id[row.run_id].name if row.run_id in by_id else row.name
            else:
                ranked = rank_runs(runs, key, order)
                params = differing_params(runs)
            return ranked, params

        self.load(fetch, self._show_rank)

    def _show_rank(self, value: tuple[list[RankRow], list[str]]) -> None:
        ranked, params = value
        self.ranked = ranked
        key = self.key or ""
        headers = ["#", "run", key[:14], *[p[:12] for p in params]]
        lines: list[tuple[str | None, list[object]]] = [
            (None, [str(i + 1), row.name[:16], fmt.number(row.value),
                    *[fmt.number(row.params.get(p)) for p in params]])
            for i, row in enumerate(ranked)]
        fill_table(self.query_one("#compare-rank", DataTable), headers, lines)
        self.query_one(ParallelChart).show(ranked, params, key, self.rank_order)

    def action_order(self) -> None:
        self.order = "max" if self.rank_order == "min" else "min"
        self.notify(f"ranking: {self.order} is best", timeout=1.5)
        self.rank()

    def _show_curves(self, value: list[tuple[RunRow, Series]]) -> None:
        chart = self.query_one(MetricChart)
        chart.show([Curve(r.name or r.short_id, s) for r, s in value], title=self.key or "")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "compare-files" or not event.option.id or not self.data_:
            return
        path = event.option.id
        a, b = self.data_.runs[0].snapshot_before, self.data_.runs[1].snapshot_before
        if a and b:
            self.load(lambda: self.data.file_diff(a, b, path), self._show_diff)

    def _show_diff(self, value: tuple[str, str]) -> None:
        self.query_one(DiffView).show(*value)

    def action_metric(self, delta: int) -> None:
        if self.data_ and self.data_.keys:
            keys = self.data_.keys
            index = keys.index(self.key) if self.key in keys else 0
            self.show_metric(keys[(index + delta) % len(keys)])

    def action_x_axis(self) -> None:
        chart = self.query_one(MetricChart)
        chart.x_axis = "time" if chart.x_axis == "step" else "step"
        chart.redraw()

    def action_smoothing(self) -> None:
        chart = self.query_one(MetricChart)
        chart.smoothing = SMOOTHING[(SMOOTHING.index(chart.smoothing) + 1) % len(SMOOTHING)] \
            if chart.smoothing in SMOOTHING else 0.0
        chart.redraw()
        self.notify(f"smoothing {chart.smoothing}", timeout=1.5)

    def action_log_scale(self) -> None:
        chart = self.query_one(MetricChart)
        chart.log_y = not chart.log_y
        chart.redraw()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
