"""Pilot tests: every screen's main actions on the real demo project (real runs, real snapshots)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.ui.conftest import make_app, settle, wait_for
from workbench.core.workspace import Workspace
from workbench.ui.screens import runs as runs_screen
from workbench.ui.screens.compare import CompareScreen
from workbench.ui.screens.dialogs import ConfirmDialog
from workbench.ui.screens.help import HelpScreen
from workbench.ui.screens.run_detail import RunDetailScreen
from workbench.ui.widgets.log_tail import LogTail
from workbench.ui.widgets.metric_chart import MetricChart
from workbench.ui.widgets.runs_table import RunsTable

SIZE = (100, 30)


async def test_number_keys_reach_every_screen_and_help_lists_bindings(demo_ws: Workspace) -> None:
    app = make_app(demo_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, name in (("2", "HistoryScreen"), ("3", "RunsScreen"), ("4", "ModelsScreen"),
                          ("5", "DeploymentsScreen"), ("6", "PipelinesScreen"), ("7", "MonitorScreen"),
                          ("1", "OverviewScreen")):
            await pilot.press(key)
            await settle(pilot, 0.1)
            assert type(app.screen).__name__ == name
        await pilot.press("3")
        await settle(pilot, 0.1)
        await pilot.press("question_mark")
        await settle(pilot, 0.1)
        assert isinstance(app.screen, HelpScreen)
        descriptions = {row[2] for row in app.screen._rows}
        assert {"Filter", "Compare", "Mark", "Sort", "Back/Quit", "Help"} <= descriptions
        await pilot.press("escape")
        await pilot.press("q")
        await settle(pilot, 0.1)
    assert app.return_code == 0


async def test_runs_filter_and_sort(demo_ws: Workspace) -> None:
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        assert len(table.view.rows) == 8
        await pilot.press("slash", *"epochs>=30", "enter")
        await settle(pilot)
        assert [r.name for r in table.view.rows] == ["sgd-a1e-3-long"]
        await pilot.press("slash", *["backspace"] * 20, "enter")
        await settle(pilot)
        assert len(table.view.rows) == 8
        await pilot.press("l")  # cursor to the "name" column
        assert table.current_column is not None and table.current_column.key == "name"
        await pilot.press("s")
        await settle(pilot)
        names = [r.name for r in table.view.rows]
        assert names == sorted(names)
        await pilot.press("s")
        await settle(pilot)
        assert [r.name for r in table.view.rows] == sorted(names, reverse=True)


async def test_typing_a_filter_narrows_the_runs_as_you_type(demo_ws: Workspace) -> None:
    """No Enter: each key re-filters the table; a half-typed term keeps the last result; Esc
    goes back to the filter applied before, Enter keeps what was typed."""
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one(RunsTable)
        assert len(table.view.rows) == 8

        def names() -> list[str]:
            return [r.name for r in table.view.rows]

        await pilot.press("slash", *"name~sgd")
        await wait_for(pilot, lambda: len(table.view.rows) == 4, "4 sgd runs while typing")
        assert all("sgd" in n for n in names())
        await pilot.press(*" and epochs>")  # half typed: the sgd runs stay
        await wait_for(pilot, lambda: screen.typed == "name~sgd and epochs>", "the typed text")  # type: ignore[attr-defined]
        await settle(pilot)
        assert len(table.view.rows) == 4
        await pilot.press(*"=30")
        await wait_for(pilot, lambda: names() == ["sgd-a1e-3-long"], "the narrowed table")
        assert screen.filter_expr == ""  # type: ignore[attr-defined]
        await pilot.press("escape")  # not applied: back to every run
        await wait_for(pilot, lambda: len(table.view.rows) == 8, "all runs after Esc")
        await pilot.press("slash", *"epochs>=30", "enter")
        await wait_for(pilot, lambda: names() == ["sgd-a1e-3-long"], "the applied filter")
        assert screen.filter_expr == "epochs>=30"  # type: ignore[attr-defined]


@asynccontextmanager
async def _runs_screen(ws: Workspace) -> AsyncIterator[tuple[Pilot[int], runs_screen.RunsScreen, RunsTable]]:
    """The app on the Runs screen, loaded: (pilot, screen, its table)."""
    app = make_app(ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, runs_screen.RunsScreen)
        yield pilot, screen, screen.query_one(RunsTable)


@pytest.mark.parametrize("inline_rows", [runs_screen.INLINE_ROWS, 0], ids=["ui-thread", "worker"])
async def test_refiltering_loaded_runs_inline_or_in_a_worker_agrees(demo_ws: Workspace, inline_rows: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A few runs are re-filtered on the UI thread (no worker), many in a worker; both show the same
    rows, and Enter on a filter already shown as it was typed does no work again."""
    monkeypatch.setattr(runs_screen, "INLINE_ROWS", inline_rows)
    # no periodic poll (a worker of the same group) while this counts the re-filter's workers: under
    # load, typing the filter can take longer than the poll's 3 s
    monkeypatch.setattr(runs_screen.RunsScreen, "RELOAD_SECONDS", 3600.0)
    async with _runs_screen(demo_ws) as (pilot, screen, table):
        loads: list[str] = []
        real_load = screen.load
        monkeypatch.setattr(screen, "load", lambda fn, done, **kw: (loads.append(kw.get("group", "")),
                                                                      real_load(fn, done, **kw)))
        await pilot.press("slash", *"epochs>=30")
        await wait_for(pilot, lambda: [r.name for r in table.view.rows] == ["sgd-a1e-3-long"], "typed filter")
        assert (loads == []) == (inline_rows > 0), loads
        shown = screen.generation
        await pilot.press("enter")
        await settle(pilot)
        assert screen.filter_expr == "epochs>=30" and screen.generation == shown
        assert "filter: epochs>=30" in str(screen.query_one("#runs-status").render())


