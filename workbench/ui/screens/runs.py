"""Screen 3, Runs: every run in a virtualised table; filter, sort, hide columns, mark and compare.

``/`` opens the filter (the same expressions as ``workbench runs --filter``, evaluated by the
tracking service), ``s`` sorts by the column under the cursor, ``d`` shows only the params that
differ between the listed runs, space marks, ``c`` compares the marked runs, Enter opens one.
Loading, filtering and sorting happen in thread workers; the table only draws visible lines.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, Static

from workbench.ui.data import RunRow
from workbench.ui.messages import DataChanged
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.widgets.runs_table import RunsTable, TableView, build_view


class RunsScreen(WorkbenchScreen):
    TITLE_TEXT = "Runs"
    RELOAD_SECONDS = 3.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("c", "compare", "Compare"),
        Binding("d", "only_differing", "Diff params"),
        Binding("z", "group", "Group sweeps"),
        Binding("u", "unmark", "Unmark all", show=False),
        Binding("n", "app.launch", "New run"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_expr = ""
        self.sort: str | None = "started"
        self.reverse = True
        self.hidden: frozenset[str] = frozenset()
        self.only_differing = False
        self.group_sweeps = True
        self.collapsed: frozenset[str] = frozenset()
        self.sweep_names: dict[str, str] = {}
        self.rows: list[RunRow] = []
        self.all_rows: list[RunRow] | None = None
        self.loaded = False
        self.last_query_ms = 0.0
        self.last_view_ms = 0.0
        self._fingerprint: tuple[object, ...] = ()
        self.generation = 0
        self._stale = False
        """Something changed while this screen was hidden (or a launch said so): query on the next tick."""
        """How many times the table has been refilled (benchmarks and tests wait on it)."""

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield Input(placeholder="filter: lr>0.01 and status==succeeded  (Enter applies, Esc closes)",
                    id="runs-filter")
        yield RunsTable(id="runs-table")
        yield Static("", id="runs-status", classes="status-line")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#runs-filter", Input).display = False
        table = self.query_one(RunsTable)
        table.open_filter = self.action_filter
        table.focus()
        super().on_mount()

    # -- loading ------------------------------------------------------------------------------------
    def reload(self, quiet: bool | None = False) -> None:
        """Load every run (``quiet``: a background poll) or, with ``quiet=None``, re-filter the
        runs already loaded without a query."""
        if quiet and self.loaded and not self._stale and not any(r.status == "running" for r in self.rows) \
                and self._tick_count() % 3:
            return  # nothing live: poll for new runs every third tick only
        self._stale = False
        expr = self.filter_expr
        options = self._view_options()
        cached = self.all_rows if quiet is None else None

        def fetch() -> tuple[list[RunRow], list[RunRow], TableView, float, float, bool]:
            t0 = time.perf_counter()
            if cached is None:
                everything = self.data.runs()
                if any(r.sweep_id for r in everything):
                    options["sweep_names"] = self.sweep_names = self.data.sweep_names()
            else:
                everything = cached
            rows = self.data.filter_rows(everything, expr)
            t1 = time.perf_counter()
            view = build_view(rows, **options)
            return everything, rows, view, (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000, bool(quiet)

        self.query_data("runs", fetch)

    def on_screen_resume(self) -> None:
        self._stale = True
        super().on_screen_resume()

    def on_data_changed(self, message: DataChanged) -> None:
        self._stale = True
        super().on_data_changed(message)

    def _tick_count(self) -> int:
        self._ticks = getattr(self, "_ticks", 0) + 1
        return self._ticks

    def on_loaded_runs(self, value: tuple[list[RunRow], list[RunRow], TableView, float, float, bool]) -> None:
        everything, rows, view, query_ms, view_ms, quiet = value
        self.all_rows = everything
        fingerprint = tuple((r.id, r.status, r.ended, len(r.metrics), tuple(r.metrics.values()))
                            for r in rows)
        if quiet and fingerprint == self._fingerprint:
            return
        self._fingerprint = fingerprint
        self.rows, self.loaded = rows, True
        self.last_query_ms, self.last_view_ms = query_ms, view_ms
        self.query_one(RunsTable).show(view)
        self.generation += 1
        self._status()

    def _view_options(self) -> dict[str, Any]:
        return {"sort": self.sort, "reverse": self.reverse, "hidden": self.hidden,
                "only_differing": self.only_differing, "group": self.group_sweeps,
                "sweep_names": self.sweep_names, "collapsed": self.collapsed}

    def _rebuild(self) -> None:
        """Re-sort / re-layout the rows already loaded (no query)."""
        rows, options = self.rows, self._view_options()

        def job() -> TableView:
            return build_view(rows, **options)

        self.query_data("view", job)

    def on_loaded_view(self, view: TableView) -> None:
        self.query_one(RunsTable).show(view)
        self.generation += 1
        self._status()

    def _status(self) -> None:
        table = self.query_one(RunsTable)
        parts = [f"{len(self.rows):,} runs"]
        if table.marked:
            parts.append(f"{len(table.marked)} marked")
        if self.filter_expr:
            parts.append(f"filter: {self.filter_expr}")
        if self.sort:
            parts.append(f"sort: {self.sort}{' desc' if self.reverse else ''}")
        if self.only_differing:
            parts.append("differing params only")
        if table.view.grouped:
            parts.append("grouped by sweep (z)")
        if self.hidden:
            parts.append(f"{len(self.hidden)} hidden (X shows)")
        self.query_one("#runs-status", Static).update("  ·  ".join(parts))

    # -- actions --------------------------------------------------------------------------------------
    def action_filter(self) -> None:
        """Open the filter box and focus it *now*: ``Widget.focus()`` defers the change to a later
        callback, so keys typed fast right after ``/`` (already queued) went to the table."""
        box = self.query_one("#runs-filter", Input)
        box.display = True
        box.value = self.filter_expr
        box.cursor_position = len(box.value)
        self.set_focus(box)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "runs-filter":
            return
        self.filter_expr = event.value.strip()
        event.input.display = bool(self.filter_expr)
        self.query_one(RunsTable).focus()
        self.reload(quiet=None if self.all_rows is not None else False)

    def action_back(self) -> None:
        box = self.query_one("#runs-filter", Input)
        if box.has_focus:
            box.display = bool(self.filter_expr)
            self.query_one(RunsTable).focus()
            return
        super().action_back()

    def on_runs_table_sort_requested(self, message: RunsTable.SortRequested) -> None:
        if self.sort == message.key:
            self.reverse = not self.reverse
        else:
            self.sort, self.reverse = message.key, False
        self._rebuild()

    def on_runs_table_hide_requested(self, message: RunsTable.HideRequested) -> None:
        self.hidden = frozenset() if message.key is None else self.hidden | {message.key}
        self._rebuild()

    def on_runs_table_marks_changed(self, message: RunsTable.MarksChanged) -> None:
        self._status()

    def on_runs_table_opened(self, message: RunsTable.Opened) -> None:
        self.wb.open_run(message.run.id)

    def action_group(self) -> None:
        self.group_sweeps = not self.group_sweeps
        self._rebuild()

    def on_runs_table_group_toggled(self, message: RunsTable.GroupToggled) -> None:
        self.collapsed = self.collapsed ^ {message.sweep_id}
        self._rebuild()

    def action_only_differing(self) -> None:
        self.only_differing = not self.only_differing
        self._rebuild()

    def action_unmark(self) -> None:
        table = self.query_one(RunsTable)
        table.marked.clear()
        table.refresh()
        self._status()

    def action_compare(self) -> None:
        """Compare the marked runs; with none marked and the cursor on a sweep, that sweep's runs.
        Runs that are all of one sweep are ranked with the sweep's own params."""
        table = self.query_one(RunsTable)
        current = table.current_run
        if not table.marked and current is not None and current.group is not None:
            self.wb.open_compare(list(current.members), sweep_id=current.group)
            return
        by_id = {r.id: r for r in self.rows}
        order = [r.id for r in table.view.rows if r.id in table.marked and r.group is None]
        order += [i for i in table.marked if i not in order and i in by_id]  # marked in a folded sweep
        sweeps = {by_id[i].sweep_id for i in order if i in by_id}
        sweep = sweeps.pop() if len(sweeps) == 1 else None
        self.wb.open_compare(order, sweep_id=sweep)
