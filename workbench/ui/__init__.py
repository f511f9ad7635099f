"""The Textual workbench (``workbench ui``). Imported only by the ``ui`` and ``demo`` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.core.workspace import Workspace


def run_app(ws: Workspace, *, start: str = "overview", watch: bool = True) -> None:
    """Open the TUI on ``ws`` and block until the user quits."""
    from workbench.ui.app import WorkbenchApp

    WorkbenchApp(ws, start=start, watch=watch).run()
