"""Screen 3, Runs: every run in a virtualised table; filter, sort, hide columns, mark and compare.

``/`` opens the filter (the same expressions as ``workbench runs --filter``, evaluated by the
tracking service); the table follows the text as it is typed (a half-typed term keeps the last
result; a term added with ``and`` filters only the rows shown), Enter keeps it, Esc goes back to
the filter applied before. ``s`` sorts by the column under the cursor, ``d`` shows only the params that
differ between the listed runs, space marks, ``c`` compares the marked runs, Enter opens one.
Loading happens in a thread worker, and so do filtering and sorting of many runs. Up to
``INLINE_ROWS`` loaded runs are re-filtered on the UI thread, once the keys already queued have been
read (a burst of keys costs one pass): the work takes milliseconds, where handing it to a thread and
back took 100-200 ms on a busy machine. Enter on a filter whose rows are already shown (filtered as
it was typed) does no work again. The table only draws visible lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from workbench.errors import WorkbenchError
from workbench.ui.data import RunRow
from workbench.ui.messages import DataChanged
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.screens.runs_manage import RunsManageMixin
from workbench.ui.widgets.runs_table import RunsTable, TableView, build_view, sort_rows

_NONE = object()
"""No reload is waiting."""
INLINE_ROWS = 20_000
"""Re-filter or re-sort this many loaded runs or fewer on the UI thread (10-40 ms at 10,000 with
the machine's two cores busy), more in a worker."""


@dataclass
class Result:
    """What a load or re-filter worker hands back to the screen."""

    request: int
    token: object
    sort: tuple[str | None, bool]
    base: list[RunRow]
    rows: list[RunRow]
    view: TableView | None
    """None: the rows are the ones shown, laid out the same way: the table keeps its view."""
    query_ms: float
    view_ms: float
    sweep_names: dict[str, str]
    expr: str
    """The filter these rows passed (while typing: the last one typed that parses)."""
    layout: dict[str, Any]
    """The view options ``view`` was built with."""


class RunsScreen(RunsManageMixin, WorkbenchScreen):
    TITLE_TEXT = "Runs"
    RELOAD_SECONDS = 3.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("c", "compare", "Compare"),
        Binding("d", "only_differing", "Diff params"),
        Binding("z", "group", "Group sweeps"),
        Binding("u", "unmark", "Unmark all", show=False),
        Binding("n", "app.launch", "New run"),
        *RunsManageMixin.MANAGE_BINDINGS,
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
        """The runs the filter lets through, in sort order."""
        self.all_rows: list[RunRow] | None = None
        self.base: list[RunRow] | None = None
        """Every run loaded, in the order of ``_base_sort`` (filtering keeps that order)."""
        self._base_sort: tuple[str | None, bool] = (None, False)
        self._token: object = None
        self._request = 0
        self._applied = 0
        self._inflight = False
        self._pending: object = _NONE
        self.loaded = False
        self.last_query_ms = 0.0
        self.last_view_ms = 0.0
        self.generation = 0
        """How many times the table has been refilled (benchmarks and tests wait on it)."""
        self.shown_at = 0.0
        """``perf_counter()`` when the table last got a new view (benchmarks read it)."""
        self.typed: str | None = None
        """The filter being typed in the box, applied as you type; None when the box is closed
        (Enter makes it ``filter_expr``, Esc goes back to ``filter_expr``)."""
        self.shown_expr = ""
        """The filter the rows on show passed."""
        self._stale = False
        """Something changed while this screen was hidden (or a launch said so): query on the next tick."""
        self._inline_due = False
        """A re-filter on the UI thread is scheduled (after the messages already queued)."""
        self._layout: dict[str, Any] | None = None
        """The view options the table's view was built with."""

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

    # -- loading ------------------------------------------------------------------------------------
    def reload(self, quiet: bool | None = False, *, now: bool = False) -> None:
        """Bring the table up to date in a worker, one worker at a time.

        ``quiet`` (the periodic poll): list the runs again only when ``ws.runs.change_token()``
        moved (or the screen was told something changed), about 5 us otherwise. ``False``: list
        them again. ``None``: apply the filter and sort to the runs already loaded, no query.
        A request made while a worker runs waits for it and then runs once, however many came
        (thread workers cannot be cancelled: starting one per request let a burst of reloads, such
        as the mount, resume and first poll at start-up, run side by side and fight for the GIL).
        A re-filter of at most ``INLINE_ROWS`` runs is done on this thread (``now``: at once).
        """
        if self._inflight:
            rank = {False: 2, True: 1, None: 0}
            if self._pending is _NONE or rank[quiet] > rank[self._pending]:  # type: ignore[index]
                self._pending = quiet
            return
        inline = quiet is None and self.base is not None and len(self.base) <= INLINE_ROWS
        if inline and not now:
            if not self._inline_due:
                self._inline_due = True
                self.call_later(self._refilter_inline)
            return
        self._inflight = True
        self._request += 1
        expr = self.typed if self.typed is not None else self.filter_expr
        typing, fallback = self.typed is not None, self.shown_expr
        request, options = self._request, self._view_options()
        sort = (self.sort, self.reverse)
        base = self.base if quiet is None else None
        resort = base is not None and self._base_sort != sort
        # narrowing as you type: filter the rows already shown, not all of them, when they are
        # in the same order and every run the new filter passes is among them
        previous = self.rows if base is not None and not resort else None
        narrowed = previous if previous is not None and self.data.narrows(fallback, expr) else None
        same_layout = options == self._layout
        last_token = self._token if quiet and self.loaded and not self._stale else None
        archived = self.show_archived
        self._stale = False

        def fetch() -> Result | None:
            t0 = time.perf_counter()
            token = self._token
            if base is None:
                token = self.data.change_token()
                if last_token is not None and token == last_token:
                    return None  # nothing a runs view shows has changed
                everything = self.data.runs(archived=archived)
                if any(r.sweep_id for r in everything):
                    options["sweep_names"] = self.data.sweep_names()
                rows_in_order = sort_rows(everything, *sort)
            else:
                rows_in_order = sort_rows(base, *sort) if resort else base
            applied = expr
            try:
                rows = self.data.filter_rows(rows_in_order if narrowed is None else narrowed, expr)
            except WorkbenchError:
                if not typing:
                    raise  # Enter on a bad filter: the app's error notification says why
                # half typed ("lr>"): keep showing what the last filter that parsed let through
                applied = fallback
                rows = previous if previous is not None else self.data.filter_rows(rows_in_order, fallback)
            t1 = time.perf_counter()
            # the rows shown, and nothing in the layout changed (a half-typed term, or a filter that
            # lets every shown run through, as `lr>0` after `lr>`): keep the view, build nothing
            view: TableView | None
            if same_layout and previous is not None and (
                    rows is previous or (narrowed is previous and len(rows) == len(previous))):
                rows, view = previous, None
            else:
                view = build_view(rows, presorted=True, **options)
            return Result(request, token, sort, rows_in_order, rows, view, (t1 - t0) * 1000,
                          (time.perf_counter() - t1) * 1000, options["sweep_names"], applied, options)

        if inline:
            try:
                result = fetch()
            except WorkbenchError as exc:  # Enter on a bad filter: said as a worker's error would be
                self.wb.show_error(exc)
                self._next()
                return
            self._show_result(result)
            return
        self.load(fetch, self._show_result, group="runs", exclusive=False)

    def _refilter_inline(self) -> None:
        self._inline_due = False
        self.reload(quiet=None, now=True)

    def on_data_changed(self, message: DataChanged) -> None:
        self._stale = True  # WorkbenchScreen.on_data_changed (called after this) reloads

    def _next(self) -> None:
        """The worker has finished: run the request that came meanwhile, if any."""
        self._inflight = False
        pending, self._pending = self._pending, _NONE
        if pending is not _NONE:
            self.reload(pending)  # type: ignore[arg-type]

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # WorkbenchScreen.on_worker_state_changed (Textual calls it too) reports the error
        if event.worker.group == "runs" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self._next()

    def _show_result(self, result: Result | None) -> None:
        if result is not None and result.request > self._applied:
            self._applied = result.request
            self._token, self._base_sort, self.base = result.token, result.sort, result.base
            self.sweep_names = result.sweep_names
            self.all_rows = result.base
            self.rows, self.loaded, self.shown_expr = result.rows, True, result.expr
            self.last_query_ms, self.last_view_ms = result.query_ms, result.view_ms
            if result.view is not None:
                self._layout = result.layout
            self._show(result.view)
        self._next()  # after the token is known, so that a waiting poll can compare with it

    def _show(self, view: TableView | None) -> None:
        if view is not None:
            self.query_one(RunsTable).show(view)
        self.shown_at = time.perf_counter()
        self.generation += 1
        self._status()

    def _view_options(self) -> dict[str, Any]:
        return {"sort": self.sort, "reverse": self.reverse, "hidden": self.hidden,
                "only_differing": self.only_differing, "group": self.group_sweeps,
                "sweep_names": self.sweep_names, "collapsed": self.collapsed}

    def _rebuild(self) -> None:
        """Re-sort / re-layout the runs already loaded (no query)."""
        if self.base is not None:
            self.reload(quiet=None)

    def _status(self) -> None:
        table = self.query_one(RunsTable)
        if self.rows or not self.loaded:
            parts = [f"{len(self.rows):,} runs"]
        elif self.shown_expr:
            parts = ["no run matches the filter (Esc clears it)"]
        else:
            parts = ["no runs yet: press n to start one"]
        if table.marked:
            parts.append(f"{len(table.marked)} marked")
        if self.shown_expr:
            parts.append(f"filter: {self.shown_expr}")
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
        self.typed = self.filter_expr
        self.set_focus(box)

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as you type: each change re-filters the runs already loaded in the worker (a
        burst of keys coalesces into one pass: see :meth:`reload`)."""
        if event.input.id != "runs-filter" or self.typed is None:
            return
        typed = event.value.strip()
        if typed != self.typed:
            self.typed = typed
            if self.base is not None:
                self.reload(quiet=None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "runs-filter":
            return
        self.filter_expr = event.value.strip()
        already_shown = (self.typed == self.filter_expr == self.shown_expr and not self._inflight
                         and not self._inline_due)
        self.typed = None
        event.input.display = bool(self.filter_expr)
        self.query_one(RunsTable).focus()
        if already_shown and self.base is not None:
            self._status()  # filtering as it was typed has shown these rows already
            return
        self.reload(quiet=None if self.base is not None else False)

    def action_back(self) -> None:
        if not self._close_filter_box():
            super().action_back()

    def action_leave(self) -> None:
        """Esc leaves the filter box, then clears an applied filter; it never quits."""
        if self._close_filter_box():
            return
        if self.filter_expr:
            self.filter_expr = ""
            self.query_one("#runs-filter", Input).display = False
            self.reload(quiet=None if self.base is not None else False)
            return
        super().action_leave()

    def _close_filter_box(self) -> bool:
        box = self.query_one("#runs-filter", Input)
        if not box.has_focus:
            return False
        if self.typed is not None:  # Esc while typing: back to the filter applied before
            changed, self.typed = self.typed != self.filter_expr, None
            if changed and self.base is not None:
                self.reload(quiet=None)
        box.display = bool(self.filter_expr)
        self.query_one(RunsTable).focus()
        return True

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
