"""Plot files become series when their x axis is a step, through a real run's ingester."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.tracking.plot_files import plot_series, read_records
from workbench.workflows.dvc import load_dvc


def test_tables_in_every_format_are_read_as_records(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("epoch,acc\n1,0.5\n2,0.75\n")
    (tmp_path / "a.tsv").write_text("epoch\tacc\n1\t0.5\n")
    (tmp_path / "a.json").write_text(json.dumps({"train": [{"epoch": 1, "acc": 0.5}]}))
    (tmp_path / "a.yaml").write_text("- {epoch: 1, acc: 0.5}\n")
    (tmp_path / "scalar.json").write_text('{"acc": 0.5}')
    assert read_records(tmp_path, "a.csv") == [{"epoch": "1", "acc": "0.5"}, {"epoch": "2", "acc": "0.75"}]
    assert read_records(tmp_path, "a.tsv") == [{"epoch": "1", "acc": "0.5"}]
    assert read_records(tmp_path, "a.json") == [{"epoch": 1, "acc": 0.5}]
    assert read_records(tmp_path, "a.yaml") == [{"epoch": 1, "acc": 0.5}]
    assert read_records(tmp_path, "scalar.json") is None  # not a table
    assert read_records(tmp_path, "missing.csv") is None


def test_which_plots_are_series() -> None:
    rows = [{"epoch": "1", "loss": "0.9", "acc": "0.5"}, {"epoch": "2", "loss": "0.4", "acc": "0.7"}]
    series, why = plot_series("plots/train.csv", rows, {})
    assert why is None
    assert series == {"plots/train/loss": ([1, 2], [0.9, 0.4]), "plots/train/acc": ([1, 2], [0.5, 0.7])}
    series, _ = plot_series("plots/train.csv", rows, {"y": "acc"})
    assert list(series) == ["plots/train/acc"]
    # No step column: DVC's default x is the row number.
    series, _ = plot_series("p.csv", [{"loss": 3}, {"loss": 2}], {})
    assert series == {"p/loss": ([0, 1], [3.0, 2.0])}
    # A curve over something that is not a step stays an output, and says why.
    roc = [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 0.25, "tpr": 0.8}]
    series, why = plot_series("roc.json", roc, {"x": "fpr", "y": "tpr"})
    assert series == {} and why is not None and "'fpr', which is not a step" in why


def test_top_level_plot_ids_with_files_reach_the_stage_that_writes_them(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: python train.py\n    outs: [logs/]\n"
        "plots:\n  - logs/train.csv\n"
        "  - accuracy:\n      x: epoch\n      y:\n        logs/eval.csv: acc\n"
        "  - unrelated.csv: {x: step}\n")
    pipeline = load_dvc(tmp_path)
    expected = {"logs/train.csv": {}, "logs/eval.csv": {"x": "epoch", "y": "acc"}}
    assert pipeline.stages["train"].plots == expected


SCRIPT = """\
import os
os.makedirs('plots', exist_ok=True)
open('plots/train.csv', 'w').write('epoch,loss\\n' + ''.join(f'{i},{1 / i}\\n' for i in range(1, 101)))
open('plots/roc.csv', 'w').write('fpr,tpr\\n0,0\\n0.5,0.9\\n1,1\\n')
"""


def test_a_pipeline_run_records_its_plot_series(ws: Workspace) -> None:
    (ws.root / "train.py").write_text(SCRIPT)
    (ws.root / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: python train.py\n    deps: [train.py]\n"
        "    plots:\n      - plots/train.csv\n      - plots/roc.csv: {x: fpr, y: tpr}\n")
    result = ws.workflows.repro()
    assert result.status == "succeeded", (result.message, result.log_tail)
    run = next(r for r in ws.runs.list() if r.stage == "train")
    assert ws.runs.metric_keys(run.id) == ["plots/train/loss"]
    loss = ws.runs.metric_series(run.id, "plots/train/loss")
    assert list(loss.steps) == list(range(1, 101))
    assert all(math.isclose(v, 1 / s) for s, v in zip(loss.steps, loss.values, strict=True))
    log = "\n".join(line.text for line in ws.runs.log_lines(run.id))
    assert "plot 'plots/roc.csv' is drawn over 'fpr', which is not a step" in log
    assert {f.path for f in ws.runs.outputs(run.id)} >= {"plots/train.csv", "plots/roc.csv"}


@pytest.mark.parametrize("body", ["name,label\na,x\n", ""])
def test_unusable_plot_files_are_no_series(body: str, tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(body)
    records = read_records(tmp_path, "p.csv") or []
    series, why = plot_series("p.csv", records, {})
    assert series == {} and why
