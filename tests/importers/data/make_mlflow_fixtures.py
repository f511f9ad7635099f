"""Make the MLflow fixtures the importer tests read: run this with a real MLflow installed.

    python -m venv /tmp/mlf && /tmp/mlf/bin/pip install mlflow-skinny sqlalchemy alembic
    /tmp/mlf/bin/python tests/importers/data/make_mlflow_fixtures.py tests/importers/data

It writes ``mlruns.tar.gz`` (MLflow's file store, ``file:`` tracking URI) and ``mlflow.db`` (MLflow's
SQLite store, its default since 3.x), each holding the same experiment: three runs of a small
training loop with params, tags, a 50-step ``loss`` series, a final ``accuracy``, an artifact, one
run FAILED; the SQLite store also has a registered model with one version. ``expected.json`` holds
what the tests compare against, as MLflow's own client reads it back.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path


def fill(uri: str, artifacts: Path) -> dict[str, object]:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment("iris")
    expected: dict[str, object] = {"experiment": "iris", "runs": {}}
    for i, c in enumerate((0.1, 1.0, 10.0)):
        with mlflow.start_run(run_name=f"c-{c}") as run:
            mlflow.log_params({"C": c, "solver": "lbfgs"})
            mlflow.set_tag("team", "vision")
            for step in range(50):
                mlflow.log_metric("loss", math.exp(-step / (10 * c)) + i / 100, step=step)
            mlflow.log_metric("accuracy", 0.8 + i / 20)
            model = artifacts / f"model-{i}.txt"
            model.write_text(f"weights for C={c}\n")
            mlflow.log_artifact(str(model))
            if i == 2:
                mlflow.end_run(status="FAILED")
        client = MlflowClient()
        got = client.get_run(run.info.run_id)
        expected["runs"][run.info.run_id] = {  # type: ignore[index]
            "name": got.info.run_name, "status": got.info.status, "params": got.data.params,
            "metrics": got.data.metrics, "tags": {k: v for k, v in got.data.tags.items()
                                                  if not k.startswith("mlflow.")},
            "loss_points": len(client.get_metric_history(run.info.run_id, "loss")),
            "start_time": got.info.start_time, "end_time": got.info.end_time,
        }
    if uri.startswith("sqlite"):
        first = next(iter(expected["runs"]))  # type: ignore[call-overload]
        client = MlflowClient()
        client.create_registered_model("iris-clf")
        artifact_uri = client.get_run(first).info.artifact_uri
        client.create_model_version("iris-clf", f"{artifact_uri}/model-0.txt", run_id=first)
        expected["registered"] = {"name": "iris-clf", "version": 1, "run": first}
    expected["experiment_id"] = experiment.experiment_id
    return expected


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        file_expected = fill(f"file:{work / 'mlruns'}", work)
        with tarfile.open(out / "mlruns.tar.gz", "w:gz") as tar:
            tar.add(work / "mlruns", arcname="mlruns")
        db = out / "mlflow.db"
        db.unlink(missing_ok=True)
        shutil.rmtree(work / "mlruns")
        sql_expected = fill(f"sqlite:///{work / 'mlflow.db'}", work)
        shutil.copyfile(work / "mlflow.db", db)
        # The SQLite store's artifacts live beside it (./mlruns by default): keep them too.
        with tarfile.open(out / "mlflow-db-artifacts.tar.gz", "w:gz") as tar:
            tar.add(work / "mlruns", arcname="mlruns")
    import mlflow

    (out / "expected.json").write_text(json.dumps(
        {"mlflow_version": mlflow.__version__, "file": file_expected, "sqlite": sql_expected}, indent=1,
        sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
