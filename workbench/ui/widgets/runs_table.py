"""The runs table: a virtualised grid drawn line by line, fast at tens of thousands of runs.

Only the visible lines are ever rendered (Textual's line API), so the cost of a redraw does not
depend on the number of runs. The expensive part, turning rows into sorted, formatted cells, is
:func:`build_view`, a pure function the Runs screen calls in a thread worker; the widget only
receives the finished :class:`TableView`. Keys: j/k and arrows move, h/l pick a column, ``s``
sorts by it (again: reverse), space marks, Enter opens, ``x`` hides a column, ``X`` shows all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, overload

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from workbench.ui.data import RunRow

FIXED_COLUMNS = ("status", "name", "sweep", "id", "started", "duration")
_LABELS = {"status": "status", "name": "name", "sweep": "sweep", "id": "id", "started": "started",
           "duration": "time"}
_MAX_WIDTH = {"name": 18, "sweep": 14, "param": 12, "metric": 10}
_STATUS_ICON = {"running": "▶", "succeeded": "✓", "failed": "✗", "cancelled": "■", "queued": "…"}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str  # fixed | param | metric
    width: int
    numeric: bool = False


WIDTH_SAMPLE = 300
"""Column widths are measured on the first rows of a view (and capped anyway), not on all of them."""


class Cells(Sequence[list[str]]):
    """A view's formatted cells, row by row, computed when a row is first drawn and kept on the row
    (so a new filter or sort over the same runs formats nothing again)."""

    def __init__(self, view: TableView) -> None:
        self.view = view

    def __len__(self) -> int:
        return len(self.view.rows)

    @overload
    def __getitem__(self, index: int) -> list[str]: ...

    @overload
    def __getitem__(self, index: slice) -> list[list[str]]: ...

    def __getitem__(self, index: int | slice) -> list[str] | list[list[str]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = self.view.rows[index]
        columns = self.view.columns
        if row.group is not None:
            return [_header_cell(row, c, self.view.sweep_names, self.view.collapsed) for c in columns]
        cache = row.cells
        live = row.status == "running"
        out = []
        for column in columns:
            text = None if live else cache.get(column.key)
            if text is None:
                text = format_cell(row, column, self.view.sweep_names)
                if not live:
                    cache[column.key] = text
            out.append(text)
        return out


@dataclass
class TableView:
    """Everything the widget draws: sorted rows, the columns, and their cells (formatted lazily)."""

    columns: list[Column]
    rows: list[RunRow]
    sort: str | None = None
    reverse: bool = False
    hidden: frozenset[str] = field(default_factory=frozenset)
    grouped: bool = False
    sweep_names: dict[str, str] = field(default_factory=dict)
    collapsed: frozenset[str] = field(default_factory=frozenset)

    @property
    def cells(self) -> Cells:
        return Cells(self)


def fmt_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def fmt_time(stamp: float | None) -> str:
    return "" if stamp is None else time.strftime("%m-%d %H:%M", time.localtime(stamp))


def cell_value(row: RunRow, column: Column) -> Any:
    if column.kind == "param":
        return row.params.get(column.key[2:])
    if column.kind == "metric":
        return row.metrics.get(column.key[2:])
    if column.key == "duration":
        return row.duration
    if column.key == "started":
        return row.started
    if column.key == "sweep":
        return row.sweep_id
    return getattr(row, column.key, "")


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value).lower())


def format_cell(row: RunRow, column: Column, names: dict[str, str]) -> str:
    """One cell of a run's row, as drawn."""
    key = column.key
    if key == "status":
        return f"{_STATUS_ICON.get(row.status, '?')} {row.status}"
    if key == "id":
        return row.short_id
    if key == "started":
        return fmt_time(row.started)
    if key == "duration":
        return fmt_duration(row.duration)
    if key == "sweep":
        return names.get(row.sweep_id or "", row.sweep_id or "")
    return fmt_value(cell_value(row, column))


def sort_rows(rows: list[RunRow], sort: str | None, reverse: bool) -> list[RunRow]:
    """``rows`` ordered by a column key (``status``, ``p.lr``, ``m.loss``...); unknown keys keep order."""
    if not sort:
        return rows
    kind = "param" if sort.startswith("p.") else "metric" if sort.startswith("m.") else "fixed"
    column = Column(sort, sort, kind, 0)
    return sorted(rows, key=lambda r: _sort_key(cell_value(r, column)), reverse=reverse)


