"""The ``?`` screen: every key binding active on the screen it was opened from, grouped by owner."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

_NAMES = {"escape": "Esc", "enter": "Enter", "space": "Space", "question_mark": "?", "slash": "/",
          "plus": "+", "minus": "-", "ctrl+p": "Ctrl+P"}


def key_label(keys: str) -> str:
    return " ".join(_NAMES.get(k, k) for k in keys.split(","))


def bindings_of(screen: Screen[object]) -> list[tuple[str, str, str]]:
    """(owner, keys, description) for every binding reachable on ``screen``, focused widget first."""
    seen: set[str] = set()
    out: list[tuple[str, str, str]] = []
    for node, bindings_map in screen._binding_chain:  # the chain Textual resolves keys along
        owner = "app" if node is screen.app else ("screen" if node is screen else type(node).__name__)
        by_action: dict[str, tuple[list[str], str]] = {}
        for key, bindings in bindings_map.key_to_bindings.items():
            for binding in bindings:
                if binding.description and binding.action not in seen:
                    keys, _ = by_action.setdefault(binding.action, ([], binding.description))
                    keys.append(key)
        for action, (keys, description) in by_action.items():
            seen.add(action)
            out.append((owner, key_label(",".join(keys)), description))
    return out


class HelpScreen(ModalScreen[None]):
    """Lists the bindings gathered from the screen underneath."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss_help", "Close")]

    def __init__(self, title: str, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self._title = title
        self._rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True, pad_edge=False)
        table.add_column("key", no_wrap=True)
        table.add_column("action")
        table.add_column("where", style="dim", no_wrap=True)
        merged: dict[str, tuple[str, str]] = {}
        for owner, keys, desc in self._rows:
            merged.setdefault(desc + owner, (keys, f"{desc}\t{owner}"))
        for keys, rest in merged.values():
            desc, owner = rest.split("\t")
            table.add_row(Text(keys), desc, owner)
        with Vertical(classes="dialog help"):
            yield Label(f"Keys: {self._title}", classes="dialog-title")
            with VerticalScroll():
                yield Static(table)
            yield Label("Ctrl+P lists every action. Esc closes.", classes="dim")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
