"""Benchmark: packed metric storage (issue 18) against MLflow's ``log_batch``, side by side, in one run.

    .venv/bin/python scripts/bench_metrics.py [--points 1000000] [--mlflow-points 50000] [--repeat 3]

Measured, each in a fresh project and a fresh interpreter:
  1. ``workbench run -- python child.py`` (cold: ``WORKBENCH_WARM=0``, so the runner is this script's
     child and its CPU time is counted) where the child calls ``workbench.log_metric`` ``--points``
     times (one key, a noisy decaying loss, step + 1): the loop's cost per call (wall clock, and
     the process's CPU time, which load does not inflate), and the time from the first call until
     every point is durable (``workbench run`` has exited: ingested, committed, run finished), as
     points per second; also the CPU seconds of runner and job together, from start to exit. Every
     point is counted back from the store.
  2. Bytes per point on disk of a typical training curve (noisy decaying loss, step + 1, wall time
     20 ms apart with jitter), written through the ingester: the database file's growth.
  3. MLflow (SQLite tracking store) logging the same curve with ``log_batch`` (1,000 metrics a call,
     its limit), ``--mlflow-points`` of them (it writes about 8,000 points/s here): points per
     second until durable, and its database's bytes per point. Counted back too.
Printed: each figure, the ratios, and the load average before and after. MLflow must be importable
by ``--mlflow-python`` (default: this interpreter); without it the script says so and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN_CHILD = """
import json, math, random, sys, time
import workbench
n = int(sys.argv[1])
rnd = random.random
exp = math.exp
values = [2.3 * exp(-i / (n / 5)) + 0.05 * rnd() for i in range(n)]   # made before timing
log = workbench.log_metric
first = time.time()
start, cpu = time.perf_counter(), time.process_time()
for i in range(n):
    log("loss", values[i], i)
loop, loop_cpu = time.perf_counter() - start, time.process_time() - cpu
with open("loop.json", "w") as handle:
    json.dump({"first": first, "loop": loop, "loop_cpu": loop_cpu}, handle)
"""

MLFLOW_CHILD = """
import json, logging, math, random, sys, time, warnings
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
n, db = int(sys.argv[1]), sys.argv[2]
random.seed(3)
mlflow.set_tracking_uri(f"sqlite:///{db}")
client = MlflowClient()
run = client.create_run(client.create_experiment("bench"))
rid = run.info.run_id
now = time.time()
stamp, metrics = now, []
for i in range(n):
    stamp += 0.02 + 0.004 * random.random()
    value = 2.3 * math.exp(-i / (n / 5)) + 0.05 * random.random()
    metrics.append(Metric("loss", value, int(stamp * 1000), i))
size_before = __import__("os").path.getsize(db)
start = time.perf_counter()
for at in range(0, n, 1000):
    client.log_batch(rid, metrics=metrics[at:at + 1000])
