"""The Pipelines screen against a real pipeline: stages run by ``ws.workflows.repro()``."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable

from tests.ui.conftest import make_app, settle
from workbench.core.workspace import Workspace
from workbench.ui.screens.run_detail import RunDetailScreen

PIPELINE = """\
stages:
  prepare:
    cmd: python prepare.py
    inputs: [prepare.py, raw.txt]
    outputs: [clean.txt]
  train:
    cmd: python train.py {k}
    inputs: [train.py, clean.txt]
    outputs: [model.txt]
    params:
      k: {ref: k}
  report:
    cmd: python report.py
    inputs: [report.py, model.txt]
    outputs: [report.txt]
"""


def write_pipeline(root: Path) -> None:
    (root / "raw.txt").write_text("hello\n")
    (root / "params.yaml").write_text("k: 2\n")
    (root / "prepare.py").write_text("open('clean.txt', 'w').write(open('raw.txt').read().upper())\n")
    (root / "train.py").write_text("import sys\nopen('model.txt', 'w').write(open('clean.txt').read()"
                                   " * int(sys.argv[1]))\n")
    (root / "report.py").write_text("open('report.txt', 'w').write(str(len(open('model.txt').read())))\n")
    (root / "workbench.yaml").write_text(PIPELINE)


def cells(table: DataTable) -> list[list[str]]:  # type: ignore[type-arg]
    out = []
    for index in range(table.row_count):
        out.append([c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(index)])
    return out


async def test_stages_show_fresh_stale_with_reason_and_failed(ws: Workspace) -> None:
    write_pipeline(ws.root)
    result = ws.workflows.repro()
    assert result.status == "succeeded", result.message
    app = make_app(ws, start="pipelines")
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        rows = cells(table)
        assert [r[0].strip(" └") for r in rows] == ["prepare", "train", "report"]
        assert [r[1] for r in rows] == ["● fresh"] * 3
        assert rows[1][2] == "prepare" and rows[2][2] == "train"  # what each needs
        assert "3 fresh" in str(app.screen.query_one("#stages-status").render())

        # report fails on its next run; a param change makes train stale (and report with it)
        (ws.root / "report.py").write_text("raise SystemExit('report is broken')\n")
        failed = ws.workflows.repro(["report"])
        assert failed.status == "failed" and failed.failed_stage == "report"
        (ws.root / "params.yaml").write_text("k: 3\n")
        app.screen.reload()
        await settle(pilot)
        rows = {r[0].strip(" └"): r for r in cells(table)}
        assert rows["prepare"][1] == "● fresh"
        assert rows["train"][1] == "○ stale"
        assert "param 'k' changed 2 -> 3" in rows["train"][4]
        assert rows["report"][1] == "✗ failed"
        # every column as wide as its content (DataTable's own measuring could miss a fill)
        widths = [c.width for c in table.ordered_columns]
        assert widths[0] >= len("  └ report") and widths[4] >= len(rows["train"][4])

        # Enter on a stage opens the run that made its outputs
        table.move_cursor(row=0)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert app.screen.run is not None and app.screen.run.raw.stage == "prepare"


async def test_no_pipeline_says_how_to_declare_one(ws: Workspace) -> None:
    app = make_app(ws, start="pipelines")
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        assert app.screen.query_one(DataTable).row_count == 0
        assert "workbench.yaml" in str(app.screen.query_one("#stages-status").render())


async def test_a_dvc_project_shows_its_expanded_stages(ws: Workspace) -> None:
    (ws.root / "dvc.yaml").write_text("stages:\n  make:\n    foreach: [a, b]\n    do:\n"
                                      "      cmd: echo ${item} > ${item}.txt\n"
                                      "      outs:\n        - ${item}.txt\n"
                                      "  join:\n    cmd: cat a.txt b.txt > ab.txt\n    deps: [a.txt, b.txt]\n"
                                      "    outs: [ab.txt]\n")
    app = make_app(ws, start="pipelines")
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        rows = cells(app.screen.query_one(DataTable))
        assert [r[0].strip(" └") for r in rows] == ["make@a", "make@b", "join"]
        assert {r[1] for r in rows} == {"○ stale"}
