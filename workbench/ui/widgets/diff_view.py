"""A unified diff (or a size/hash or row/column summary) coloured with the theme's variables."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

MAX_DIFF_LINES = 4000


class DiffView(VerticalScroll, can_focus=True):
    """Shows one file's change. ``show(kind, text)``: kind is text | table | binary | info."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "diff-view--added", "diff-view--removed", "diff-view--hunk", "diff-view--meta",
    }

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("Select a file to see its change.", id="diff-body", markup=False)

    def show(self, kind: str, text: str) -> None:
        body = self.query_one("#diff-body", Static)
        if kind != "text":
            body.update(Text(text, style=self.get_component_rich_style("diff-view--meta")))
            self.scroll_home(animate=False)
            return
        lines = text.splitlines()
        out = Text()
        styles = {
            "+": self.get_component_rich_style("diff-view--added"),
            "-": self.get_component_rich_style("diff-view--removed"),
            "@": self.get_component_rich_style("diff-view--hunk"),
        }
        meta = self.get_component_rich_style("diff-view--meta")
        for line in lines[:MAX_DIFF_LINES]:
            if line.startswith(("+++", "---")):
                out.append(line + "\n", meta)
            else:
                out.append(line + "\n", styles.get(line[:1], ""))
        if len(lines) > MAX_DIFF_LINES:
            out.append(f"… {len(lines) - MAX_DIFF_LINES:,} more lines\n", meta)
        if not lines:
            out.append("no textual difference", meta)
        body.update(out)
        self.scroll_home(animate=False)
