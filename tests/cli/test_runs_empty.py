"""`workbench runs` tells an empty project from a filter that matches nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest


def test_empty_project_and_empty_filter_say_different_things(ws: Workspace, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    empty = cli(project_dir, "runs")
    assert empty.code == 0 and "no runs yet" in empty.out
    ws.runs.execute(RunRequest([sys.executable, "-c", "print('loss: 0.5')"], name="one"))
    listed = cli(project_dir, "runs")
    assert "one" in listed.out
    none = cli(project_dir, "runs", "--filter", "loss>100")
    assert none.code == 0
    assert "no run matches 'loss>100'" in none.out
    assert "no runs yet" not in none.out
