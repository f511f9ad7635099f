"""`rerun` says whether the outputs reproduced byte for byte, and runs where the original ran."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.executors.conftest import IMAGE, docker_client  # noqa: F401 - the fixture
from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

STEADY = ("import pathlib; pathlib.Path('out').mkdir(exist_ok=True); "
          "pathlib.Path('out/a.txt').write_text('same')\n")
NOISY = STEADY + "import os; pathlib.Path('out/b.bin').write_bytes(os.urandom(16))\n"


def test_a_deterministic_run_reproduces_and_a_noisy_one_says_what_differs(ws: Workspace) -> None:
    (ws.root / "steady.py").write_text(STEADY)
    (ws.root / "noisy.py").write_text(NOISY)
    steady = ws.runs.execute([sys.executable, "steady.py"])
    again = ws.runs.rerun(steady.id)
    assert again.tags["reproduced"] == "reproduced"
    assert ws.runs.reproduction(again.id).identical == ["out/a.txt"]

    noisy = ws.runs.execute([sys.executable, "noisy.py"])
    second = ws.runs.rerun(noisy.id)
    report = ws.runs.reproduction(second.id)
    assert second.tags["reproduced"] == "differs"
    assert report.identical == ["out/a.txt"] and report.differ == ["out/b.bin"]
    assert report.summary() == "outputs reproduced byte for byte: 1 of 2; differ: out/b.bin"
    assert second.executor == "local"


def test_cli_rerun_prints_the_verdict_and_json_carries_it(ws: Workspace, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (project_dir / "noisy.py").write_text(NOISY)
    original = ws.runs.execute([sys.executable, "noisy.py"])
    shown = cli(project_dir, "rerun", original.id, "-q")
    assert shown.code == 0
    assert "outputs reproduced byte for byte: 1 of 2; differ: out/b.bin" in shown.err
    data = json.loads(cli(project_dir, "rerun", original.id, "--json").out)
    assert data["reproduction"]["verdict"] == "differs" and data["reproduction"]["differ"] == ["out/b.bin"]
    assert data["tags"]["reproduced"] == "differs"
    bad = cli(project_dir, "rerun", original.id, "--memory", "lots")
    assert bad.code == 2 and "Traceback" not in bad.err


@pytest.mark.docker
def test_rerun_uses_the_original_executor_and_pinned_image(
    ws: Workspace, docker_client: Any  # noqa: F811 - the fixture
) -> None:
    (ws.root / "steady.py").write_text(STEADY)
    original = ws.runs.execute(RunRequest(["python3", "steady.py"], executor="docker", image=IMAGE))
    assert original.status == "succeeded", original.reason
    again = ws.runs.rerun(original.id)
    assert again.status == "succeeded", again.reason
    assert again.executor == "docker"
    assert again.executor_info["image_id"] == original.executor_info["image_id"]
    assert again.tags["reproduced"] == "reproduced"
    local = ws.runs.rerun(original.id, overrides={"executor": "local", "image": None})
    assert local.executor == "local"