async def test_a_key_that_leaves_the_rows_as_shown_keeps_the_view(demo_ws: Workspace) -> None:
    """A half-typed term, or a filter every shown run passes, builds no new view; a layout change
    (a hidden column) still does, whatever the filter."""
    async with _runs_screen(demo_ws) as (pilot, screen, table):
        await pilot.press("slash", *"name~sgd")
        await wait_for(pilot, lambda: len(table.view.rows) == 4, "4 sgd runs while typing")
        view, shown = table.view, screen.generation
        await pilot.press(*" and epochs>")  # half typed
        await wait_for(pilot, lambda: screen.generation > shown, "the half-typed text applied")
        assert table.view is view and len(table.view.rows) == 4
        await pilot.press("0")  # epochs>0: every sgd run passes
        await wait_for(pilot, lambda: screen.shown_expr == "name~sgd and epochs>0", "the full filter")
        assert table.view is view
        await pilot.press("enter", "l", "l", "x")  # hide the column under the cursor (not "name")
        await wait_for(pilot, lambda: table.view is not view, "a new view")
        assert len(table.view.rows) == 4 and screen.hidden


async def test_bad_filter_is_a_notification_not_a_crash(demo_ws: Workspace) -> None:
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"alpha >>> (", "enter")
        await settle(pilot)
        await wait_for(pilot, lambda: any(n.severity == "error" for n in app._notifications),
                       "the error notification")
        assert type(app.screen).__name__ == "RunsScreen"


async def test_mark_two_runs_and_compare(demo_ws: Workspace) -> None:
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"name~sgd", "enter")
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        assert len(table.view.rows) == 4
        await pilot.press("space", "space")
        assert len(table.marked) == 2
        await pilot.press("c")
        await settle(pilot, 0.5)
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen)
                       and len(app.screen.query_one(MetricChart).curves) == 2, "two curves compared")
        chart = app.screen.query_one(MetricChart)
        assert all(len(c.series.values) >= 15 for c in chart.curves)
        await pilot.press("q")
        await settle(pilot, 0.1)
        assert type(app.screen).__name__ == "RunsScreen"


async def test_drill_into_a_run_shows_metrics_log_and_provenance(demo_ws: Workspace) -> None:
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"name==sgd-a1e-3", "enter")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot, 0.5)

        def loaded() -> bool:
            screen = app.screen
            return (isinstance(screen, RunDetailScreen) and screen.series is not None
                    and screen.provenance is not None
                    and any("epoch=15" in line for line in screen.query_one(LogTail).lines))

        await wait_for(pilot, loaded, "the run detail to load")
        screen = app.screen
        assert isinstance(screen, RunDetailScreen)
        assert screen.run is not None and screen.run.name == "sgd-a1e-3"
        assert "val_acc" in screen.keys
        assert screen.series is not None and len(screen.series.values) == 15
        assert any("epoch=15" in line for line in screen.query_one(LogTail).lines)
        assert screen.provenance is not None
        inputs = {p: producer for p, _, producer in screen.provenance.inputs}
        assert inputs["data/digits.csv"] == "demo00000001"  # written by the prepare run
        assert any(m.startswith("digits:") for m in screen.provenance.models)


