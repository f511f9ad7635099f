"""The runs table: a virtualised grid drawn line by line, fast at tens of thousands of runs.

Only the visible lines are ever rendered (Textual's line API), so the cost of a redraw does not
depend on the number of runs. The expensive part, turning rows into sorted, formatted cells, is
:func:`build_view`, a pure function the Runs screen calls in a thread worker; the widget only
receives the finished :class:`TableView`. Keys: j/k and arrows move, h/l pick a column, ``s``
sorts by it (again: reverse), space marks, Enter opens, ``x`` hides a column, ``X`` shows all.

The view itself (columns, sorting, cell formatting, sweep groups) is built in
:mod:`workbench.ui.widgets.table_view`; its public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from workbench.ui.rows import RunRow
from workbench.ui.widgets.table_view import (
    FIXED_COLUMNS,
    WIDTH_SAMPLE,
    Cells,
    Column,
    TableView,
    build_view,
    cell_value,
    format_cell,
    sort_rows,
)

__all__ = [
    "FIXED_COLUMNS", "WIDTH_SAMPLE", "Cells", "Column", "RunsTable", "TableView", "build_view", "cell_value",
    "format_cell", "sort_rows",
]


class RunsTable(ScrollView, can_focus=True):
    """A keyboard-first table of runs (see the module docstring)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "runs-table--header", "runs-table--cursor", "runs-table--marked", "runs-table--column",
        "runs-table--running", "runs-table--failed", "runs-table--succeeded", "runs-table--dim",
        "runs-table--group",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor(1)", "Down", show=False),
        Binding("k,up", "cursor(-1)", "Up", show=False),
        Binding("h,left", "column(-1)", "Column left", show=False),
        Binding("l,right", "column(1)", "Column right", show=False),
        Binding("g,home", "first", "First", show=False),
        Binding("G,end", "last", "Last", show=False),
        Binding("pagedown,ctrl+d", "page(1)", "Page down", show=False),
        Binding("pageup,ctrl+u", "page(-1)", "Page up", show=False),
        Binding("space", "mark", "Mark"),
        Binding("enter", "open", "Open"),
        Binding("s", "sort", "Sort"),
        Binding("x", "hide_column", "Hide col"),
        Binding("X", "show_columns", "Show cols", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True)
    cursor_col: reactive[int] = reactive(0)

    class Opened(Message):
        """Enter on a run."""

        def __init__(self, run: RunRow) -> None:
            super().__init__()
            self.run = run

    class GroupToggled(Message):
        """Enter on a sweep's header row: fold or unfold it."""

        def __init__(self, sweep_id: str) -> None:
            super().__init__()
            self.sweep_id = sweep_id

    class SortRequested(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    class HideRequested(Message):
        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key  # None: show all

    class MarksChanged(Message):
        def __init__(self, marked: frozenset[str]) -> None:
            super().__init__()
            self.marked = marked

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = TableView([], [])
        self.marked: set[str] = set()
        self._offsets: list[int] = []
        self.open_filter: Callable[[], None] | None = None
        """Set by the screen: opens its filter box and focuses it, synchronously."""

    # -- type-ahead into the filter -------------------------------------------------------------------
    # The app forwards every key to the widget focused when it *reads* the key, so keys typed fast
    # after "/" are all queued here before "/" has been acted on. "/" is therefore handled here, while
    # it is processed (not through a binding, which runs later, once the key has bubbled to the app),
    # and keys that reach this table after focus has moved are passed on to the focused widget.
    def key_slash(self, event: events.Key) -> bool:
        if self.open_filter is None:
            return False
        event.stop()
        event.prevent_default()
        self.open_filter()
        return True

    async def _on_key(self, event: events.Key) -> None:
        focused = self.screen.focused
        if focused is not None and focused is not self:
            event.stop()
            event.prevent_default()  # not handled here: Widget._on_key does not run either
            focused._forward_event(events.Key(event.key, event.character))  # a fresh, unstopped copy

    # -- data ---------------------------------------------------------------------------------------
    def show(self, view: TableView) -> None:
        """Replace the table's contents, keeping the cursor on the same run where it still exists."""
        current = self.current_run
        self.view = view
        offsets, x = [], 2
        for column in view.columns:
            offsets.append(x)
            x += column.width + 2
        self._offsets = offsets
        self.virtual_size = Size(x, len(view.rows) + 1)
        if current is not None:
            for index, row in enumerate(view.rows):
                if row.id == current.id:
                    self.cursor_row = index
                    break
            else:
                self.cursor_row = min(self.cursor_row, max(0, len(view.rows) - 1))
        self.cursor_col = min(self.cursor_col, max(0, len(view.columns) - 1))
        self._scroll_cursor_into_view()
        self.refresh()

    @property
    def current_run(self) -> RunRow | None:
        rows = self.view.rows
        return rows[self.cursor_row] if 0 <= self.cursor_row < len(rows) else None

    @property
    def current_column(self) -> Column | None:
        cols = self.view.columns
        return cols[self.cursor_col] if 0 <= self.cursor_col < len(cols) else None

    # -- actions ------------------------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor_row + delta)

    def action_page(self, delta: int) -> None:
        self._move_to(self.cursor_row + delta * max(1, self.size.height - 2))

    def action_first(self) -> None:
        self._move_to(0)

    def action_last(self) -> None:
        self._move_to(len(self.view.rows) - 1)

    @property
    def frozen_width(self) -> int:
        """Cells at the left that never scroll sideways (the mark, then the frozen columns)."""
        frozen = self.view.frozen
        if not frozen or frozen > len(self._offsets):
            return 0
        return self._offsets[frozen - 1] + self.view.columns[frozen - 1].width + 2

    def action_column(self, delta: int) -> None:
        self.cursor_col = max(0, min(len(self.view.columns) - 1, self.cursor_col + delta))
        if self._offsets and self.cursor_col >= self.view.frozen:
            fixed = self.frozen_width
            left = self._offsets[self.cursor_col] - fixed
            right = left + self.view.columns[self.cursor_col].width
            if left < self.scroll_offset.x:
                self.scroll_to(x=max(0, left - 2), animate=False)
            elif right > self.scroll_offset.x + self.size.width - fixed:
                self.scroll_to(x=right - self.size.width + fixed + 2, animate=False)
        self.refresh()

    def action_mark(self) -> None:
        run = self.current_run
        if run is None:
            return
        if run.group is not None:  # a sweep's header: mark all its runs, or unmark them all
            members = set(run.members)
            if members <= self.marked:
                self.marked -= members
            else:
                self.marked |= members
        else:
            self.marked.symmetric_difference_update({run.id})
        self.post_message(self.MarksChanged(frozenset(self.marked)))
        self._move_to(self.cursor_row + 1)
        self.refresh()

    def action_open(self) -> None:
        run = self.current_run
        if run is not None and run.group is not None:
            self.post_message(self.GroupToggled(run.group))
        elif run is not None:
            self.post_message(self.Opened(run))

    def action_sort(self) -> None:
        column = self.current_column
        if column is not None:
            self.post_message(self.SortRequested(column.key))

    def action_hide_column(self) -> None:
        column = self.current_column
        if column is not None and column.key != "name":
            self.post_message(self.HideRequested(column.key))

    def action_show_columns(self) -> None:
        self.post_message(self.HideRequested(None))

    def _move_to(self, index: int) -> None:
        self.cursor_row = max(0, min(len(self.view.rows) - 1, index))
        self._scroll_cursor_into_view()
        self.refresh()

    def _scroll_cursor_into_view(self) -> None:
        body = max(1, self.size.height - 1)
        top = self.scroll_offset.y
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + body:
            self.scroll_to(y=self.cursor_row - body + 1, animate=False, immediate=True)

    # -- mouse --------------------------------------------------------------------------------------
    def on_click(self, event: events.Click) -> None:
        x = event.x if event.x < self.frozen_width else event.x + self.scroll_offset.x
        column = next((i for i, off in enumerate(self._offsets)
                       if off <= x < off + self.view.columns[i].width + 2), None)
        if event.y == 0:
            if column is not None:
                self.cursor_col = column
                self.action_sort()
            return
        if column is not None:
            self.cursor_col = column
        index = self.scroll_offset.y + event.y - 1
        if index == self.cursor_row and event.chain >= 2:
            self.action_open()
        self._move_to(index)

    # -- drawing ------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            strip = self._header()
        else:
            index = self.scroll_offset.y + y - 1
            if index >= len(self.view.rows):
                return Strip.blank(width, base)
            strip = self._row(index)
        fixed = min(self.frozen_width, width)
        if not fixed:
            return strip.crop_extend(self.scroll_offset.x, self.scroll_offset.x + width, base)
        left = strip.crop_extend(0, fixed, base)
        x = fixed + self.scroll_offset.x
        return Strip.join([left, strip.crop_extend(x, x + width - fixed, base)])

    def _header(self) -> Strip:
        style = self.get_component_rich_style("runs-table--header")
        col_style = self.get_component_rich_style("runs-table--column")
        segments = [Segment("  ", style)]
        for i, column in enumerate(self.view.columns):
            arrow = ""
            if column.key == self.view.sort:
                arrow = "▼" if self.view.reverse else "▲"
            label = (column.label[: column.width - len(arrow)] + arrow)
            text = label.rjust(column.width) if column.numeric else label.ljust(column.width)
            cell_style = style + col_style if i == self.cursor_col and self.has_focus else style
            segments.append(Segment(text, cell_style))
            segments.append(Segment("  ", style))
        return Strip(segments)

    def _row(self, index: int) -> Strip:
        run = self.view.rows[index]
        cells = self.view.cells[index]
        base = self.rich_style
        marked = run.id in self.marked or (run.group is not None and bool(run.members)
                                           and set(run.members) <= self.marked)
        row_style = base
        if run.group is not None:
            row_style = base + self.get_component_rich_style("runs-table--group")
        if marked:
            row_style = base + self.get_component_rich_style("runs-table--marked")
        cursor = index == self.cursor_row
        if cursor:
            row_style = row_style + self.get_component_rich_style("runs-table--cursor")
        segments = [Segment("● " if marked else "  ", row_style)]
        for i, (column, text) in enumerate(zip(self.view.columns, cells, strict=False)):
            if len(text) > column.width:
                text = text[: column.width - 1] + "…"
            text = text.rjust(column.width) if column.numeric else text.ljust(column.width)
            style = row_style
            if column.key == "status":
                style = self._status_style(run.status, row_style)
            if cursor and i == self.cursor_col and self.has_focus:
                style = style + Style(reverse=False, bold=True, underline=True)
            segments.append(Segment(text, style))
            segments.append(Segment("  ", row_style))
        return Strip(segments)

    def _status_style(self, status: str, base: Style) -> Style:
        name = {"running": "runs-table--running", "failed": "runs-table--failed",
                "cancelled": "runs-table--dim", "succeeded": "runs-table--succeeded"}.get(status)
        return base + self.get_component_rich_style(name, partial=True) if name else base

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
