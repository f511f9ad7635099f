"""Screen 6, Pipelines: the ``workbench.yaml`` (or ``dvc.yaml``) stages level by level, each with its
state and why.

States come from ``ws.workflows.dag_status()``: fresh, stale (with the reasons, e.g. ``param 'k'
changed 2 -> 3`` or ``upstream 'prepare' will re-run``), running (in a live ``repro``) and failed
(its last run failed). Enter opens the run that made the stage's current outputs.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from workbench.ui.data import StageRow
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.widgets.tables import fill_table

_MARK = {"fresh": "●", "stale": "○", "running": "▶", "failed": "✗"}
_STYLE = {"fresh": ("text-success", ""), "stale": ("text-warning", ""), "running": ("text-primary", ""),
          "failed": ("text-error", "bold")}


class PipelinesScreen(WorkbenchScreen):
    TITLE_TEXT = "Pipelines"
    RELOAD_SECONDS = 3.0
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "open_run", "Open run")]

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[StageRow] = []
        self._shown: list[StageRow] | None = None

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield DataTable(id="stages-table", cursor_type="row")
        yield Static("", id="stages-status", classes="status-line")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def reload(self, quiet: bool = False) -> None:
        self.load(self.data.stages, self._show)

    def _show(self, stages: list[StageRow]) -> None:
        ordered = sorted(stages, key=lambda s: s.level)  # stable: DAG order within a level
        if ordered == self._shown:
            return
        self.stages = self._shown = ordered
        lines: list[tuple[str | None, list[object]]] = []
        for stage in ordered:
            name = Text("  " * stage.level + ("└ " if stage.level else "") + stage.name)
            style = self.theme_style(*_STYLE.get(stage.state, ("", "")))
            state = Text(f"{_MARK.get(stage.state, '?')} {stage.state}", style=style)
            lines.append((stage.name, [name, state, ", ".join(stage.deps), (stage.run_id or "")[:12],
                                       stage.reason]))
        fill_table(self.query_one(DataTable), ("stage", "state", "needs", "run", "why"), lines)
        counts: dict[str, int] = {}
        for stage in ordered:
            counts[stage.state] = counts.get(stage.state, 0) + 1
        summary = " · ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        self.query_one("#stages-status", Static).update(
            f"{len(ordered)} stages: {summary}" if ordered
            else "No pipeline: declare stages in workbench.yaml (or dvc.yaml), then 'workbench repro'")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.stages) and self.stages[row].run_id:
            self.wb.open_run(str(self.stages[row].run_id))
