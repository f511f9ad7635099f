"""The runs table's view: sorted rows, laid-out columns and their formatted cells, without Textual.

:func:`build_view` turns run rows into a :class:`TableView` (columns sized on a sample of rows,
sweeps optionally grouped under header rows); it is a pure function the Runs screen calls in a
thread worker. Cells are formatted lazily, when a row is first drawn (:class:`Cells`), and cached
on the row. The ``fmt_*`` helpers are shared by other screens. Every name is re-exported by
:mod:`workbench.ui.widgets.runs_table`, whose :class:`~workbench.ui.widgets.runs_table.RunsTable`
widget draws the view.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, overload

from workbench import format as fmt
from workbench.ui.rows import RunRow

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
    frozen: int = 0
    """How many leading columns stay in place when the table scrolls sideways (status, name and
    the primary metric, where shown), so the result of each run is visible at any width."""

    @property
    def cells(self) -> Cells:
        return Cells(self)


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
        return fmt.short_time(row.started)
    if key == "duration":
        return fmt.duration(row.duration)
    if key == "sweep":
        return names.get(row.sweep_id or "", row.sweep_id or "")
    return fmt.number(cell_value(row, column))


def sort_rows(rows: list[RunRow], sort: str | None, reverse: bool) -> list[RunRow]:
    """``rows`` ordered by a column key (``status``, ``p.lr``, ``m.loss``...); unknown keys keep order."""
    if not sort:
        return rows
    kind = "param" if sort.startswith("p.") else "metric" if sort.startswith("m.") else "fixed"
    column = Column(sort, sort, kind, 0)
    return sorted(rows, key=lambda r: _sort_key(cell_value(r, column)), reverse=reverse)


def primary_metric(rows: Sequence[RunRow], sort: str | None, metric_keys: dict[str, None],
                   counts: Mapping[str, int] | None = None) -> str | None:
    """The metric shown beside each run's name: the one sorted by, else the one most runs have (the
    first by name among equals); None without metrics. ``counts``: runs per metric, when known."""
    if sort and sort.startswith("m.") and sort[2:] in metric_keys:
        return sort[2:]
    if not metric_keys:
        return None
    if counts is None:
        counts = Counter(chain.from_iterable([r.metrics for r in rows]))
    return min(counts, key=lambda k: (-counts[k], k))


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
    # one pass each in C over 10,000 rows (a filter as you type rebuilds the view on every key):
    # the keys present, and how many runs have each metric (for the primary metric)
    param_keys = dict.fromkeys(chain.from_iterable([r.params for r in rows]))
    metric_counts = Counter(chain.from_iterable([r.metrics for r in rows]))
    any_sweep = any(r.sweep_id for r in rows)
    if only_differing:
        param_keys = {k: None for k in param_keys
                      if len({repr(r.params.get(k)) for r in rows}) > 1}
    primary = primary_metric(rows, sort, dict.fromkeys(metric_counts), metric_counts)
    metric_keys = metric_counts
    candidates = [Column(k, _LABELS[k], "fixed", len(_LABELS[k])) for k in FIXED_COLUMNS
                  if k != "sweep" or any_sweep]
    if primary is not None:  # status, name, then the primary metric: the frozen part
        candidates.insert(2, Column(f"m.{primary}", primary, "metric", len(primary), numeric=True))
    candidates += [Column(f"p.{k}", k, "param", len(k)) for k in sorted(param_keys)]
    candidates += [Column(f"m.{k}", k, "metric", len(k), numeric=True) for k in sorted(metric_keys)
                   if k != primary]
    columns = [c for c in candidates if c.key not in hidden]
    frozen = sum(1 for c in columns[:3] if c.key in ("status", "name", f"m.{primary}"))
    if not presorted:
        rows = sort_rows(rows, sort, reverse)
    if group and any_sweep:
        rows = _grouped(rows, names, collapsed)
    view = TableView(columns, rows, sort, reverse, hidden, grouped=group and any_sweep,
                     sweep_names=names, collapsed=collapsed, frozen=frozen)
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
        return fmt.short_time(row.started)
    if column.key == "duration":
        return fmt.duration(row.duration)
    if column.kind == "param":
        value = row.params.get(column.key[2:])
        return str(value) if isinstance(value, _Varies) else fmt.number(value)
    return ""


def _all_numeric(rows: list[RunRow], column: Column) -> bool:
    for row in rows[:200]:
        if row.group is not None:
            continue
        value = cell_value(row, column)
        if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool)):
            return False
    return True
