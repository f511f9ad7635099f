"""`workbench import wandb` on offline runs written by real wandb (tests/importers/data, see
make_wandb_fixture.py; and, where wandb is installed, one made on the spot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from workbench.core.workspace import Workspace

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "wandb-expected.json").read_text())


def test_offline_runs_imported_with_config_history_and_summary(
        tmp_path: Path, ws: Workspace, cli: Any) -> None:
    with tarfile.open(DATA / "wandb-offline.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    result = cli(ws.root, "import", "wandb", str(tmp_path / "wandb"), "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["runs_new"] == len(EXPECTED["runs"]) == 2
    for source_id, want in EXPECTED["runs"].items():
        run = ws.runs.get(report["run_ids"][f"fixture/{source_id}"])
        assert (run.name, run.status) == (want["name"], want["status"])
        assert run.params == {k: v if not isinstance(v, list) else json.dumps(v)  # lists are kept as text
                              for k, v in want["params"].items()}
        assert run.tags["project"] == "fixture"
        assert {k: m.last for k, m in run.metrics.items()} == pytest.approx(want["last"])
        loss = ws.runs.metric_series(run.id, "loss")
        assert len(loss.steps) == want["steps"]
    long = ws.runs.get(report["run_ids"][f"fixture/{next(iter(EXPECTED['runs']))}"])
    series = ws.runs.metric_series(long.id, "loss")
    assert series.steps == list(range(1000))  # every row, across the log's 32 KiB blocks
    assert series.values == pytest.approx([1.0 / (s + 1) for s in range(1000)])
    assert "wandb.tag.baseline" in long.tags
    again = json.loads(cli(ws.root, "import", "wandb", str(tmp_path), "--json").out)
    assert (again["runs_new"], again["runs_updated"], again["points"]) == (0, 0, 0)


def test_a_run_made_now_by_wandb_offline(tmp_path: Path, ws: Workspace, cli: Any) -> None:
    pytest.importorskip("wandb")
    script = ("import wandb\n"
              "run = wandb.init(project='now', config={'batch': 8})\n"
              "for i in range(3):\n    wandb.log({'loss': 1.0 / (i + 1)})\n"
              "wandb.finish()\n")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=True, timeout=300)
    result = cli(ws.root, "import", "wandb", str(tmp_path), "--json")
    assert result.code == 0, result.err
    (run,) = ws.runs.list()
    assert run.params == {"batch": 8} and run.status == "succeeded"
    assert ws.runs.metric_series(run.id, "loss").values == pytest.approx([1.0, 0.5, 1 / 3])


def test_not_a_wandb_folder(tmp_path: Path, ws: Workspace, cli: Any) -> None:
    result = cli(ws.root, "import", "wandb", str(tmp_path))
    assert result.code == 2 and "no W&B run files" in result.err
