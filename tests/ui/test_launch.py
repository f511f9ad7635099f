"""The launch dialog end to end: a real ``workbench run`` process started from the TUI."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from textual.widgets import Checkbox, Input

from tests.ui.conftest import make_app, settle
from workbench.core.workspace import Workspace
from workbench.ui.screens.launch import LaunchDialog, LaunchScreen
from workbench.ui.screens.run_detail import RunDetailScreen
from workbench.ui.widgets.log_tail import LogTail

QUICK = """
import pathlib, time
for step in range(1, 4):
    print(f"step={step} loss={1 / step:.3f}", flush=True)
    if step == 1:
        while not pathlib.Path("go").exists():
            time.sleep(0.05)
"""


async def wait_for(pilot, check, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


async def open_dialog(app, pilot, command: str) -> LaunchDialog:  # type: ignore[no-untyped-def]
    """Press n on a settled app; the launch dialog with ``command`` typed in."""
    await settle(pilot)
    await pilot.press("n")
    await settle(pilot, 0.1)
    dialog = app.screen
    assert isinstance(dialog, LaunchDialog)
    dialog.query_one("#launch-command", Input).value = command
    return dialog


async def test_launch_streams_at_once_and_the_run_outlives_the_tui(ws: Workspace) -> None:
    (ws.root / "quick.py").write_text(QUICK)
    try:
        app = make_app(ws, start="runs")
        async with app.run_test(size=(110, 30)) as pilot:
            await settle(pilot)
            await pilot.press("n")
            await settle(pilot, 0.1)
            dialog = app.screen
            assert isinstance(dialog, LaunchDialog)
            dialog.query_one("#launch-command").value = f"{sys.executable} quick.py"  # type: ignore[attr-defined]
            await pilot.press("tab", *"quick", "enter")
            await pilot.pause(0.1)
            screen = app.screen
            assert isinstance(screen, LaunchScreen)
            await wait_for(pilot, lambda: screen.run is not None)
            assert screen.run is not None
            run_id = screen.run.id
            # the first line streams while the run waits for "go": live, not after the end
            await wait_for(pilot, lambda: any("step=1" in line for line in screen.query_one(LogTail).lines))
            assert ws.runs.get(run_id).status == "running"
            assert ws.runs.get(run_id).name == "quick"
            assert screen.launched is not None
            pid = screen.launched.process.pid
            assert pid != os.getpid() and os.getsid(pid) == pid  # its own process, its own session
            # the Runs screen lists it at once
            await pilot.press("escape")
            await settle(pilot)
            assert run_id in [r.id for r in app.screen.rows]  # type: ignore[attr-defined]
    except BaseException:
        (ws.root / "go").write_text("")  # never leave the launched run waiting
        raise
    # the TUI has quit; the run goes on and finishes
    (ws.root / "go").write_text("")
    deadline = time.monotonic() + 60
    while ws.runs.get(run_id).status == "running":
        assert time.monotonic() < deadline, "the launched run never ended"
        time.sleep(0.1)
    run = ws.runs.get(run_id)
    assert run.status == "succeeded"
    assert [round(v, 3) for v in ws.runs.metric_series(run_id, "loss").values] == [1.0, 0.5, 0.333]


async def test_launch_then_open_the_finished_run(ws: Workspace) -> None:
    (ws.root / "quick.py").write_text(QUICK)
    (ws.root / "go").write_text("")
    app = make_app(ws)
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot, 0.1)
        app.screen.query_one("#launch-command").value = f"{sys.executable} quick.py"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        # A quick run can be found already finished; its log lines arrive with the next flush.
        await wait_for(pilot, lambda: screen.run is not None and screen.run.status == "succeeded"
                       and any("step=3" in line for line in screen.query_one(LogTail).lines))
        await pilot.press("enter")
        await settle(pilot, 0.5)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        assert detail.series is not None and len(detail.series.values) == 3


async def test_a_command_that_cannot_start_is_reported(ws: Workspace, project_dir: Path) -> None:
    app = make_app(ws)
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot, 0.1)
        app.screen.query_one("#launch-command").value = "no-such-command-wb"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        await wait_for(pilot, lambda: screen.error is not None)
        assert screen.error is not None and "no-such-command-wb" in screen.error
        assert any(n.severity == "error" for n in app._notifications)


async def test_dialog_checks_gpus(ws: Workspace) -> None:
    app = make_app(ws)
    async with app.run_test(size=(110, 30)) as pilot:
        dialog = await open_dialog(app, pilot, "python train.py")
        dialog.query_one("#launch-gpus").value = "two"  # type: ignore[attr-defined]
        await pilot.press("enter")
        assert app.screen is dialog and dialog.spec() is None
        dialog.query_one("#launch-gpus").value = "2"  # type: ignore[attr-defined]
        dialog.query_one("#launch-namespace").value = "team-a"  # type: ignore[attr-defined]
        spec = dialog.spec()
        assert spec is not None and (spec.command, spec.gpus, spec.namespace, spec.executor) == (
            ["python", "train.py"], "2", "team-a", "local")


async def test_launch_isolated_runs_in_its_own_checkout(ws: Workspace) -> None:
    """The dialog's "isolated" box launches ``workbench run --isolated``: the job runs in a checkout
    under .workbench/tmp and its output is copied back into the project."""
    (ws.root / "where.py").write_text("import os\nprint('cwd', os.getcwd())\n"
                                      "open('out.txt', 'w').write('x')\n")
    app = make_app(ws, start="runs")
    async with app.run_test(size=(110, 34)) as pilot:
        dialog = await open_dialog(app, pilot, f"{sys.executable} where.py")
        dialog.query_one("#launch-isolated", Checkbox).value = True
        spec = dialog.spec()
        assert spec is not None and spec.isolated
        dialog.dismiss(spec)
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        await wait_for(pilot, lambda: screen.run is not None and screen.run.status != "running")
        assert screen.run is not None
        run_id = screen.run.id
    run = ws.runs.get(run_id)
    assert run.status == "succeeded" and run.snapshot_after is None  # isolated: no after-snapshot
    lines = [x.text for x in ws.runs.log_lines(run_id)]
    assert any(line.startswith("cwd ") and f"/.workbench/tmp/run-{run_id}" in line for line in lines), lines
    assert (ws.root / "out.txt").read_text() == "x"
