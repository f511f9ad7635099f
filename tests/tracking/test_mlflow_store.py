"""One reader of MLflow's local stores (``tracking/mlflow_store.py``) behind both live capture
(``capture_mlflow.read_store``) and ``workbench import mlflow``: on the stores real MLflow 3.18 wrote
(tests/importers/data), both see the same runs, params, tags and points as MLflow's own client did
(expected.json); both leave out deleted runs and runs of deleted experiments, and neither follows a
link out of a file store."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import tarfile
from pathlib import Path
from typing import Any

import pytest

from workbench.importers.mlflow_files import open_file_store
from workbench.importers.mlflow_sqlite import open_sqlite_store
from workbench.importers.model import Source, sorted_series
from workbench.tracking.capture_mlflow import read_store

DATA = Path(__file__).parents[1] / "importers" / "data"
EXPECTED = json.loads((DATA / "expected.json").read_text())


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Path]:
    with tarfile.open(DATA / "mlruns.tar.gz") as tar:
        tar.extractall(tmp_path / "file", filter="data")
    (tmp_path / "sql").mkdir()
    with gzip.open(DATA / "mlflow.db.gz") as src, (tmp_path / "sql" / "mlflow.db").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return {"file": tmp_path / "file" / "mlruns", "sqlite": tmp_path / "sql" / "mlflow.db"}


def _open(kind: str, path: Path) -> Source:
    return open_file_store(path) if kind == "file" else open_sqlite_store(path)


def _both(kind: str, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """run id -> (params, user tags, {key: {step: value}}) as capture and as the importer read them."""
    captured = {}
    for run in read_store(kind, path):
        points = {key: {step: value for step, _, value in sorted(p, key=lambda x: x[1])}
                  for key, p in run.metrics.items()}
        tags = {k: v for k, v in run.tags.items() if not k.startswith("mlflow.")}
        captured[run.run_id] = (run.params, tags, points)
    imported = {}
    for source_run in _open(kind, path).runs():
        series = {key: sorted_series(s) for key, s in source_run.load_metrics().items()}
        imported[source_run.source_id] = (
            source_run.params,
            {k: v for k, v in source_run.tags.items() if not k.startswith("mlflow.") and k != "experiment"},
            {key: dict(zip(s.steps, s.values, strict=True)) for key, s in series.items()})
    return captured, imported


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_capture_and_import_read_a_store_alike(stores: dict[str, Path], kind: str) -> None:
    captured, imported = _both(kind, stores[kind])
    expected = EXPECTED[kind]["runs"]
    assert set(captured) == set(imported) == set(expected)
    assert captured == imported
    for run_id, want in expected.items():
        params, tags, points = captured[run_id]
        assert params == want["params"] and tags == want["tags"]
        assert {key: series[max(series)] for key, series in points.items()} == pytest.approx(want["metrics"])


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_deleted_runs_and_experiments_are_left_out_by_both(stores: dict[str, Path], kind: str) -> None:
    gone, *kept = sorted(EXPECTED[kind]["runs"])
    path = stores[kind]
    if kind == "file":
        meta = path / EXPECTED["file"]["experiment_id"] / gone / "meta.yaml"
        meta.write_text(meta.read_text().replace("lifecycle_stage: active", "lifecycle_stage: deleted"))
    else:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE runs SET lifecycle_stage = 'deleted' WHERE run_uuid = ?", (gone,))
    captured, imported = _both(kind, path)
    assert set(captured) == set(imported) == set(kept)

    if kind == "file":
        meta = path / EXPECTED["file"]["experiment_id"] / "meta.yaml"
        meta.write_text(meta.read_text().replace("lifecycle_stage: active", "lifecycle_stage: deleted"))
    else:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE experiments SET lifecycle_stage = 'deleted' WHERE experiment_id = ?",
                       (EXPECTED["sqlite"]["experiment_id"],))
    captured, imported = _both(kind, path)
    assert set(captured) == set(imported) == set()


def test_a_link_in_a_file_store_is_not_followed(stores: dict[str, Path], tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    run_id = sorted(EXPECTED["file"]["runs"])[0]
    (stores["file"] / EXPECTED["file"]["experiment_id"] / run_id / "params" / "stolen").symlink_to(secret)
    captured, imported = _both("file", stores["file"])
    assert "stolen" not in captured[run_id][0] and "stolen" not in imported[run_id][0]
    assert captured == imported
