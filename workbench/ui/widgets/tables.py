"""Fill a DataTable with explicit column widths.

DataTable measures new rows' widths on its next Idle event; a table filled from another widget's
message handler may get none before it is drawn, and then shows every column at its label's
width (seen on the Models and Pipelines screens). Measuring here, once per fill, avoids that.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

MAX_WIDTH = 80


def _width(cell: object) -> int:
    return cell_len(cell.plain if isinstance(cell, Text) else str(cell))


def fill_table(table: DataTable[object], headers: Sequence[str],
               rows: Sequence[tuple[str | None, Sequence[object]]]) -> None:
    """Replace the table's columns and rows (``(key, cells)`` each); the cursor keeps its row."""
    keep = table.cursor_row
    widths = [cell_len(h) for h in headers]
    for _, cells in rows:
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], min(MAX_WIDTH, _width(cell)))
    table.clear(columns=True)
    for header, width in zip(headers, widths, strict=True):
        table.add_column(header, width=width)
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if rows:
        table.move_cursor(row=min(max(keep, 0), len(rows) - 1))
