"""Screen 2, History: snapshots over time, the files each changed, their diffs, and restore.

Left, the snapshots: each run's pair folds into one ``run`` row (its outputs) and the watcher's auto
snapshots and the pre-run snapshots fold away (``a`` unfolds them all); right, the files the
selected snapshot changed; below, the selected file's diff (unified for text, rows and columns for
CSV, size and hash for binary). ``r`` restores the whole snapshot, ``f`` only the selected file,
each after a confirmation that lists what will be overwritten.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from workbench import format as fmt
from workbench.ui.data import ChangeRow, SnapshotRow
from workbench.ui.screens.base import WorkbenchScreen
from workbench.ui.screens.dialogs import ConfirmDialog
from workbench.ui.widgets.diff_view import DiffView

_ICON = {"added": "+", "modified": "~", "deleted": "-"}


class HistoryScreen(WorkbenchScreen):
    TITLE_TEXT = "History"
    RELOAD_SECONDS = 5.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "toggle_auto", "Fold/unfold"),
        Binding("r", "restore_snapshot", "Restore all"),
        Binding("f", "restore_file", "Restore file"),
        Binding("tab", "app.focus_next", "Next pane", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.include_auto = False
        """Unfolded: every snapshot as it is; folded (default): see ``UiData.history``."""
        self.snapshots: list[SnapshotRow] = []
        self.changes: list[ChangeRow] = []
        self.selected: SnapshotRow | None = None
        self.selected_path: str | None = None

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        with Horizontal(id="history-top"):
            with Vertical(classes="panel", id="history-snapshots"):
                yield Static("Snapshots", classes="panel-title", id="snapshots-title")
                yield DataTable(id="snapshot-table", cursor_type="row")
            with Vertical(classes="panel", id="history-files"):
                yield Static("Changed files", classes="panel-title", id="files-title")
                yield DataTable(id="files-table", cursor_type="row")
        yield DiffView(id="history-diff", classes="panel")
        yield self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#snapshot-table", DataTable).add_columns("id", "when", "kind", "files", "message")
        self.query_one("#files-table", DataTable).add_columns("", "path", "size")
        self.query_one("#snapshot-table").focus()

    def reload(self, quiet: bool = False) -> None:
        include = self.include_auto
        self.load(lambda: self.data.history(unfold=include, limit=500), self._show_snapshots)

    def _show_snapshots(self, value: tuple[list[SnapshotRow], int]) -> None:
        rows, folded = value
        if [r.id for r in rows] == [r.id for r in self.snapshots]:
            return
        self.snapshots = rows
        table = self.query_one("#snapshot-table", DataTable)
        keep = self.selected.id if self.selected else None
        table.clear()
        for snap in rows:
            table.add_row(snap.id[:8], fmt.age(snap.created, self.wb.clock()), snap.kind, str(snap.files),
                          snap.message[:40], key=snap.id)
        title = f"Snapshots ({len(rows)}" + (f", {folded} auto/pre-run folded: a unfolds)" if folded else ")")
        self.query_one("#snapshots-title", Static).update(title)
        ids = [r.id for r in rows]
        if keep in ids:
            table.move_cursor(row=ids.index(keep))
        elif rows:
            self._select(rows[0])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key else None
        if event.data_table.id == "snapshot-table":
            snap = next((s for s in self.snapshots if s.id == key), None)
            if snap is not None and snap is not self.selected:
                self._select(snap)
        elif event.data_table.id == "files-table" and key:
            self._show_file(str(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "snapshot-table":
            self.query_one("#files-table").focus()
        elif event.data_table.id == "files-table":
            self.query_one(DiffView).focus()

    def _select(self, snap: SnapshotRow) -> None:
        self.selected = snap
        self.selected_path = None
        self.load(lambda: (snap.id, self.data.changes(snap)), self._show_changes)

    def _show_changes(self, value: tuple[str, list[ChangeRow]]) -> None:
        snap_id, changes = value
        if not self.selected or snap_id != self.selected.id:
            return
        self.changes = changes
        table = self.query_one("#files-table", DataTable)
        rows = [(_ICON.get(c.change, "?"), c.path, fmt.size(c.size), c.path) for c in changes[:5000]]
        # Widths set with the rows: auto widths are measured on the table's next idle, and a frame
        # drawn in between (a loaded machine) could keep a header cached at the old widths.
        table.clear(columns=True)
        for index, label in enumerate(("", "path", "size")):
            table.add_column(label, width=max([cell_len(label), *(cell_len(r[index]) for r in rows)]))
        for icon, path, size, key in rows:
            table.add_row(icon, path, size, key=key)
        self.query_one("#files-title", Static).update(
            f"Changed in {snap_id[:8]} ({len(changes)})")
        if changes:
            self._show_file(changes[0].path)
        else:
            self.query_one(DiffView).show("info", "no changes in this snapshot")

    def _show_file(self, path: str) -> None:
        if self.selected is None or path == self.selected_path:
            return
        self.selected_path = path
        snap = self.selected
        change = next((c for c in self.changes if c.path == path), None)
        if change is not None and change.change == "deleted":
            self.query_one(DiffView).show("info", f"{path} was deleted ({fmt.size(change.old_size)})")
            return
        self.load(lambda: self.data.file_diff(snap.parent, snap.id, path), self._show_diff)

    def _show_diff(self, value: tuple[str, str]) -> None:
        self.query_one(DiffView).show(*value)

    # -- actions --------------------------------------------------------------------------------------
    def action_toggle_auto(self) -> None:
        self.include_auto = not self.include_auto
        self.snapshots = []
        self.reload()

    def action_restore_snapshot(self) -> None:
        if self.selected:
            self._confirm_restore(self.selected.id, None)

    def action_restore_file(self) -> None:
        if self.selected and self.selected_path:
            self._confirm_restore(self.selected.id, [self.selected_path])

    def _confirm_restore(self, ref: str, paths: list[str] | None) -> None:
        def preview() -> tuple[str, list[str] | None, list[ChangeRow]]:
            return ref, paths, self.data.restore_preview(ref, paths)

        self.load(preview, self._ask_restore)

    def _ask_restore(self, value: tuple[str, list[str] | None, list[ChangeRow]]) -> None:
        ref, paths, changes = value
        what = f"{paths[0]} from snapshot {ref[:8]}" if paths else f"the whole project to snapshot {ref[:8]}"
        if not changes:
            self.notify(f"Nothing to restore: the working copy already matches ({what})")
            return
        verbs = {"added": "delete (not in snapshot)", "deleted": "recreate", "modified": "overwrite"}
        lines = [f"{verbs.get(c.change, c.change):<24} {c.path}" for c in changes[:40]]
        if len(changes) > 40:
            lines.append(f"… and {len(changes) - 40} more")
        body = "\n".join(lines) + "\n\nUnsaved changes are first kept in a safety snapshot."

        def answered(yes: bool | None) -> None:
            if yes:
                self.load(lambda: self.data.restore(ref, paths), self._restored)

        self.app.push_screen(ConfirmDialog(f"Restore {what}?", body, yes="Restore"), answered)

    def _restored(self, text: str) -> None:
        self.notify(text, title="Restore")
        self.snapshots = []
        self.reload()
