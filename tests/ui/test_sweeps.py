"""Sweeps in the TUI: a real 4-run sweep (``ws.workflows.sweep``) grouped on Runs, ranked in Compare."""

from __future__ import annotations

import sys

import pytest

from tests.ui.conftest import make_app, settle
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest
from workbench.ui.data import RankRow
from workbench.ui.screens.compare import CompareScreen, default_order, rank_runs
from workbench.ui.widgets.parallel_chart import ParallelChart, normalise, parallel_lines
from workbench.ui.widgets.runs_table import RunsTable

SCRIPT = """
import sys
lr, depth = float(sys.argv[1]), int(sys.argv[2])
for step in range(1, 4):
    print(f"step={step} loss={abs(lr - 0.01) * 10 + 1 / depth + 1 / step:.4f}", flush=True)
"""


@pytest.fixture
def swept(ws: Workspace) -> tuple[Workspace, str]:
    (ws.root / "fit.py").write_text(SCRIPT)
    ws.runs.execute(RunRequest([sys.executable, "fit.py", "0.5", "1"], name="lonely"))  # not in the sweep
    info = ws.workflows.sweep(RunRequest([sys.executable, "fit.py", "{lr}", "{depth}"], name="lr-depth"),
                              ["lr=0.1,0.01", "depth=2,4"])
    assert info.counts == {"succeeded": 4}
    return ws, info.id


async def test_runs_group_a_sweep_and_compare_ranks_it(swept: tuple[Workspace, str]) -> None:
    ws, sweep_id = swept
    app = make_app(ws, start="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        view = table.view
        assert view.grouped
        headers = [r for r in view.rows if r.group is not None]
        assert len(headers) == 1 and headers[0].name == "lr-depth" and len(headers[0].members) == 4
        start = view.rows.index(headers[0])
        assert {r.sweep_id for r in view.rows[start + 1:start + 5]} == {sweep_id}  # members follow it
        assert "sweep" in [c.key for c in view.columns]
        header_cells = view.cells[start]
        assert header_cells[0] == "▾ 4 runs"
        lr_col = [c.key for c in view.columns].index("p.lr")
        assert header_cells[lr_col] == "2 values"

        # Enter on the header folds the sweep; again unfolds it; z turns grouping off
        table.cursor_row = start
        await pilot.press("enter")
        await settle(pilot)
        assert len(table.view.rows) == 2 and table.view.cells[start][0] == "▸ 4 runs"
        await pilot.press("enter")
        await settle(pilot)
        assert len(table.view.rows) == 6
        await pilot.press("z")
        await settle(pilot)
        assert not table.view.grouped and len(table.view.rows) == 5
        await pilot.press("z")
        await settle(pilot)

        # c on the header compares the sweep, ranked by the metric (loss: lower is better)
        table.cursor_row = next(i for i, r in enumerate(table.view.rows) if r.group is not None)
        await pilot.press("c")
        await settle(pilot, 0.5)
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.sweep_id == sweep_id
        await pilot.press("r")
        await settle(pilot, 0.5)
        assert screen.key == "loss"
        _, expected = ws.workflows.rank(sweep_id, "loss", order="min")
        assert [r.run_id for r in screen.ranked] == [m.run_id for m in expected]
        assert screen.ranked[0].params == {"lr": 0.01, "depth": 4}
        chart = screen.query_one(ParallelChart)
        assert chart.axes == ["depth", "lr", "metric"]
        assert len(chart.lines) == 4
        best = chart.lines[0][1]
        assert best == [1.0, 0.0, 0.0]  # deepest, smallest lr, lowest loss
        # o flips the order: the worst run comes first
        await pilot.press("o")
        await settle(pilot, 0.5)
        assert [r.run_id for r in screen.ranked] == [m.run_id for m in reversed(expected)]


async def test_marking_a_sweep_header_marks_its_runs(swept: tuple[Workspace, str]) -> None:
    ws, sweep_id = swept
    app = make_app(ws, start="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        header = next(i for i, r in enumerate(table.view.rows) if r.group is not None)
        table.cursor_row = header
        await pilot.press("space")
        assert table.marked == set(table.view.rows[header].members)
        await pilot.press("c")
        await settle(pilot, 0.5)
        assert isinstance(app.screen, CompareScreen) and app.screen.sweep_id == sweep_id
        assert len(app.screen.run_ids) == 4


def test_rank_and_parallel_helpers() -> None:
    assert default_order("val_acc") == "max" and default_order("loss") == "min"
    assert normalise([1, 3, 2]) == [0.0, 1.0, 0.5]
    assert normalise(["adam", "sgd", "adam"]) == [0.0, 1.0, 0.0]
    assert normalise([5, 5]) == [0.5, 0.5]
    rows = [RankRow("a", "a", {"lr": 0.1, "opt": "sgd"}, 0.2),
            RankRow("b", "b", {"lr": 0.3, "opt": "adam"}, 0.6)]
    axes, lines = parallel_lines(rows, ["lr", "opt"])
    assert axes == ["lr", "opt", "metric"]
    assert lines == [("1. a", [0.0, 1.0, 0.0]), ("2. b", [1.0, 0.0, 1.0])]
    from workbench.ui.data import RunRow

    runs = [RunRow("x", "x", "succeeded", None, None, metrics={"acc": 0.5}),
            RunRow("y", "y", "succeeded", None, None, metrics={"acc": 0.9}),
            RunRow("z", "z", "succeeded", None, None)]
    assert [r.run_id for r in rank_runs(runs, "acc", "max")] == ["y", "x"]
