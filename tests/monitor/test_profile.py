"""Reference profiles: fixed when a run registers a model, from the data the run read."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np

from tests.monitor.drift_fixtures import write_reference
from workbench.core.workspace import Workspace
from workbench.monitor.profile import profile_column
from workbench.monitor.tabular import read_table

TRAIN = textwrap.dedent("""
    import csv, joblib
    from sklearn.linear_model import LogisticRegression
    with open("train.csv") as f:
        rows = list(csv.DictReader(f))
    X = [[float(r["a"]), float(r["b"]), float(r["c"])] for r in rows]
    y = [int(r["label"]) for r in rows]
    joblib.dump(LogisticRegression().fit(X, y), "model.pkl")
""")


def test_registering_a_model_profiles_the_runs_training_data(ws: Workspace, project_dir: Path) -> None:
    reference = write_reference(project_dir / "train.csv", np.random.default_rng(1), 2000)
    text = reference.read_text().splitlines()
    # Keep the numbers and the label only: the model takes three features.
    lines = [",".join(line.split(",")[i] for i in (0, 1, 2, 5)) for line in text]
    reference.write_text("\n".join(lines) + "\n")
    (project_dir / "train.py").write_text(TRAIN)
    info = ws.runs.execute([sys.executable, "train.py"])
    assert info.status == "succeeded", info
    row = ws.db.execute("SELECT model, version, source, rows FROM monitor_profiles").fetchone()
    assert row is not None and row[0] == "model" and row[1] == 1 and row[3] == 2000
    assert row[2].endswith("train.csv")
    profile = ws.monitor.profile("model", 1)
    assert profile is not None
    assert profile.signature["names"] == ["a", "b", "c"]
    assert profile.prediction is not None and profile.task == "classification"
    assert profile.reference_metric is not None and profile.reference_metric["accuracy"] > 0.8


def test_profile_column_numbers_and_categories() -> None:
    numbers = profile_column("x", [float(v) for v in range(100)] + [None])
    assert numbers.kind == "number" and len(numbers.edges) == 21
    assert abs(numbers.missing_rate - 1 / 101) < 1e-9
    assert numbers.counts[0] == 0 and sum(numbers.counts[1:21]) == 100  # nothing below, all in bins
    constant = profile_column("k", [3.0] * 10)
    assert constant.edges == [3.0, 3.0] and constant.counts[1] == 10
    colors = profile_column("color", ["red", "blue", "red", None, 1.0])
    assert colors.kind == "category" and colors.categories == ["1", "blue", "red"]


def test_npy_and_csv_tables(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(12.0).reshape(4, 3))
    assert read_table(tmp_path / "x.npy") == {"f0": [0.0, 3.0, 6.0, 9.0], "f1": [1.0, 4.0, 7.0, 10.0],
                                               "f2": [2.0, 5.0, 8.0, 11.0]}
    (tmp_path / "t.csv").write_text("a,b\n1,x\nNA,y\n")
    assert read_table(tmp_path / "t.csv") == {"a": [1.0, None], "b": ["x", "y"]}
