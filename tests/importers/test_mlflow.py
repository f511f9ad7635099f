"""`workbench import mlflow` against stores made by real MLflow 3.18 (tests/importers/data, see
make_mlflow_fixtures.py): the file store (mlruns) and the SQLite store with a registered model.
Everything is compared with what MLflow's own client read back (expected.json) and, point by point,
with the store's own rows; a second import adds nothing."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.importers.model import SOURCE_TAG

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "expected.json").read_text())
STATUS = {"FINISHED": "succeeded", "FAILED": "failed"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mlflow-stores")
    with tarfile.open(DATA / "mlruns.tar.gz") as tar:
        tar.extractall(root / "file", filter="data")
    (root / "sql").mkdir()
    with gzip.open(DATA / "mlflow.db.gz") as src, (root / "sql" / "mlflow.db").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    with tarfile.open(DATA / "mlflow-db-artifacts.tar.gz") as tar:
        tar.extractall(root / "sql", filter="data")
    return root


def _source_points(stores: Path, kind: str, run_id: str) -> dict[str, dict[int, float]]:
    """Every point as the store holds it (the last logged wins per step, as MLflow's latest does)."""
    out: dict[str, dict[int, float]] = {}
    if kind == "file":
        exp = EXPECTED["file"]["experiment_id"]
        for path in (stores / "file" / "mlruns" / exp / run_id / "metrics").iterdir():
            for line in path.read_text().splitlines():
                _, value, step = line.split()
                out.setdefault(path.name, {})[int(step)] = float(value)
    else:
        db = sqlite3.connect(stores / "sql" / "mlflow.db")
        for key, value, step in db.execute(
                "SELECT key, value, step FROM metrics WHERE run_uuid = ? ORDER BY timestamp", (run_id,)):
            out.setdefault(key, {})[int(step)] = float(value)
        db.close()
    return out


def _check(ws: Workspace, stores: Path, kind: str, report: dict[str, Any]) -> None:
    expected = EXPECTED["file" if kind == "file" else "sqlite"]
    assert report["runs_seen"] == len(expected["runs"]) == report["runs_new"]
    for source_id, want in expected["runs"].items():
        run = ws.runs.get(report["run_ids"][source_id])
        assert run.name == want["name"]
        assert run.status == STATUS[want["status"]]
        assert run.started_at == pytest.approx(want["start_time"] / 1000)
        assert run.ended_at == pytest.approx(want["end_time"] / 1000)
        assert {k: v for k, v in run.params.items()} == want["params"]
        assert {k: v for k, v in run.tags.items() if not k.startswith("mlflow.")} == {
            **want["tags"], "experiment": expected["experiment"], SOURCE_TAG: f"mlflow:{source_id}"}
        assert {k: m.last for k, m in run.metrics.items()} == want["metrics"]
        assert run.metrics["loss"].count == want["loss_points"]
        points = _source_points(stores, kind, source_id)
        for key, by_step in points.items():
            series = ws.runs.metric_series(run.id, key)
            assert dict(zip(series.steps, series.values, strict=True)) == by_step
        outputs = {f.path: f for f in ws.runs.outputs(run.id)}
        (artifact,) = outputs
        assert artifact.startswith("mlflow-artifacts/model-") and outputs[artifact].hash


def test_file_store_imported_as_mlflow_reads_it_and_reimport_adds_nothing(
        stores: Path, ws: Workspace, cli: Any) -> None:
    result = cli(ws.root, "import", "mlflow", str(stores / "file" / "mlruns"), "--json")
    assert result.code == 0, result.err
    _check(ws, stores, "file", json.loads(result.out))
    again = cli(ws.root, "import", "mlflow", str(stores / "file" / "mlruns"), "--json")
    second = json.loads(again.out)
    assert (second["runs_new"], second["runs_updated"], second["points"], second["artifacts"]) == (0, 0, 0, 0)
    assert len(ws.runs.list()) == 3


def test_sqlite_store_with_registered_model(stores: Path, ws: Workspace, cli: Any) -> None:
    db = stores / "sql" / "mlflow.db"
    result = cli(ws.root, "import", "mlflow", f"sqlite:///{db}", "--json")  # four slashes: absolute
    assert result.code == 0, result.err
    report = json.loads(result.out)
    _check(ws, stores, "sql", report)
    registered = EXPECTED["sqlite"]["registered"]
    version = ws.runs.model_version(f"{registered['name']}:{registered['version']}")
    assert version.run_id == report["run_ids"][registered["run"]]
    ws.versions.export_object(version.hash, stores / "exported-model")
    assert (stores / "exported-model").read_bytes() == b"weights for C=0.1\n"
    again = json.loads(cli(ws.root, "import", "mlflow", str(db), "--json").out)
    assert (again["runs_new"], again["points"], again["models_new"]) == (0, 0, 0)
    assert len(ws.runs.models()) == 1


def test_reimport_adds_only_new_points(stores: Path, tmp_path: Path, ws: Workspace) -> None:
    """A store that grew since the last import: only the new points (and the new end) come in."""
    db_path = tmp_path / "grow.db"
    shutil.copyfile(stores / "sql" / "mlflow.db", db_path)
    first = ws.imports.import_("mlflow", str(db_path), artifacts=False)
    run_id = next(iter(EXPECTED["sqlite"]["runs"]))
    db = sqlite3.connect(db_path)
    db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                   " VALUES (?, ?, ?, ?, ?, 0)",
                   [("loss", 0.5, 1796347999000 + s, run_id, s) for s in range(50, 60)])
    db.commit()
    db.close()
    second = ws.imports.import_("mlflow", str(db_path), artifacts=False)
    assert (second.runs_new, second.runs_updated, second.points) == (0, 1, 10)
    assert ws.runs.get(first.run_ids[run_id]).metrics["loss"].count == 60