def build_view(rows: list[RunRow], *, sort: str | None = None, reverse: bool = False,
               hidden: frozenset[str] = frozenset(), only_differing: bool = False,
               group: bool = False, sweep_names: dict[str, str] | None = None,
               collapsed: frozenset[str] = frozenset(), presorted: bool = False) -> TableView:
    """Sort ``rows`` and lay out the columns (blocking: call it from a worker). Cells are formatted
    when drawn (:class:`Cells`); ``presorted`` says ``rows`` already come in ``sort`` order (a filter
    over sorted rows keeps their order), so they are not sorted again.

    With ``group``, the runs of each sweep follow a header row (a :class:`RunRow` whose ``group``
    is the sweep id) placed where the sweep's first run sorts; a sweep in ``collapsed`` shows its
    header only. A ``sweep`` column appears when any run belongs to a sweep.
    """
    names = sweep_names or {}
    param_keys: dict[str, None] = {}
    metric_keys: dict[str, None] = {}
    any_sweep = False
    for row in rows:
        if row.params:
            param_keys.update(dict.fromkeys(row.params))
        if row.metrics:
            metric_keys.update(dict.fromkeys(row.metrics))
        if row.sweep_id:
            any_sweep = True
    if only_differing:
        param_keys = {k: None for k in param_keys
                      if len({repr(r.params.get(k)) for r in rows}) > 1}
    candidates = [Column(k, _LABELS[k], "fixed", len(_LABELS[k])) for k in FIXED_COLUMNS
                  if k != "sweep" or any_sweep]
    candidates += [Column(f"p.{k}", k, "param", len(k)) for k in sorted(param_keys)]
    candidates += [Column(f"m.{k}", k, "metric", len(k), numeric=True) for k in sorted(metric_keys)]
    columns = [c for c in candidates if c.key not in hidden]
    if not presorted:
        rows = sort_rows(rows, sort, reverse)
    if group and any_sweep:
        rows = _grouped(rows, names, collapsed)
    view = TableView(columns, rows, sort, reverse, hidden, grouped=group and any_sweep,
                     sweep_names=names, collapsed=collapsed)
    widths = [c.width for c in columns]
    for line in view.cells[:WIDTH_SAMPLE]:
        for i, text in enumerate(line):
            if len(text) > widths[i]:
                widths[i] = len(text)
    final = []
    for column, width in zip(columns, widths, strict=True):
        cap = _MAX_WIDTH.get(column.key if column.kind == "fixed" else column.kind, 40)
        numeric = column.numeric or (column.kind == "param" and _all_numeric(rows, column))
        width = min(max(width, len(column.label) + 1), cap)
        final.append(Column(column.key, column.label, column.kind, width, numeric=numeric))
    view.columns = final
    return view


def _grouped(rows: list[RunRow], names: dict[str, str], collapsed: frozenset[str]) -> list[RunRow]:
    """Rows in their sorted order, each sweep's runs gathered under a header where its first run was."""
    members: dict[str, list[RunRow]] = {}
    for row in rows:
        if row.sweep_id:
            members.setdefault(row.sweep_id, []).append(row)
    out: list[RunRow] = []
    for row in rows:
        sweep = row.sweep_id
        if not sweep:
            out.append(row)
            continue
        group = members.pop(sweep, None)
        if group is None:
            continue  # already placed with its sweep's first run
        statuses = {r.status for r in group}
        status = "running" if "running" in statuses else "failed" if "failed" in statuses else group[0].status
        started = [r.started for r in group if r.started is not None]
        ended = [r.ended for r in group if r.ended is not None]
        out.append(RunRow(id=f"sweep:{sweep}", name=names.get(sweep, sweep), status=status,
                          started=min(started) if started else None,
                          ended=max(ended) if ended and status != "running" else None,
                          params=_common(group), sweep_id=sweep, group=sweep,
                          members=[r.id for r in group]))
        if sweep not in collapsed:
            out.extend(group)
    return out


def _common(group: list[RunRow]) -> dict[str, Any]:
    """Params every run of the group shares (the rest differ, and the header shows how many values)."""
    keys = {k for r in group for k in r.params}
    out: dict[str, Any] = {}
    for key in keys:
        values = {repr(r.params.get(key)) for r in group}
        out[key] = group[0].params.get(key) if len(values) == 1 else _Varies(len(values))
    return out


class _Varies:
    """A header cell for a param that differs across a sweep: ``3 values``."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __str__(self) -> str:
        return f"{self.count} values"


def _header_cell(row: RunRow, column: Column, names: dict[str, str], collapsed: frozenset[str]) -> str:
    if column.key == "status":
        return f"{'▸' if row.group in collapsed else '▾'} {len(row.members)} runs"
    if column.key == "name":
        return row.name
    if column.key == "sweep":
        return names.get(row.group or "", row.group or "")
    if column.key == "id":
        return (row.group or "")[:10]
    if column.key == "started":
        return fmt_time(row.started)
    if column.key == "duration":
        return fmt_duration(row.duration)
    if column.kind == "param":
        value = row.params.get(column.key[2:])
        return str(value) if isinstance(value, _Varies) else fmt_value(value)
    return ""


def _all_numeric(rows: list[RunRow], column: Column) -> bool:
    for row in rows[:200]:
        if row.group is not None:
            continue
        value = cell_value(row, column)
        if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool)):
            return False
    return True


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

    def action_column(self, delta: int) -> None:
        self.cursor_col = max(0, min(len(self.view.columns) - 1, self.cursor_col + delta))
        if self._offsets:
            left = self._offsets[self.cursor_col]
            right = left + self.view.columns[self.cursor_col].width
            if left < self.scroll_offset.x:
                self.scroll_to(x=left - 2, animate=False)
            elif right > self.scroll_offset.x + self.size.width:
                self.scroll_to(x=right - self.size.width + 2, animate=False)
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
        x = event.x + self.scroll_offset.x
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
        return strip.crop_extend(self.scroll_offset.x, self.scroll_offset.x + width, base)

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
