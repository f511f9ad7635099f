"""Overview keys P (push) and L (pull) against a file:// remote; a failure reaches the app's one
error handler as a notification."""

from __future__ import annotations

import time
from pathlib import Path

from tests.ui.conftest import make_app, settle
from workbench.core.workspace import Workspace


async def _wait(pilot, check, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.1)


def _said(app, text: str) -> bool:  # type: ignore[no-untyped-def]
    return any(text in str(n.message) for n in app._notifications)


async def test_p_pushes_and_l_pulls_from_overview(ws: Workspace, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (ws.root / "a.txt").write_text("hello\n")
    ws.versions.snapshot(message="first")
    ws.remote.add("origin", share.as_uri())
    app = make_app(ws, start="overview")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        line = app.screen.query_one("#project-line")
        await _wait(pilot, lambda: "origin: 1 to push, ? to pull" in str(line.render()), "ahead on Overview")
        await pilot.press("P")
        await _wait(pilot, lambda: _said(app, "pushed"), "the push notification")
        await _wait(pilot, lambda: "origin: 0 to push" in str(line.render()), "ahead 0 after the push")
        assert any(share.glob("bundles/*")), "nothing reached the remote"
        await pilot.press("L")
        await _wait(pilot, lambda: _said(app, "pulled"), "the pull notification")
        await _wait(pilot, lambda: "origin: 0 to push, 0 to pull" in str(line.render()), "behind 0")


async def test_push_without_a_remote_is_one_error_notification(ws: Workspace) -> None:
    app = make_app(ws, start="overview")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("P")
        await _wait(pilot, lambda: _said(app, "no remote is configured"), "the error")
        assert app.is_running