elapsed = time.perf_counter() - start
print(json.dumps({"elapsed": elapsed, "size_before": size_before}))
"""


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _run(argv: list[str], cwd: Path, timeout: float = 3600) -> str:
    # WORKBENCH_WARM=0: every round runs the recorder in this script's child, so its CPU time is
    # counted (a warm recorder's worker is nobody's child here); the first call -> durable time
    # does not include the recorder's start-up either way.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORKBENCH_WARM": "0"}
    # PYTHONDONTWRITEBYTECODE would make every process compile its modules again (about a second
    # under load): an installed Workbench has its bytecode
    for name in ("WORKBENCH_EVENTS", "WORKBENCH_RUN_ID", "WORKBENCH_PROJECT", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv[:4])} ...\n{done.stderr[-2000:]}")
    return done.stdout


def _project(base: Path, name: str) -> Path:
    project = base / name
    project.mkdir()
    _run([sys.executable, "-m", "workbench", "init"], project)
    return project


def _db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


def bench_run(base: Path, points: int, attempt: int) -> dict[str, float]:
    """One ``workbench run`` of the logging child: per-call cost, first call -> durable, counted."""
    project = _project(base, f"run{attempt}")
    (project / "child.py").write_text(textwrap.dedent(RUN_CHILD), encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    _run([sys.executable, "-m", "workbench", "run", "-q", "--", sys.executable, "child.py", str(points)],
         project)
    durable_at = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timing = json.loads((project / "loop.json").read_text(encoding="utf-8"))
    db = sqlite3.connect(project / ".workbench" / "workbench.db")
    stored = db.execute("SELECT COALESCE(SUM(count), 0) FROM metric_chunks").fetchone()[0]
    counted = db.execute("SELECT COALESCE(SUM(count), 0) FROM metric_keys").fetchone()[0]
    dropped = db.execute("SELECT SUM(dropped_events) FROM runs").fetchone()[0] or 0
    db.close()
    elapsed = durable_at - timing["first"]
    return {"us_per_call": timing["loop"] / points * 1e6, "cpu_s": cpu, "durable_s": elapsed,
            "cpu_us_per_call": timing["loop_cpu"] / points * 1e6,
            "points_per_s": points / elapsed, "stored": stored, "counted": counted, "dropped": dropped}


def bench_bytes(base: Path, points: int) -> float:
    """Bytes per point of a typical curve written through the ingester (the file's growth)."""
    sys.path.insert(0, str(ROOT))
    import random

    from workbench.store.db import connect
    from workbench.tracking.ingest import Ingester
    from workbench.tracking.records import create_run, end_run

    project = _project(base, "bytes")
    db_path = project / ".workbench" / "workbench.db"
    conn = connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = _db_bytes(db_path)
    create_run(conn, "curve", name="", command=[])
    ingester = Ingester(conn, "curve", project)
    random.seed(3)
    stamp = time.time()
    for at in range(0, points, 8192):  # as the packed lines of a job arrive
        steps = list(range(at, min(at + 8192, points)))
        values, times = [], []
        for i in steps:
            stamp += 0.02 + 0.004 * random.random()
            values.append(2.3 * 2.718281828459045 ** (-i / (points / 5)) + 0.05 * random.random())
            times.append(stamp)
        ingester.add_series("loss", steps, values, times)
    ingester.flush()
    end_run(conn, "curve", status="succeeded", exit_code=0)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return (_db_bytes(db_path) - before) / points


def bench_mlflow(python: str, base: Path, points: int) -> dict[str, float]:
    folder = base / "mlflow"
    folder.mkdir()
    (folder / "child.py").write_text(textwrap.dedent(MLFLOW_CHILD), encoding="utf-8")
    db = folder / "mlflow.db"
    out = json.loads(_run([python, "child.py", str(points), str(db)], folder).strip().splitlines()[-1])
    conn = sqlite3.connect(db)
    counted = conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"points_per_s": points / out["elapsed"], "durable_s": out["elapsed"], "counted": counted,
            "bytes_per_point": (_db_bytes(db) - out["size_before"]) / points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--mlflow-points", type=int, default=50_000)
    parser.add_argument("--mlflow-python", default=sys.executable)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    probe = subprocess.run([args.mlflow_python, "-c", "import mlflow"], capture_output=True)
    if probe.returncode != 0:
        raise SystemExit(f"mlflow is not importable by {args.mlflow_python}: no ratio can be shown"
                         " (pip install mlflow-skinny, or pass --mlflow-python)")
    print(_load())
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        base = Path(tmp)
        runs = [bench_run(base, args.points, i) for i in range(args.repeat)]
        for r in runs:
            if r["stored"] != args.points or r["counted"] != args.points or r["dropped"]:
                failures.append(f"workbench run stored {r['stored']:,} (counted {r['counted']:,}, dropped"
                                f" events {r['dropped']}) of {args.points:,} points")
        runs.sort(key=lambda r: r["durable_s"])
        median = runs[len(runs) // 2]
        calls = statistics.median(r["us_per_call"] for r in runs)
        cpu_calls = statistics.median(r["cpu_us_per_call"] for r in runs)
        cpu_total = statistics.median(r["cpu_s"] for r in runs)
        wb_bytes = bench_bytes(base, args.points)
        ml = bench_mlflow(args.mlflow_python, base, args.mlflow_points)
        if ml["counted"] != args.mlflow_points:
            failures.append(f"mlflow stored {ml['counted']:,} of {args.mlflow_points:,} points")
        print(f"{'':<44}{'us/call':>9}{'durable s':>11}{'points/s':>12}{'bytes/pt':>10}{'counted':>11}")
        print(f"{f'workbench run, {args.points:,} log_metric (median of {args.repeat})':<44}{calls:>9.3f}"
              f"{median['durable_s']:>11.3f}{median['points_per_s']:>12,.0f}{'':>10}{median['stored']:>11,}")
        print(f"{'  each run: points/s':<44}" + "  ".join(f"{r['points_per_s']:,.0f}" for r in runs))
        print(f"{'  CPU (load does not count):':<44}{cpu_calls:>9.3f} us/call (the job's process, its drain"
              f" thread too); job + runner {cpu_total:.2f} CPU s from start to exit, "
              f"{args.points / cpu_total:,.0f} points per CPU second")
        print(f"{f'workbench store, typical curve of {args.points:,}':<44}{'':>9}{'':>11}{'':>12}"
              f"{wb_bytes:>10.2f}")
        print(f"{f'mlflow log_batch, {args.mlflow_points:,} points':<44}{'':>9}{ml['durable_s']:>11.3f}"
              f"{ml['points_per_s']:>12,.0f}{ml['bytes_per_point']:>10.2f}{ml['counted']:>11,}")
        print(f"ratios: 'workbench run' end to end {median['points_per_s'] / ml['points_per_s']:,.1f}x"
              f" mlflow log_batch's points/s; {ml['bytes_per_point'] / wb_bytes:,.1f}x fewer bytes per point")
        rate = median["points_per_s"]
        print("targets: >= 1,000,000 points/s end to end: "
              f"{'met' if rate >= 1e6 else 'MISSED'}; >= 100x log_batch: "
              f"{'met' if rate >= 100 * ml['points_per_s'] else 'MISSED'}; < 1 us/call: wall "
              f"{'met' if calls < 1 else 'MISSED'}, CPU {'met' if cpu_calls < 1 else 'MISSED'};"
              " <= 12 bytes/point: "
              f"{'met' if wb_bytes <= 12 else 'MISSED'}")
    print(_load())
    if failures:
        raise SystemExit("POINTS LOST:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
