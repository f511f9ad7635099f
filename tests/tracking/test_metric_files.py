"""Metrics files become a run's metrics under ``workbench run``: what real DVCLive wrote (its
``metrics.json`` summary and ``plots/metrics`` series, in any folder), and files declared as metrics."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.tracking.metric_files import dvclive_dirs, flatten, read_step_csv
from workbench.tracking.request import RunRequest

DVCLIVE_SCRIPT = """\
from dvclive import Live
with Live("eval") as live:
    live.log_param("lr", 0.1)
    live.log_params({"model": {"depth": 4}})
    for i in range(3):
        live.log_metric("train/loss", 1.0 / (i + 1))
        live.log_metric("acc", 0.5 + i / 10)
        live.next_step()
    live.summary["test"] = {"f1": 0.7}
"""


def test_a_script_logging_with_dvclive_gets_its_metrics_series_and_params(ws: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    (ws.root / "train.py").write_text(DVCLIVE_SCRIPT)
    done = cli(ws.root, "run", "-q", "--", sys.executable, "train.py")  # 'workbench run', unchanged script
    assert done.code == 0, done.err
    info = ws.runs.get("latest")
    # 'step' is DVCLive's step counter, no metric
    assert set(ws.runs.metric_keys(info.id)) == {"train/loss", "acc", "test/f1"}
    loss = ws.runs.metric_series(info.id, "train/loss")
    assert loss.steps == [0, 1, 2] and loss.values == pytest.approx([1.0, 0.5, 1 / 3])
    assert ws.runs.metric_series(info.id, "acc").values == pytest.approx([0.5, 0.6, 0.7])
    f1 = ws.runs.metric_series(info.id, "test/f1")
    assert f1.values == pytest.approx([0.7]) and f1.steps == [2]  # the summary's step
    params = ws.runs.params(info.id)
    assert params["lr"] == 0.1 and params["model/depth"] == 4


def test_declared_metrics_are_read_and_a_stray_metrics_json_is_not(ws: Workspace) -> None:
    (ws.root / "write.py").write_text(textwrap.dedent("""\
        import json
        json.dump({"acc": 0.9}, open("metrics.json", "w"))
        open("scores.yaml", "w").write("val:\\n  loss: 0.25\\n  tag: best\\nok: true\\n")
    """))
    plain = ws.runs.execute(RunRequest([sys.executable, "write.py"]))
    assert ws.runs.metric_keys(plain.id) == []  # not DVCLive's, not declared
    request = RunRequest([sys.executable, "write.py"], metrics=("scores.yaml", "absent.json"))
    declared = ws.runs.execute(request)
    assert ws.runs.metric_keys(declared.id) == ["val/loss"]
    assert ws.runs.metric_series(declared.id, "val/loss").values == pytest.approx([0.25])


def test_flatten_and_dvclive_folders() -> None:
    assert dict(flatten({"a": {"b": 1, "c": [2, 3]}, "d": 4})) == {"a/b": 1, "a/c/0": 2, "a/c/1": 3, "d": 4}
    outputs = ["eval/plots/metrics/acc.tsv", "dvclive/metrics.json", "x/metrics.json",
               "plots/metrics/train/loss.tsv"]
    assert dvclive_dirs(outputs) == {"eval", "dvclive", ""}


def test_a_metrics_file_linked_out_of_the_project_is_not_read(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"secret": 1}')
    (ws.root / "link.py").write_text(f"import os\nos.symlink({str(outside)!r}, 'm.json')\n")
    info = ws.runs.execute(RunRequest([sys.executable, "link.py"], metrics=("m.json",)))
    assert ws.runs.metric_keys(info.id) == []


def test_a_step_csv_is_read_by_its_step_column(tmp_path: Path) -> None:
    """Lightning's CSVLogger: a row per log call, the other columns empty; a step written twice
    keeps its last value; without ``step``, ``epoch`` is the step; without either, not read."""
    (tmp_path / "metrics.csv").write_text("epoch,step,train_loss,val_loss\n0,4,2.5,\n0,9,0.75,\n"
                                          "0,9,,0.5\n1,14,0.25,\n1,19,0.125,\n1,19,,x\n")
    found = read_step_csv(tmp_path, "metrics.csv")
    assert found is not None
    assert {k: (v[0], v[1]) for k, v in found.items()} == {
        "epoch": ([4, 9, 14, 19], [0.0, 0.0, 1.0, 1.0]), "val_loss": ([9], [0.5]),
        "train_loss": ([4, 9, 14, 19], [2.5, 0.75, 0.25, 0.125])}
    (tmp_path / "keras.csv").write_text("epoch,loss\n0,0.5\n1,0.25\n")
    by_epoch = read_step_csv(tmp_path, "keras.csv")
    assert by_epoch is not None and {k: (v[0], v[1]) for k, v in by_epoch.items()} == {
        "loss": ([0, 1], [0.5, 0.25])}
    (tmp_path / "table.csv").write_text("id,value\n1,2\n")
    assert read_step_csv(tmp_path, "table.csv") is None
