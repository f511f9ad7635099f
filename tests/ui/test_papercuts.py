"""Papercuts found in a day's use: Esc never quits, an empty filter says so, rate charts never go
below zero."""

from __future__ import annotations

import time

from textual.app import App, ComposeResult

from tests.ui.conftest import make_app, settle
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest
from workbench.ui.data import Series
from workbench.ui.widgets.metric_chart import Curve, MetricChart
from workbench.ui.widgets.runs_table import RunsTable

SIZE = (100, 30)


async def wait_for(pilot, check, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def test_escape_clears_the_filter_and_never_quits(demo_ws: Workspace) -> None:
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        await pilot.press("slash", *"epochs>=30", "enter")
        await wait_for(pilot, lambda: [r.name for r in table.view.rows] == ["sgd-a1e-3-long"], "the filter")
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(table.view.rows) == 8, "the filter to clear")
        assert app.is_running and type(app.screen).__name__ == "RunsScreen"
        assert app.screen.filter_expr == ""
        for _ in range(3):
            await pilot.press("escape")
        await settle(pilot, 0.1)
        assert app.is_running and type(app.screen).__name__ == "RunsScreen"
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "q to quit")
    assert app.return_code == 0


async def test_escape_goes_back_from_a_pushed_screen(demo_ws: Workspace) -> None:
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunDetailScreen", "the run detail")
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunsScreen", "back to Runs")
        assert app.is_running


async def test_a_filter_matching_nothing_says_so(demo_ws: Workspace) -> None:
    from textual.widgets import Static

    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"epochs>1000", "enter")
        status = app.screen.query_one("#runs-status", Static)
        await wait_for(pilot, lambda: "no run matches" in str(status.render()), "the empty-filter message")
        assert "no runs yet" not in str(status.render())


class _ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield MetricChart(id="chart")


async def test_a_flat_zero_rate_chart_has_no_negative_axis() -> None:
    app = _ChartApp()
    async with app.run_test(size=(60, 16)) as pilot:
        chart = app.query_one(MetricChart)
        zeros = Series("error_rate", [0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0], [])
        chart.show([Curve("errors %", zeros)], title="errors %", x_label="s", y_floor=0.0)
        await pilot.pause()
        drawn = chart.plt.build()
        assert "-" not in "".join(line.split("│")[0] for line in drawn.splitlines() if "│" in line)
        chart.show([Curve("errors %", zeros)], title="errors %", x_label="s")
        await pilot.pause()
        unpinned = chart.plt.build()
        assert "-" in "".join(line.split("│")[0] for line in unpinned.splitlines() if "│" in line), (
            "the check above would not see negative ticks")


async def test_archive_rename_and_delete_runs_from_the_runs_screen(demo_ws: Workspace) -> None:
    import sys

    from workbench.ui.screens.dialogs import ConfirmDialog, PromptDialog

    scratch = demo_ws.runs.execute(RunRequest([sys.executable, "-c", "print('loss: 1')"], name="scratch")).id
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: len(table.view.rows) == 9, "the runs")
        await wait_for(pilot, lambda: table.current_run is not None and table.current_run.id == scratch,
                       "the newest run under the cursor")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the rename prompt")
        await pilot.press(*["backspace"] * 40, *"kept-name", "enter")
        await wait_for(pilot, lambda: demo_ws.runs.get(scratch).name == "kept-name", "the rename")
        await pilot.press("a")
        await wait_for(pilot, lambda: len(table.view.rows) == 8, "the archived run to leave the list")
        assert "archived" in demo_ws.runs.get(scratch).tags
        await pilot.press("A")
        await wait_for(pilot, lambda: len(table.view.rows) == 9, "archived runs to show")
        await pilot.press("g")
        await wait_for(pilot, lambda: table.current_run is not None and table.current_run.id == scratch,
                       "the archived run under the cursor")
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the delete confirmation")
        body = str(app.screen._body)
        assert "Deletes 1 run(s)" in body and scratch in body
        await pilot.press("y")
        await wait_for(pilot, lambda: all(r.id != scratch for r in demo_ws.runs.list()), "the delete")
        await wait_for(pilot, lambda: len(table.view.rows) == 8, "the table to drop the run")
        modelled = next(m.run_id for m in demo_ws.runs.models()[0].version_list)
        await wait_for(pilot, lambda: table.current_run is not None, "a run under the cursor")
        table.marked.add(modelled)
        await pilot.press("delete")
        await wait_for(pilot, lambda: any(f"kept {modelled}" in str(n.message) for n in app._notifications),
                       "the refusal of a run that produced a model")
        assert demo_ws.runs.get(modelled).id == modelled


async def test_status_name_and_primary_metric_stay_visible_at_120_columns(demo_ws: Workspace) -> None:
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: len(table.view.rows) == 8, "the runs")
        frozen = [c.label for c in table.view.columns[:table.view.frozen]]
        assert frozen[:2] == ["status", "name"] and len(frozen) == 3
        primary = frozen[2]
        assert table.view.columns[2].kind == "metric"
        assert table.virtual_size.width > 120, "the demo's params must overflow 120 columns for this test"

        def header() -> str:
            return "".join(seg.text for seg in table.render_line(0))

        assert primary in header()
        for _ in range(len(table.view.columns)):
            await pilot.press("l")
        await settle(pilot, 0.1)
        assert table.scroll_offset.x > 0
        shown = header()
        assert shown.split()[:3] == ["status", "name", primary], shown
        last = table.view.columns[-1].label
        assert last[:6] in shown, "the last column scrolled into view beside the frozen ones"


async def test_history_folds_run_snapshots_under_their_run(demo_ws: Workspace) -> None:
    import sys

    from workbench.ui.screens.history import HistoryScreen

    (demo_ws.root / "notes.txt").write_text("an edit the next run starts from\n")
    edited = demo_ws.runs.execute([sys.executable, "-c", "open('out.txt', 'w').write('x')"])
    assert demo_ws.versions.get(edited.snapshot_before or "").kind == "run-before"
    app = make_app(demo_ws, start="history")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        await wait_for(pilot, lambda: bool(screen.snapshots), "the snapshots")
        kinds = [s.kind for s in screen.snapshots]
        assert "run-before" not in kinds and "run-after" not in kinds and "auto" not in kinds
        run_rows = [s for s in screen.snapshots if s.kind == "run"]
        runs = demo_ws.runs.list()
        assert {s.id for s in run_rows} == {r.snapshot_after for r in runs if r.snapshot_after}
        assert all(s.message.startswith("run ") for s in run_rows)
        folded = len(screen.snapshots)
        await pilot.press("a")
        await wait_for(pilot, lambda: len(screen.snapshots) > folded, "the unfolded history")
        assert "run-before" in {s.kind for s in screen.snapshots}
        await pilot.press("a")
        await wait_for(pilot, lambda: len(screen.snapshots) == folded, "the folded history again")


def test_the_run_summary_says_the_subfolder_it_ran_in(ws: Workspace) -> None:
    import sys

    from rich.console import Console

    from workbench.ui.rows import list_row
    from workbench.ui.screens.run_detail import summary_table

    (ws.root / "src").mkdir()
    info = ws.runs.execute(RunRequest((sys.executable, "-c", "print('x')"), workdir="src"))
    console = Console(width=100, record=True)
    console.print(summary_table(list_row(info)))
    import re

    assert re.search(r"^in +src/ *$", console.export_text(), re.MULTILINE)
