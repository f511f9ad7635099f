"""Exports as users of other tools take them: runs to CSV/JSON, model versions as files or MLflow models.

Real runs of an ordinary scikit-learn script make the runs and the model versions; what is exported
is read back by the library that would read it (csv/json, joblib, pickle as MLflow's sklearn flavor
loads ``serialization_format: pickle``).
"""

from __future__ import annotations

import csv
import json
import pickle
import sys
from pathlib import Path

import joblib
import pytest
import yaml

from workbench.core.workspace import Workspace
from workbench.tracking.request import RunRequest

TRAIN = """\
import argparse, joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
p = argparse.ArgumentParser(); p.add_argument("--C", type=float, default=1.0); a = p.parse_args()
x, y = load_iris(return_X_y=True)
m = LogisticRegression(C=a.C, max_iter=500).fit(x, y)
print(f"accuracy: {m.score(x, y):.4f}")
joblib.dump(m, "model.joblib")
"""
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.0, 2.2, 5.0, 1.5]]


def _train(ws: Workspace, c: float) -> str:
    run = ws.runs.execute(RunRequest((sys.executable, "train.py", "--C", str(c)), name=f"c{c}"))
    assert run.status == "succeeded"
    return run.id


def test_runs_export_to_csv_and_json(ws: Workspace, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (project_dir / "train.py").write_text(TRAIN)
    ids = [_train(ws, 0.01), _train(ws, 10.0)]

    res = cli(project_dir, "export", "runs", "--csv", "out/runs.csv")
    assert res.code == 0, res.err
    assert "2 runs" in res.err
    with (project_dir / "out" / "runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["id"] for r in rows} == set(ids)
    by_c = {float(r["params.C"]): r for r in rows}
    assert set(by_c) == {0.01, 10.0}
    assert float(by_c[10.0]["metrics.accuracy"]) > float(by_c[0.01]["metrics.accuracy"]) > 0
    assert all(r["status"] == "succeeded" and float(r["duration_s"]) > 0 for r in rows)

    res = cli(project_dir, "export", "runs", "--json", "-", "--filter", "params.C > 1")
    assert res.code == 0, res.err
    (only,) = json.loads(res.out)
    assert only["params.C"] == 10.0 and only["id"] == ids[1] and "metrics.accuracy" in only

    with pytest.raises(SystemExit) as exited:  # argparse: one line, exit 2
        cli(project_dir, "export", "runs")
    assert exited.value.code == 2


def test_model_export_raw_and_mlflow_load_back(ws: Workspace, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (project_dir / "train.py").write_text(TRAIN)
    run_id = _train(ws, 10.0)
    expected = joblib.load(project_dir / "model.joblib").predict(ROWS).tolist()
    (model,) = ws.runs.models()

    res = cli(project_dir, "models", "export", f"{model.name}:1", "exported/", "--json")
    assert res.code == 0, res.err
    raw = Path(json.loads(res.out)["path"])
    assert raw == project_dir / "exported" / "model.joblib"
    assert raw.read_bytes() == (project_dir / "model.joblib").read_bytes()
    assert joblib.load(raw).predict(ROWS).tolist() == expected
    again = cli(project_dir, "models", "export", f"{model.name}:1", "exported/")
    assert again.code == 2 and "already exists" in again.err and again.err.count("\n") == 1

    res = cli(project_dir, "models", "export", model.name, "mlflow-model", "--format", "mlflow")
    assert res.code == 0, res.err
    folder = project_dir / "mlflow-model"
    assert {p.name for p in folder.iterdir()} == {
        "MLmodel", "model.pkl", "requirements.txt", "conda.yaml", "python_env.yaml"
    }
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["sklearn"]
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert flavor["serialization_format"] == "pickle" and flavor["pickled_model"] == "model.pkl"
    import sklearn

    assert flavor["sklearn_version"] == sklearn.__version__
    assert mlmodel["metadata"]["workbench_run"] == run_id
    with (folder / flavor["pickled_model"]).open("rb") as f:  # what mlflow.sklearn does for "pickle"
        assert pickle.load(f).predict(ROWS).tolist() == expected
    assert f"scikit-learn=={sklearn.__version__}" in (folder / "requirements.txt").read_text()
    # MLflow itself loads the folder, through both flavors (mlflow-skinny is in the test extra).
    import mlflow.pyfunc
    import mlflow.sklearn

    assert mlflow.sklearn.load_model(str(folder)).predict(ROWS).tolist() == expected
    assert list(mlflow.pyfunc.load_model(str(folder)).predict(ROWS)) == expected

    res = cli(project_dir, "models", "export", model.name, "mlflow-model", "--format", "mlflow")
    assert res.code == 2 and "not an empty folder" in res.err
    res = cli(project_dir, "models", "export", "no-such-model", "x")
    assert res.code == 2 and res.err.count("\n") == 1


def test_mlflow_format_refuses_what_it_cannot_describe(ws: Workspace, project_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    (project_dir / "blob.bin").write_bytes(b"weights")
    (project_dir / "declare.py").write_text(
        "import workbench\nworkbench.log_model('blob.bin', name='custom', framework='custom')\n"
    )
    assert ws.runs.execute([sys.executable, "declare.py"]).status == "succeeded"
    res = cli(project_dir, "models", "export", "custom", "out", "--format", "mlflow")
    assert res.code == 2 and "custom model" in res.err and "--format raw" in res.err
    res = cli(project_dir, "models", "export", "custom", "out.bin")
    assert res.code == 0 and (project_dir / "out.bin").read_bytes() == b"weights"
