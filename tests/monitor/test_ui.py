"""Pilot test of the Monitor screen (key 7) and the Overview's alert banner."""

from __future__ import annotations

import numpy as np
from textual.widgets import DataTable, Static

from tests.monitor import drift_fixtures
from tests.monitor.drift_fixtures import Traffic, make_rows
from tests.ui.conftest import make_app, settle, wait_for, wait_for_worker_threads
from workbench.core.workspace import Workspace
from workbench.ui.screens.monitor import MonitorScreen
from workbench.ui.screens.overview import OverviewScreen

baselined_fixture = drift_fixtures.baselined_fixture  # the fixtures, for pytest to find
traffic_fixture = drift_fixtures.traffic_fixture


async def test_monitor_screen_worst_first_with_charts_and_overview_banner(
    ws: Workspace, baselined: Traffic,
) -> None:
    rng = np.random.default_rng(3)
    for _ in range(3):
        baselined.send(make_rows(rng, 1000))
    baselined.send(make_rows(rng, 1000, shift={"b": 4.0}))
    app = make_app(ws, start="overview")
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await settle(pilot)
            await pilot.press("7")
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and bool(app.screen.reports),
                           "the monitor report")
            screen = app.screen
            assert isinstance(screen, MonitorScreen)
            table = screen.query_one(DataTable)
            await wait_for(pilot, lambda: table.row_count == 4, "four feature rows")
            first = [str(cell) for cell in table.get_row_at(0)]
            assert first[0] == "b" and first[3] == "drifting"
            assert len(first[4]) == 4  # a sparkline over the four windows
            status = str(screen.query_one("#monitor-status", Static).render())
            assert "svc" in status and "drifting" in status
            assert screen._selected_feature() == "b"
            await pilot.press("down")
            await wait_for(pilot, lambda: screen._selected_feature() != "b", "the next feature selected")
            await pilot.press("1")
            overview = app.screen
            assert isinstance(overview, OverviewScreen)
            banner = overview.query_one("#alert-banner", Static)
            await wait_for(pilot, lambda: "svc drifting" in str(banner.render()), "the alert banner")
            assert banner.has_class("shown")
    finally:
        wait_for_worker_threads()
