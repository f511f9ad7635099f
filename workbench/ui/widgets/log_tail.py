"""A log view that follows new lines: appended in batches (one refresh per batch), capped in size."""

from __future__ import annotations

from textual.widgets import Log

MAX_LINES = 5000


class LogTail(Log):
    """Follows the end while the cursor is at the bottom; scrolling up pauses following."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, highlight=False, id=id)

    def add_batch(self, lines: list[str]) -> None:
        if lines:
            self.auto_scroll = self.is_vertical_scroll_end or self.max_scroll_y == 0
            self.write_lines([line.rstrip("\n") for line in lines])