def test_bad_targets_are_one_line_errors(tmp_path: Path, ws: Workspace) -> None:
    (tmp_path / "notes.db").write_text("not a database")
    for target, words in ((str(tmp_path / "missing"), "no such MLflow store"),
                          (str(tmp_path / "notes.db"), "is not an SQLite database"),
                          (str(tmp_path), "is not an MLflow file store")):
        result = run_workbench(ws.root, "import", "mlflow", target)
        assert result.returncode == 2
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_nested_runs_keep_their_parent(tmp_path: Path, ws: Workspace) -> None:
    """``mlflow.start_run(nested=True)`` (a tuning sweep's trials): the child points at its parent;
    a version registered from the last trial, with an alias, comes in from the file store's registry."""
    pytest.importorskip("mlflow")
    script = (
        "import mlflow\n"
        f"mlflow.set_tracking_uri('file:{tmp_path / 'mlruns'}')\n"
        "with mlflow.start_run(run_name='sweep'):\n"
        "    for lr in (0.1, 0.2):\n"
        "        with mlflow.start_run(run_name=f'trial-{lr}', nested=True):\n"
        "            mlflow.log_param('lr', lr)\n"
        "            mlflow.log_metric('loss', lr * 2)\n"
        "            open('w.txt', 'w').write(f'weights {lr}')\n"
        "            mlflow.log_artifact('w.txt')\n"
        "            uri = mlflow.get_artifact_uri('w.txt')\n"
        "            run_id = mlflow.active_run().info.run_id\n"
        "client = mlflow.MlflowClient()\n"
        "client.create_registered_model('tuned')\n"
        "version = client.create_model_version('tuned', uri, run_id=run_id)\n"
        "client.set_registered_model_alias('tuned', 'champion', version.version)\n")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=300, capture_output=True,
                   env={**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_ALLOW_FILE_STORE": "true"})
    report = ws.imports.import_("mlflow", str(tmp_path / "mlruns"))
    assert report.runs_new == 3
    runs = {run.name: run for run in ws.runs.list()}
    assert runs["trial-0.1"].parent_run == runs["trial-0.2"].parent_run == runs["sweep"].id
    assert runs["trial-0.2"].params == {"lr": "0.2"} and runs["trial-0.2"].metrics["loss"].last == 0.4
    champion = ws.runs.model_version("tuned@champion")  # the file store's registry, alias included
    assert champion.run_id == runs["trial-0.2"].id and report.models_new == 1


def test_artifact_locations_are_found_where_the_store_was_moved(tmp_path: Path) -> None:
    """Stores are copied about: an absolute path that is gone is looked for again beside the store,
    a server's ``mlflow-artifacts:/`` under its ./mlartifacts, a relative one from the store's folder."""
    from workbench.importers.mlflow_common import local_path

    for folder in ("mlruns/1/abc/artifacts", "mlartifacts/1/def/artifacts"):
        (tmp_path / folder).mkdir(parents=True)
    here, served = tmp_path / "mlruns/1/abc/artifacts", tmp_path / "mlartifacts/1/def/artifacts"
    assert local_path("file:///gone/away/mlruns/1/abc/artifacts", [tmp_path]) == here
    assert local_path("/gone/mlruns/1/abc/artifacts", [tmp_path]) == here
    assert local_path("./mlruns/1/abc/artifacts", [tmp_path]) == here
    assert local_path("mlflow-artifacts:/1/def/artifacts", [tmp_path]) == served
    assert local_path("s3://bucket/1/abc/artifacts", [tmp_path]) is None
    assert local_path("/gone/mlruns/1/zzz/artifacts", [tmp_path]) is None
