"""The launch dialog end to end: a real ``workbench run`` process started from the TUI."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.ui.conftest import make_app, settle, wait_for
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


async def open_dialog(pilot) -> LaunchDialog:  # type: ignore[no-untyped-def]
    """Press n; the launch dialog once it is on screen with its fields mounted."""
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LaunchDialog)
                   and bool(pilot.app.screen.query("#launch-command")))
    dialog = pilot.app.screen
    assert isinstance(dialog, LaunchDialog)
    return dialog


async def open_launch_screen(pilot) -> LaunchScreen:  # type: ignore[no-untyped-def]
    """After Enter in the dialog: the LaunchScreen, once Textual has pushed it."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LaunchScreen))
    screen = pilot.app.screen
    assert isinstance(screen, LaunchScreen)
    return screen


async def test_launch_streams_at_once_and_the_run_outlives_the_tui(ws: Workspace) -> None:
    (ws.root / "quick.py").write_text(QUICK)
    try:
        app = make_app(ws, start="runs")
        async with app.run_test(size=(110, 30)) as pilot:
            await settle(pilot)
            dialog = await open_dialog(pilot)
            dialog.query_one("#launch-command").value = f"{sys.executable} quick.py"  # type: ignore[attr-defined]
            await pilot.press("tab", *"quick", "enter")
            screen = await open_launch_screen(pilot)
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
            await wait_for(pilot, lambda: run_id in [r.id for r in getattr(app.screen, "rows", ())])
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
        dialog = await open_dialog(pilot)
        dialog.query_one("#launch-command").value = f"{sys.executable} quick.py"  # type: ignore[attr-defined]
        await pilot.press("enter")
        screen = await open_launch_screen(pilot)
        # A quick run can be found already finished; its log lines arrive with the next flush.
        await wait_for(pilot, lambda: screen.run is not None and screen.run.status == "succeeded"
                       and any("step=3" in line for line in screen.query_one(LogTail).lines))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen)
                       and app.screen.series is not None, "the run detail and its series")
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        assert detail.series is not None and len(detail.series.values) == 3


async def test_a_command_that_cannot_start_is_reported(ws: Workspace, project_dir: Path) -> None:
    app = make_app(ws)
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        dialog = await open_dialog(pilot)
        dialog.query_one("#launch-command").value = "no-such-command-wb"  # type: ignore[attr-defined]
        await pilot.press("enter")
        screen = await open_launch_screen(pilot)
        await wait_for(pilot, lambda: screen.error is not None)
        assert screen.error is not None and "no-such-command-wb" in screen.error
        # notify() posts a message: the app records the notification when it has processed it
        await wait_for(pilot, lambda: any(n.severity == "error" for n in app._notifications))


async def test_dialog_checks_gpus(ws: Workspace) -> None:
    app = make_app(ws)
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        dialog = await open_dialog(pilot)
        dialog.query_one("#launch-command").value = "python train.py"  # type: ignore[attr-defined]
        dialog.query_one("#launch-gpus").value = "two"  # type: ignore[attr-defined]
        await pilot.press("enter")
        assert app.screen is dialog and dialog.request() is None
        dialog.query_one("#launch-gpus").value = "2"  # type: ignore[attr-defined]
        dialog.query_one("#launch-namespace").value = "team-a"  # type: ignore[attr-defined]
        request = dialog.request()
        assert request is not None
        assert (request.command, request.gpus, request.namespace, request.executor) == (
            ("python", "train.py"), 2, "team-a", "local")


async def test_the_dialog_builds_the_run_request_the_cli_would(ws: Workspace) -> None:
    """The dialog dismisses with a RunRequest; written back as ``workbench run`` arguments (how the
    TUI starts it) and parsed by the CLI, it is the same value."""
    from textual.widgets import Checkbox, Input, Select

    from workbench.cli import build_parser
    from workbench.cli.run_request import request_from_args, run_argv
    from workbench.tracking.request import RunRequest

    app = make_app(ws)
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        dialog = await open_dialog(pilot)
        dialog.query_one("#launch-command", Input).value = "python train.py --lr '0.1 0.2'"
        dialog.query_one("#launch-name", Input).value = "fit"
        dialog.query_one("#launch-executor", Select).value = "docker"
        dialog.query_one("#launch-image", Input).value = "img:1"
        dialog.query_one("#launch-gpus", Input).value = "all"
        dialog.query_one("#launch-isolated", Checkbox).value = True
        dismissed: list[RunRequest | None] = []
        dialog.dismiss = dismissed.append  # type: ignore[assignment,method-assign]
        await pilot.click("#launch-go")
        await wait_for(pilot, lambda: bool(dismissed), "the dialog to dismiss")
    expected = RunRequest(("python", "train.py", "--lr", "0.1 0.2"), name="fit", executor="docker",
                          image="img:1", gpus="all", isolated=True)
    assert dismissed == [expected]
    assert request_from_args(build_parser().parse_args(["run", *run_argv(expected)])) == expected


async def test_launch_isolated_runs_in_its_own_checkout(ws: Workspace) -> None:
    """The dialog's "isolated" box launches ``workbench run --isolated``: the job runs in a checkout
    under .workbench/tmp and its output is copied back into the project."""
    from textual.widgets import Checkbox, Input

    (ws.root / "where.py").write_text("import os\nprint('cwd', os.getcwd())\n"
                                      "open('out.txt', 'w').write('x')\n")
    app = make_app(ws, start="runs")
    async with app.run_test(size=(110, 34)) as pilot:
        await settle(pilot)
        dialog = await open_dialog(pilot)
        dialog.query_one("#launch-command", Input).value = f"{sys.executable} where.py"
        dialog.query_one("#launch-isolated", Checkbox).value = True
        request = dialog.request()
        assert request is not None and request.isolated
        dialog.dismiss(request)
        screen = await open_launch_screen(pilot)
        await wait_for(pilot, lambda: screen.run is not None and screen.run.status != "running",
                       "the isolated run to end")
        assert screen.run is not None
        run_id = screen.run.id
    run = ws.runs.get(run_id)
    assert run.status == "succeeded" and run.snapshot_after is None  # isolated: no after-snapshot
    lines = [x.text for x in ws.runs.log_lines(run_id)]
    assert any(line.startswith("cwd ") and f"/.workbench/tmp/run-{run_id}" in line for line in lines), lines
    assert (ws.root / "out.txt").read_text() == "x"
