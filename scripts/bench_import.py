"""Benchmark: `workbench import mlflow` of 1,000 runs x 1,000 points, beside MLflow reading the same.

    python scripts/bench_import.py [--runs 1000] [--points 1000] [--seed-runs 20] [--keep DIR]

The store is MLflow's SQLite store (its default): MLflow itself (mlflow-skinny's MlflowClient with
SQLAlchemy, ``pip install 'workbench[bench]'``) creates the schema and writes ``--seed-runs`` runs
with ``log_batch`` (a loss series of ``--points`` steps, five params, two tags, then
``set_terminated``); the rest are copies of those rows under fresh run ids, written with SQL into
MLflow's own tables, because MLflow writes about 1,500 points/s here and would take ten minutes to
write a million. MLflow then reads the whole store back (so the copies are checked to be runs MLflow
reads), which is the side-by-side figure: ``search_runs`` over the experiment and
``get_metric_history`` of every run's key. Workbench imports the same store into a fresh project.
Prints both times, the ratio and the load average (a loaded machine makes both slower).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def make_store(path: Path, runs: int, points: int, seed_runs: int) -> str:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{path}")
    experiment = client.create_experiment("bench")
    started = time.perf_counter()
    for i in range(min(seed_runs, runs)):
        run = client.create_run(experiment, run_name=f"seed-{i}")
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("loss", math.exp(-s / 100) + i / 1000, now + s, s) for s in range(points)],
            params=[Param(k, str(v)) for k, v in (("lr", 0.1 * i), ("depth", i % 7), ("opt", "adam"),
                                                 ("batch", 32), ("seed", i))],
            tags=[RunTag("team", "bench"), RunTag("kind", "seed")])
        client.set_terminated(run.info.run_id)
    seeded = min(seed_runs, runs)
    print(f"MLflow wrote {seeded} runs x {points} points in {time.perf_counter() - started:.1f}s")
    db = sqlite3.connect(path)
    seeds = [row[0] for row in db.execute("SELECT run_uuid FROM runs")]
    with db:
        for i in range(runs - seeded):
            source, new = seeds[i % len(seeds)], uuid.uuid4().hex
            db.execute("INSERT INTO runs SELECT ?, name || '-' || ?, source_type, source_name,"
                       " entry_point_name, user_id, status, start_time + ?, end_time + ?, source_version,"
                       " lifecycle_stage,"
                       " replace(artifact_uri, run_uuid, ?), experiment_id, deleted_time FROM runs"
                       " WHERE run_uuid = ?", (new, i, i, i, new, source))
            for table in ("params", "tags"):
                db.execute(f"INSERT INTO {table} (key, value, run_uuid) SELECT key, value, ? FROM {table}"
                           " WHERE run_uuid = ?", (new, source))
            db.execute("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                       " SELECT key, value + ?, timestamp, ?, step, is_nan FROM metrics WHERE run_uuid = ?",
                       (i / 1e6, new, source))
            db.execute("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
                       " SELECT key, value + ?, timestamp, step, is_nan, ? FROM latest_metrics"
                       " WHERE run_uuid = ?", (i / 1e6, new, source))
    db.close()
    return experiment


def mlflow_reads(path: Path, experiment: str) -> tuple[float, int, int]:
    from mlflow.tracking import MlflowClient

    started = time.perf_counter()
    client = MlflowClient(tracking_uri=f"sqlite:///{path}")
    runs, token = [], None
    while True:
        page = client.search_runs([experiment], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    points = sum(len(client.get_metric_history(run.info.run_id, key))
                 for run in runs for key in run.data.metrics)
    return time.perf_counter() - started, len(runs), points


def workbench_imports(path: Path) -> tuple[float, int, int]:
    from workbench.core.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "proj").mkdir()
        ws, _ = Workspace.init(Path(tmp) / "proj")
        started = time.perf_counter()
        report = ws.imports.import_("mlflow", str(path), artifacts=False)
        took = time.perf_counter() - started
        again = time.perf_counter()
        second = ws.imports.import_("mlflow", str(path), artifacts=False)
        print(f"re-import: {time.perf_counter() - again:.1f}s, {second.runs_new} new runs,"
              f" {second.points} points")
        ws.close()
    return took, report.runs_new, report.points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--seed-runs", type=int, default=20, help="runs MLflow itself writes")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the MLflow store in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-import-"))
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / f"mlflow-{args.runs}x{args.points}.db"
    if not store.exists():
        partial = store.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        experiment = make_store(partial, args.runs, args.points, args.seed_runs)
        partial.rename(store)
    else:
        experiment = str(sqlite3.connect(store).execute(
            "SELECT experiment_id FROM experiments WHERE name = 'bench'").fetchone()[0])
    ml_s, ml_runs, ml_points = mlflow_reads(store, experiment)
    wb_s, wb_runs, wb_points = workbench_imports(store)
    print(f"MLflow reads it back (search_runs + get_metric_history): {ml_s:.1f}s,"
          f" {ml_runs} runs, {ml_points} points")
    print(f"workbench import mlflow (reads and writes it):           {wb_s:.1f}s,"
          f" {wb_runs} runs, {wb_points} points")
    print(f"ratio (MLflow read / workbench import): {ml_s / wb_s:.2f}x; target: import under 60 s: "
          f"{'met' if wb_s < 60 else 'NOT met'}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
