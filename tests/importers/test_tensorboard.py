"""`workbench import tensorboard` on log folders written by a real SummaryWriter (torch's, else
tensorboardX's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workbench.core.workspace import Workspace


def _writer(logdir: str) -> Any:
    """torch's SummaryWriter (needs the tensorboard package), else tensorboardX's: both real writers."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        SummaryWriter = pytest.importorskip("tensorboardX").SummaryWriter
    return SummaryWriter(logdir)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tb") / "runs"
    for name, lr in (("lr-0.1", 0.1), ("lr-0.01", 0.01)):
        writer = _writer(str(root / name))
        for step in range(0, 200, 2):
            writer.add_scalar("train/loss", 1.0 / (step + 1) + lr, step)
        writer.add_scalars("acc", {"train": 0.9, "val": 0.8}, 198)
        writer.add_hparams({"lr": lr, "optimizer": "sgd"}, {"hparam/best": 0.8})
        writer.close()
    return root


def test_each_run_folder_becomes_a_run_with_its_series(logdir: Path, ws: Workspace, cli: Any) -> None:
    result = cli(ws.root, "import", "tensorboard", str(logdir), "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["runs_new"], report["points"]) == (2, 2 * (100 + 2 + 1))
    runs = {run.name: run for run in ws.runs.list()}
    assert set(runs) == {"lr-0.1", "lr-0.01"}
    run = runs["lr-0.01"]
    series = ws.runs.metric_series(run.id, "train/loss")
    assert series.steps == list(range(0, 200, 2))
    assert series.values == pytest.approx([1.0 / (s + 1) + 0.01 for s in range(0, 200, 2)], rel=1e-6)
    # add_scalars' sub-folders: torch names them acc_train/, tensorboardX acc/train/
    others = {k: m.last for k, m in run.metrics.items() if k != "train/loss"}
    assert others.pop("hparam/best") == pytest.approx(0.8)
    assert sorted(others.values()) == pytest.approx([0.8, 0.9]) and all(k.endswith("/acc") for k in others)
    assert run.params == {"lr": pytest.approx(0.01), "optimizer": "sgd"}
    assert run.tags["imported_from"] == f"tensorboard:{logdir.resolve()}/lr-0.01"
    again = json.loads(cli(ws.root, "import", "tensorboard", str(logdir), "--json").out)
    assert (again["runs_new"], again["runs_updated"], again["points"]) == (0, 0, 0)


def test_a_folder_without_event_files_is_a_one_line_error(tmp_path: Path, ws: Workspace, cli: Any) -> None:
    result = cli(ws.root, "import", "tensorboard", str(tmp_path))
    assert result.code == 2 and "no TensorBoard event files" in result.err


def test_odd_tags_are_skipped_not_fatal(tmp_path: Path, ws: Workspace) -> None:
    """A tag no key may have (empty, unprintable) is noted in the run's log; the rest comes in."""
    writer = _writer(str(tmp_path / "odd"))
    writer.add_scalar("ok", 1.0, 0)
    writer.add_scalar("bad\x01tag", 2.0, 0)
    writer.close()
    report = ws.imports.import_("tensorboard", str(tmp_path))
    (run,) = ws.runs.list()
    assert report.points == 1 and set(run.metrics) == {"ok"}
    assert any("skipped metric" in line.text for line in ws.runs.log_lines(run.id))
