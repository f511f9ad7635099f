"""Managing runs from the Runs screen: rename (``e``), tag (``t``), archive (``a``), show archived
(``A``) and delete (Delete key, after a confirmation that lists what goes).

Each acts on the marked runs, or on the run under the cursor when none is marked, and calls the
tracking service (``ws.runs.rename/tag/archive/plan_removal/remove``) in a thread worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType

from workbench.ui.screens.dialogs import ConfirmDialog, PromptDialog
from workbench.ui.widgets.runs_table import RunsTable

if TYPE_CHECKING:
    from workbench.tracking.manage import RemovalPlan
    from workbench.tracking.service import TrackingService
    from workbench.ui.rows import RunRow
    from workbench.ui.screens.base import WorkbenchScreen

    _Screen = WorkbenchScreen
else:
    _Screen = object

ARCHIVED_TAG = "archived"


class RunsManageMixin(_Screen):
    """Bindings and actions that change runs' labels or delete runs (mixed into RunsScreen)."""

    MANAGE_BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "rename", "Rename", show=False),
        Binding("t", "tag", "Tag", show=False),
        Binding("a", "archive", "Archive", show=False),
        Binding("A", "toggle_archived", "Show archived", show=False),
        Binding("delete", "remove", "Delete runs", show=False),
    ]
    show_archived: bool = False

    # provided by RunsScreen
    rows: list[RunRow]

    def _targets(self) -> list[RunRow]:
        table = self.query_one(RunsTable)
        by_id = {r.id: r for r in self.rows}
        if table.marked:
            return [by_id[i] for i in sorted(table.marked) if i in by_id]
        current = table.current_run
        return [current] if current is not None and current.group is None else []

    def _changed(self, _: object = None) -> None:
        self.query_one(RunsTable).marked.clear()
        self.reload(quiet=False)

    def _service(self) -> TrackingService:
        return self.data.ws.runs

    def action_rename(self) -> None:
        targets = self._targets()
        if len(targets) != 1:
            self.notify("put the cursor on one run (and unmark the others) to rename it", severity="warning")
            return
        run = targets[0]

        def done(name: str | None) -> None:
            if name is not None:
                self.load(lambda: self._service().rename(run.id, name), self._changed, group="managed")

        self.app.push_screen(PromptDialog(f"Rename run {run.short_id}", "new name", run.name), done)

    def action_tag(self) -> None:
        targets = self._targets()
        if not targets:
            return

        def done(text: str | None) -> None:
            if not text:
                return
            from workbench.tracking.manage import parse_tags

            pairs = text.split()
            remove = [p[1:] for p in pairs if p.startswith("-")]
            tags = parse_tags([p for p in pairs if not p.startswith("-")])
            service = self._service()
            self.load(lambda: [service.tag(r.id, tags, remove) for r in targets], self._changed,
                       group="managed")

        self.app.push_screen(PromptDialog(
            f"Tag {len(targets)} run(s)", "KEY=VALUE ... (-KEY removes a tag)"), done)

    def action_archive(self) -> None:
        targets = self._targets()
        if not targets:
            return
        undo = all(ARCHIVED_TAG in r.tags for r in targets)
        service = self._service()
        self.load(lambda: service.archive([r.id for r in targets], undo=undo), self._changed,
                   group="managed")
        verb = "unarchived" if undo else "archived (A shows archived runs)"
        self.notify(f"{len(targets)} run(s) {verb}")

    def action_toggle_archived(self) -> None:
        self.show_archived = not self.show_archived
        self.notify("archived runs shown" if self.show_archived else "archived runs hidden")
        self.reload(quiet=False)

    def action_remove(self) -> None:
        targets = self._targets()
        if not targets:
            return
        service = self._service()

        def plan() -> RemovalPlan:
            return service.plan_removal([r.id for r in targets])

        self.load(plan, self._confirm_removal)

    def _confirm_removal(self, plan: RemovalPlan) -> None:
        lines = [f"kept {run}: {reason}" for run, reason in plan.refused]
        if not plan.runs:
            self.notify("; ".join(lines) or "nothing to delete", severity="warning")
            return
        lines.insert(0, f"Deletes {len(plan.runs)} run(s) for good: {', '.join(plan.runs)}\n"
                        f"with {plan.points:,} metric points, {plan.log_lines:,} log lines, {plan.files:,} "
                        f"file records and {len(plan.snapshots)} run snapshot(s) only they pinned.")
        service = self._service()

        def answered(yes: bool | None) -> None:
            if yes:
                self.load(lambda: service.remove(plan), self._changed, group="managed")

        self.app.push_screen(ConfirmDialog("Delete runs?", "\n".join(lines), yes="Delete"), answered)
