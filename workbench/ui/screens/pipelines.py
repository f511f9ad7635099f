"""Screen 6, Pipelines: the workflow's stages in dependency order with their state and why."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Static

from workbench.ui.data import StageRow
from workbench.ui.screens.base import WorkbenchScreen

_MARK = {"fresh": "●", "stale": "○", "running": "▶", "failed": "✗", "skipped": "·", "cached": "●"}


def layered(stages: list[StageRow]) -> list[tuple[int, StageRow]]:
    """Stages with their depth in the DAG (0 for stages without upstream), in topological order."""
    by_name = {s.name: s for s in stages}
    depth: dict[str, int] = {}

    def visit(name: str, trail: frozenset[str]) -> int:
        if name in depth:
            return depth[name]
        if name in trail or name not in by_name:
            return 0
        d = 1 + max((visit(u, trail | {name}) for u in by_name[name].deps), default=-1)
        depth[name] = d
        return d

    for stage in stages:
        visit(stage.name, frozenset())
    return sorted(((depth[s.name], s) for s in stages), key=lambda p: p[0])


class PipelinesScreen(WorkbenchScreen):
    TITLE_TEXT = "Pipelines"
    RELOAD_SECONDS = 3.0
    BINDINGS: ClassVar[list[BindingType]] = []

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield DataTable(id="stages-table", cursor_type="row")
        yield Static("", id="stages-status", classes="status-line")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("stage", "state", "needs", "why")
        super().on_mount()

    def reload(self, quiet: bool = False) -> None:
        self.query_data("stages", self.data.stages)

    def on_loaded_stages(self, stages: list[StageRow]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for depth, stage in layered(stages):
            name = Text("  " * depth + ("└ " if depth else "") + stage.name)
            table.add_row(name, f"{_MARK.get(stage.state, '?')} {stage.state}", ", ".join(stage.deps),
                          stage.reason)
        self.query_one("#stages-status", Static).update(
            f"{len(stages)} stages" if stages else "No pipeline: declare stages in workbench.yaml")
