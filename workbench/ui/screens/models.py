"""Screen 4, Models: the registry's names, versions and aliases, and the run each came from.

Enter opens the producing run, ``a`` sets an alias on the selected version (for example
``production``), ``d`` deploys it (with the deploy service), then shows the Deployments screen.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from workbench.ui.data import ModelRow
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.screens.dialogs import ConfirmDialog, PromptDialog
from workbench.ui.widgets.tables import fill_table


class ModelsScreen(WorkbenchScreen):
    TITLE_TEXT = "Models"
    RELOAD_SECONDS = 5.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_run", "Open run"),
        Binding("a", "alias", "Set alias"),
        Binding("d", "deploy", "Deploy"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[ModelRow] = []

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield DataTable(id="models-table", cursor_type="row")
        yield Static("", id="models-status", classes="status-line")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def reload(self, quiet: bool = False) -> None:
        self.load(self.data.models, self._show)

    def _show(self, rows: list[ModelRow]) -> None:
        if rows == self.rows:
            return
        self.rows = rows
        lines: list[tuple[str | None, list[object]]] = [
            (f"{row.name}:{row.version}",
             [row.name, row.version, ", ".join(row.aliases), row.framework, (row.run_id or "")[:8], row.path])
            for row in rows]
        headers = ("name", "version", "aliases", "framework", "run", "path")
        fill_table(self.query_one(DataTable), headers, lines)
        names = len({r.name for r in rows})
        self.query_one("#models-status", Static).update(f"{names} models · {len(rows)} versions")

    @property
    def current(self) -> ModelRow | None:
        table = self.query_one(DataTable)
        return self.rows[table.cursor_row] if 0 <= table.cursor_row < len(self.rows) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        if self.current and self.current.run_id:
            self.wb.open_run(self.current.run_id)

    def action_alias(self) -> None:
        model = self.current
        if model is None:
            return

        def chosen(alias: str | None) -> None:
            if alias:
                def job() -> str:
                    self.data.set_alias(model.name, model.version, alias)
                    return f"{model.name}@{alias} -> version {model.version}"

                self.load(job, self._done)

        self.app.push_screen(PromptDialog(f"Alias for {model.name}:{model.version}", "production"), chosen)

    def action_deploy(self) -> None:
        model = self.current
        if model is None:
            return
        spec = f"{model.name}:{model.version}"

        def answered(yes: bool | None) -> None:
            if yes:
                self.wb.deploy_model(spec)

        self.app.push_screen(ConfirmDialog(f"Deploy {spec}?", f"Serve model {spec} from run "
                                           f"{(model.run_id or '?')[:12]} with the project's deploy "
                                           "defaults (.workbench/config.toml [deploy]); a deployment of "
                                           "the same name gets a rolling update to this version.",
                                           yes="Deploy"), answered)

    def _done(self, text: str) -> None:
        self.notify(text)
        self.rows = []
        self.reload()