async def test_restore_one_file_from_history(demo_ws: Workspace, demo_root: Path) -> None:
    train = demo_root / "train.py"
    original = train.read_text()
    train.write_text("# broken\n")
    app = make_app(demo_ws, start="history")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.selected is not None and screen.selected.message == "longer default training"
        assert {c.path for c in screen.changes} >= {"train.py", "NOTES.md"}
        screen._show_file("train.py")
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirm dialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: train.read_text() == original, "train.py to be restored")
    assert train.read_text() == original


async def test_theme_switch_is_remembered(demo_ws: Workspace, demo_root: Path) -> None:
    app = make_app(demo_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == "workbench-dark"
        assert {"workbench-dark", "workbench-light", "textual-dark", "nord"} <= set(app.available_themes)
        app.theme = "workbench-light"
        await settle(pilot)
    assert 'theme = "workbench-light"' in (demo_root / ".workbench" / "config.toml").read_text()
    again = Workspace.open(demo_root)
    app2 = make_app(again)
    async with app2.run_test(size=SIZE) as pilot:
        assert app2.theme == "workbench-light"
    again.close()


async def test_palette_lists_screens_actions_and_themes(demo_ws: Workspace) -> None:
    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Go to History (2)" in titles
        assert "Theme: workbench-light" in titles
        assert any(t.startswith("Filter") for t in titles)
        assert any(t.startswith("Compare") for t in titles)


SLOW_SCRIPT = """
import time, pathlib
print("step=1 loss=0.9", flush=True)
while not pathlib.Path("go").exists():
    time.sleep(0.05)
print("step=2 loss=0.5", flush=True)
while not pathlib.Path("stop").exists():
    time.sleep(0.05)
"""


async def test_live_update_when_a_running_run_logs_a_metric(demo_ws: Workspace, demo_root: Path) -> None:
    (demo_root / "slow.py").write_text(SLOW_SCRIPT)
    job = subprocess.Popen([sys.executable, "-m", "workbench", "run", "-n", "live", "--", sys.executable,
                            "slow.py"], cwd=demo_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        run_id = None
        while time.monotonic() < deadline and run_id is None:
            running = [r for r in demo_ws.runs.list() if r.name == "live" and "loss" in r.metrics]
            run_id = running[0].id if running else None
            time.sleep(0.1)
        assert run_id, "the run never logged its first metric"
        app = make_app(demo_ws)
        async with app.run_test(size=SIZE) as pilot:
            app.open_run(run_id)
            await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen), "the run detail")
            screen = app.screen
            assert isinstance(screen, RunDetailScreen)
            await wait_for(pilot, lambda: screen.series is not None, "the first series")
            assert screen.series is not None and screen.series.values == [0.9]
            (demo_root / "go").write_text("")
            await wait_for(pilot, lambda: screen.series is not None and len(screen.series.values) == 2,
                           "the second point")
            assert screen.series is not None and screen.series.values == [0.9, 0.5]
            await wait_for(pilot, lambda: screen.query_one(MetricChart).curves[0].series.values == [0.9, 0.5],
                           "the chart to show both points")
            (demo_root / "stop").write_text("")
            # the run ends: the screen notices and the log stops following
            await wait_for(pilot, lambda: screen.run is not None and screen.run.status == "succeeded",
                           "the run to end")
    finally:
        (demo_root / "go").write_text("")
        (demo_root / "stop").write_text("")
        job.wait(60)


async def test_keys_typed_fast_after_slash_reach_the_filter(demo_ws: Workspace) -> None:
    """All keys queued at once, as a terminal delivers a fast typist's burst (no pause after '/')."""
    from textual import events

    app = make_app(demo_ws, start="runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        names = {">": "greater_than_sign", "=": "equals_sign"}
        burst = [("slash", "/"), *[(names.get(c, c), c) for c in "epochs>=30"], ("enter", "\r")]
        for key, char in burst:
            app.post_message(events.Key(key, char))
        await settle(pilot)
        screen = app.screen
        assert screen.filter_expr == "epochs>=30"  # type: ignore[attr-defined]
        assert [r.name for r in screen.query_one(RunsTable).view.rows] == ["sgd-a1e-3-long"]
