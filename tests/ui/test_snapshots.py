"""SVG snapshots of each screen on the deterministic demo project (pytest-textual-snapshot).

Regenerate after an intended visual change with ``pytest tests/ui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest

from tests.ui.conftest import make_app, settle
from workbench.core.workspace import Workspace

SIZE = (100, 30)
SCREENS = {
    "overview": ("overview", []),
    "history": ("history", []),
    "runs": ("runs", []),
    "run_metrics": ("runs", ["slash", *"name==sgd-a1e-3", "enter", "enter", "m"]),
    "compare": ("runs", ["slash", *"name~sgd", "enter", "space", "space", "space", "c"]),
    "models": ("models", []),
    "help": ("runs", ["question_mark"]),
}


@pytest.mark.parametrize("name", list(SCREENS))
def test_screen_snapshot(name: str, demo_ws: Workspace, snap_compare) -> None:  # type: ignore[no-untyped-def]
    start, keys = SCREENS[name]

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot, 0.6)
        for key in keys:
            await pilot.press(key)
            if key in ("enter", "c", "m"):
                await settle(pilot, 0.6)
        await settle(pilot, 0.6)

    assert snap_compare(make_app(demo_ws, start=start), terminal_size=SIZE, run_before=run_before)


def test_every_screen_fits_80x24(demo_ws: Workspace) -> None:
    import asyncio

    async def go() -> None:
        app = make_app(demo_ws)
        async with app.run_test(size=(80, 24)) as pilot:
            for key in "1234567":
                await pilot.press(key)
                await settle(pilot, 0.2)
                assert app.screen.size.width == 80
                footer = app.screen.query_one("Footer")
                assert footer.region.y == 23  # the footer is on screen, nothing pushed it off

    asyncio.run(go())
