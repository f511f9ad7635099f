"""Benchmark: Workbench's tracking against MLflow (SQLite backend), side by side, in one run.

    .venv/bin/python scripts/bench_tracking.py [--mlflow-python PATH] [--points 100000]

Workloads, through each tool's Python API, each in a fresh interpreter and a fresh temp folder:
  A. 100,000 points of one metric;  B. 10 metrics x 10,000 steps.
Workbench, two paths, each run ``--repeat`` times (default 3, a fresh project each: 0.2 s runs are at
the mercy of a shared machine's load) and the median shown:
  in-process: ``workbench.log_metric`` in a plain script (the script's own run), then ``finish()``;
  ``workbench run``: ``python -m workbench run -q -- python child.py`` as a real process, timed from
  its start until it exits (every point durable in SQLite): the job's API writes bounded packed
  ``series`` lines to the events file, the runner tails and ingests them;
MLflow 3 with ``sqlite:///`` tracking: ``log_metric`` (timed on a sample: it costs milliseconds a call)
and ``log_batch`` (1,000 metrics a call, MLflow's limit). Reported: microseconds per call as the
training loop sees it, time until every point is durable in SQLite, points per second, the ratios,
and the points counted back from each store (a count that differs from what was logged ends the
script with an error, after printing the line). The load average is printed before and after.
Also: ingest throughput of the events file alone, and ``workbench runs`` (a real process) with
10,000 runs in the store, and the in-process reads the TUI makes (``ws.runs.list()``, a downsampled
1,000,000-point series, ``change_token()``).

MLflow is not a dependency: it runs from ``--mlflow-python`` or a venv this script creates under
~/.cache/workbench-bench/mlflow (pip install "mlflow>=3,<4").
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_VENV = Path.home() / ".cache" / "workbench-bench" / "mlflow"

WORKBENCH_CHILD = """
import json, os, sys, time
import workbench
keys, steps = int(sys.argv[1]), int(sys.argv[2])
names = [f"metric_{k}" for k in range(keys)]
workbench.log_param("bench", 1)            # starts the run (snapshot, row) before timing
start = time.perf_counter()
for step in range(steps):
    for name in names:
        workbench.log_metric(name, step * 0.001, step)
loop = time.perf_counter() - start
workbench.finish()                          # flush, ingest, finalize: every point durable
durable = time.perf_counter() - start
print(json.dumps({"loop": loop, "durable": durable}))
"""

MLFLOW_CHILD = """
import json, sys, time, logging, warnings
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
mode, keys, steps, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
mlflow.set_tracking_uri(f"sqlite:///{db}")
client = MlflowClient()
exp = client.create_experiment("bench")
run = client.create_run(exp)
rid = run.info.run_id
names = [f"metric_{k}" for k in range(keys)]
total = keys * steps
start = time.perf_counter()
if mode == "log_metric":
    sample = int(sys.argv[5])
    done = 0
    for step in range(steps):
        for name in names:
            client.log_metric(rid, name, step * 0.001, step=step)
            done += 1
            if done >= sample:
                break
        if done >= sample:
            break
    elapsed = time.perf_counter() - start
    print(json.dumps({"calls": done, "elapsed": elapsed}))
else:
    now = int(time.time() * 1000)
    batch = []
    calls = 0
    for step in range(steps):
        for name in names:
            batch.append(Metric(name, step * 0.001, now, step))
            if len(batch) == 1000:
                client.log_batch(rid, metrics=batch); batch = []; calls += 1
    if batch:
        client.log_batch(rid, metrics=batch); calls += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"calls": calls, "elapsed": elapsed}))
"""


RUN_CHILD = """
import json, sys, time
import workbench
keys, steps = int(sys.argv[1]), int(sys.argv[2])
names = [f"metric_{k}" for k in range(keys)]
start = time.perf_counter()
for step in range(steps):
    for name in names:
        workbench.log_metric(name, step * 0.001, step)
loop = time.perf_counter() - start
with open("loop.json", "w") as handle:
    json.dump({"loop": loop}, handle)
"""

LOST: list[str] = []
"""Paths whose count back differed from the points logged (the script fails at the end)."""


def _check_count(path: str, logged: int, counted: int) -> None:
    if counted != logged:
        LOST.append(f"{path}: logged {logged:,} points, counted back {counted:,}")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv[:3])}...\n{done.stderr[-2000:]}")
    return done.stdout


def _fresh_project(base: Path, name: str) -> Path:
    project = base / name
    project.mkdir()
    _run([sys.executable, "-m", "workbench", "init"], project)
    return project


def bench_workbench(base: Path, keys: int, steps: int, repeat: int = 3) -> dict[str, float]:
    """The run with the median durable time of ``repeat`` (each in a fresh project)."""
    results = [_bench_workbench_once(base, keys, steps, i) for i in range(repeat)]
    results.sort(key=lambda r: r["durable_s"])
    chosen = dict(results[len(results) // 2])
    chosen["counted"] = min(r["counted"] for r in results)  # a lost point in any run shows
    return chosen


def _bench_workbench_once(base: Path, keys: int, steps: int, attempt: int) -> dict[str, float]:
    project = _fresh_project(base, f"wb_{keys}x{steps}_{attempt}")
    (project / "child.py").write_text(textwrap.dedent(WORKBENCH_CHILD), encoding="utf-8")
    env = {k: "" for k in ("WORKBENCH_EVENTS", "WORKBENCH_RUN_ID")}
    out = json.loads(
        _run([sys.executable, "child.py", str(keys), str(steps)], project, env).strip().splitlines()[-1]
    )
    db = sqlite3.connect(project / ".workbench" / "workbench.db")
    counted = db.execute("SELECT COALESCE(SUM(count), 0) FROM metric_chunks").fetchone()[0]
    # Ingest alone: the same points as the events file a job under 'workbench run' writes (bounded
    # packed series lines, as the API's flusher writes them every half second), into a fresh run, timed.
    # (A plain script's own run hands its points to its ingester directly, without the file.)
    sys.path.insert(0, str(ROOT))
    from array import array

    from workbench.store.db import connect
    from workbench.tracking.events import series_lines
    from workbench.tracking.ingest import Ingester, ingest_events_file
    from workbench.tracking.records import create_run

    events = base / f"events_{keys}x{steps}_{attempt}.jsonl"
    now = time.time()
    with events.open("wb") as handle:
        for chunk in range(0, steps, 10_000):
            span = range(chunk, min(chunk + 10_000, steps))
            for k in range(keys):
                handle.writelines(series_lines(
                    f"metric_{k}", array("q", span), array("d", (s * 0.001 for s in span)),
                    array("d", (now + s * 1e-5 for s in span)),
                ))

    conn = connect(project / ".workbench" / "workbench.db")
    create_run(conn, "ingestbench", name="", command=[])
    start = time.perf_counter()
    ingest_events_file(Ingester(conn, "ingestbench", project), events, 0)
    ingest = time.perf_counter() - start
    again = conn.execute(
        "SELECT COALESCE(SUM(count), 0) FROM metric_chunks WHERE key_id IN"
        " (SELECT id FROM metric_keys WHERE run_id = 'ingestbench')"
    ).fetchone()[0]
    total = keys * steps
    return {
        "points": total,
        "us_per_call": out["loop"] / total * 1e6,
        "durable_s": out["durable"],
        "points_per_s": total / out["durable"],
        "counted": counted,
        "ingest_points_per_s": again / ingest,
        "ingest_counted": again,
    }


def bench_workbench_run(base: Path, keys: int, steps: int, repeat: int = 3) -> dict[str, float]:
    """``workbench run`` end to end: the run with the median durable time of ``repeat``."""
    results = [_bench_workbench_run_once(base, keys, steps, i) for i in range(repeat)]
    results.sort(key=lambda r: r["durable_s"])
    chosen = dict(results[len(results) // 2])
    chosen["counted"] = min(r["counted"] for r in results)
    return chosen


def _bench_workbench_run_once(base: Path, keys: int, steps: int, attempt: int) -> dict[str, float]:
    project = _fresh_project(base, f"run_{keys}x{steps}_{attempt}")
    (project / "child.py").write_text(textwrap.dedent(RUN_CHILD), encoding="utf-8")
    env = {k: "" for k in ("WORKBENCH_EVENTS", "WORKBENCH_RUN_ID")}
    start = time.perf_counter()
    _run([sys.executable, "-m", "workbench", "run", "-q", "--", sys.executable, "child.py", str(keys),
          str(steps)], project, env)
    durable = time.perf_counter() - start
    loop = json.loads((project / "loop.json").read_text(encoding="utf-8"))["loop"]
    db = sqlite3.connect(project / ".workbench" / "workbench.db")
    counted = db.execute("SELECT COALESCE(SUM(count), 0) FROM metric_chunks").fetchone()[0]
    dropped = db.execute("SELECT SUM(dropped_events) FROM runs").fetchone()[0]
    db.close()
    total = keys * steps
    return {
        "points": total,
        "us_per_call": loop / total * 1e6,
        "durable_s": durable,
        "points_per_s": total / durable,
        "counted": counted,
        "dropped": dropped or 0,
    }


def ensure_mlflow(python: str | None) -> str | None:
    if python:
        return python
    candidate = MLFLOW_VENV / "bin" / "python"
    if not candidate.exists():
        print(f"creating {MLFLOW_VENV} with mlflow (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(candidate), "-m", "pip", "install", "-q", "mlflow>=3,<4"], check=False)
    ok = subprocess.run([str(candidate), "-c", "import mlflow"], capture_output=True).returncode == 0
    return str(candidate) if ok else None


def bench_mlflow(python: str, base: Path, keys: int, steps: int, sample: int) -> dict[str, float]:
    folder = base / f"mlf_{keys}x{steps}"
    folder.mkdir()
    (folder / "child.py").write_text(textwrap.dedent(MLFLOW_CHILD), encoding="utf-8")
    total = keys * steps
    single = json.loads(
        _run(
            [python, "child.py", "log_metric", str(keys), str(steps), str(folder / "single.db"), str(sample)],
            folder,
        )
        .strip()
        .splitlines()[-1]
    )
    batch = json.loads(
        _run([python, "child.py", "log_batch", str(keys), str(steps), str(folder / "batch.db")], folder)
        .strip()
        .splitlines()[-1]
    )
    counted = sqlite3.connect(folder / "batch.db").execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    return {
        "points": total,
        "us_per_call": single["elapsed"] / single["calls"] * 1e6,
        "log_metric_points_per_s": single["calls"] / single["elapsed"],
        "sampled_calls": single["calls"],
        "batch_durable_s": batch["elapsed"],
        "batch_points_per_s": total / batch["elapsed"],
        "counted": counted,
    }


def bench_listing(base: Path, runs: int = 10_000) -> float:
    project = _fresh_project(base, "listing")
    sys.path.insert(0, str(ROOT))
    from workbench.store.db import atomic, connect

    conn = connect(project / ".workbench" / "workbench.db")
    now = time.time()
    with atomic(conn):
        conn.executemany(
            "INSERT INTO runs (id, name, command, status, started_at, ended_at) VALUES "
            "(?, ?, '[\"python\", \"train.py\"]', 'succeeded', ?, ?)",
            [(f"r{i:06d}", f"run-{i}", now - i, now - i + 5) for i in range(runs)],
        )
        conn.executemany(
            "INSERT INTO run_params VALUES (?, ?, ?, 'argv')",
            [(f"r{i:06d}", k, str(v)) for i in range(runs) for k, v in (("lr", i / runs), ("bs", 32))],
        )
        conn.executemany(
            "INSERT INTO metric_keys (run_id, key, count, last_step, last_value, min_value, max_value)"
            " VALUES (?, 'loss', 10, 9, ?, ?, 1.0)",
            [(f"r{i:06d}", i / runs, i / runs) for i in range(runs)],
        )
        # the summary rows the ingester keeps for every run (what a listing reads)
        from workbench.tracking.records import refresh_summary

        for i in range(runs):
            refresh_summary(conn, f"r{i:06d}")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        _run([sys.executable, "-m", "workbench", "runs", "--json"], project)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-python", help="a python that has mlflow installed")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument(
        "--mlflow-sample",
        type=int,
        default=1000,
        help="log_metric calls timed for MLflow (each costs milliseconds)",
    )
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="Workbench runs per workload (fresh project each); the median is shown")
    args = parser.parse_args()
    workloads = [(1, args.points), (10, args.points // 10)]
    python = None if args.skip_mlflow else ensure_mlflow(args.mlflow_python)
    print(_load())
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        base = Path(tmp)
        print(f"{'workload':<22}{'tool':<34}{'us/call':>10}{'durable s':>11}{'points/s':>12}{'counted':>10}")
        for keys, steps in workloads:
            label = f"{keys} x {steps:,}"
            wb = bench_workbench(base, keys, steps, args.repeat)
            print(
                f"{label:<22}{f'workbench log_metric (median of {args.repeat})':<34}"
                f"{wb['us_per_call']:>10.2f}{wb['durable_s']:>11.3f}"
                f"{wb['points_per_s']:>12,.0f}{wb['counted']:>10,}"
            )
            print(
                f"{'':<22}{'workbench ingest alone':<34}{'':>10}{'':>11}{wb['ingest_points_per_s']:>12,.0f}"
                f"{wb['ingest_counted']:>10,}"
            )
            run = bench_workbench_run(base, keys, steps, args.repeat)
            print(
                f"{'':<22}{f'workbench run (process, median of {args.repeat})':<34}"
                f"{run['us_per_call']:>10.2f}{run['durable_s']:>11.3f}"
                f"{run['points_per_s']:>12,.0f}{run['counted']:>10,}"
            )
            print(f"{'':<22}ratio: 'workbench run' end to end at "
                  f"{run['points_per_s'] / wb['points_per_s']:.2f}x the in-process path; "
                  f"dropped events {run['dropped']}")
            for path, counted in (("workbench in-process", wb["counted"]), ("workbench ingest alone",
                                  wb["ingest_counted"]), ("workbench run", run["counted"])):
                _check_count(f"{label} {path}", keys * steps, int(counted))
            if python is None:
                print(f"{'':<22}mlflow not available (--mlflow-python or network for pip)")
                continue
            ml = bench_mlflow(python, base, keys, steps, args.mlflow_sample)
            extrapolated = args.points / ml["log_metric_points_per_s"]
            print(
                f"{'':<22}{'mlflow log_metric (sampled)':<34}{ml['us_per_call']:>10.0f}{extrapolated:>11.1f}"
                f"{ml['log_metric_points_per_s']:>12,.0f}{ml['sampled_calls']:>10,}"
            )
            print(
                f"{'':<22}{'mlflow log_batch (1000/call)':<34}{'':>10}{ml['batch_durable_s']:>11.3f}"
                f"{ml['batch_points_per_s']:>12,.0f}{ml['counted']:>10,}"
            )
            print(
                f"{'':<22}ratios: call cost {ml['us_per_call'] / wb['us_per_call']:,.0f}x cheaper; "
                f"throughput {wb['points_per_s'] / ml['batch_points_per_s']:,.1f}x log_batch, "
                f"{wb['points_per_s'] / ml['log_metric_points_per_s']:,.0f}x log_metric; "
                f"'workbench run' {run['points_per_s'] / ml['batch_points_per_s']:,.1f}x log_batch; "
                f"lost points: workbench {wb['points'] - wb['counted']}, workbench run "
                f"{run['points'] - run['counted']}, mlflow batch {ml['points'] - ml['counted']}"
            )
            _check_count(f"{label} mlflow log_batch", keys * steps, int(ml["counted"]))
        listing = bench_listing(base)
        print(
            "\n'workbench runs --json' with 10,000 runs in the store (whole process, best of 3): "
            f"{listing:.3f} s"
        )
        bench_queries(base)
    print(_load())
    if LOST:
        raise SystemExit("POINTS LOST:\n  " + "\n  ".join(LOST))


def bench_queries(base: Path) -> None:
    """In-process reads the TUI makes: list() of 10,000 runs, a downsampled 1,000,000-point series,
    the change token (median of several, fresh store written through the ingester)."""
    import statistics

    from workbench.core.workspace import Workspace
    from workbench.tracking.ingest import Ingester
    from workbench.tracking.records import create_run, end_run

    project = _fresh_project(base, "queries")
    ws = Workspace.open(project)
    db = ws.db
    start = time.perf_counter()
    for i in range(10_000):
        run_id = f"q{i:07d}"
        create_run(db, run_id, name=f"run-{i}", command=["python", "train.py", "--lr", str(i % 7)])
        ing = Ingester(db, run_id, project)
        ing.add_param("lr", (i % 7) / 10, "argv")
        ing.add_param("depth", i % 11, "argv")
        points = 1_000_000 if i == 0 else 10
        for key in ("loss", "acc", "lr") if i else ("loss",):
            ing.add_series(key, list(range(points)), [1 / (s + 1) for s in range(points)],
                           [float(s) for s in range(points)])
        ing.flush()
        end_run(db, run_id, status="succeeded", exit_code=0)
    print(f"\nIn-process reads (store of 10,000 runs and 1,030,000 points written in "
          f"{time.perf_counter() - start:.1f} s):")

    def timed(label: str, call: object, repeat: int = 7, unit: str = "ms") -> None:
        samples = []
        for _ in range(repeat):
            begin = time.perf_counter()
            call()  # type: ignore[operator]
            samples.append(time.perf_counter() - begin)
        scale = 1e3 if unit == "ms" else 1e6
        print(f"  {label:<62}median {statistics.median(samples) * scale:8.1f} {unit}"
              f"  best {min(samples) * scale:8.1f} {unit}")

    def decode_all() -> None:
        for run in ws.runs.list():
            run.params, run.metrics, run.tags, run.command  # noqa: B018

    timed("ws.runs.list() (10,000 runs; fields decoded on access)", ws.runs.list)
    timed("ws.runs.list() + every run's params, metrics, tags, command", decode_all)
    timed("ws.runs.list('lr>0.3 and loss<0.5', sort='-loss')",
          lambda: ws.runs.list("lr>0.3 and loss<0.5", sort="-loss"))
    timed("metric_series(1,000,000 points, max_points=600)",
          lambda: ws.runs.metric_series("q0000000", "loss", max_points=600))
    timed("metric_series(1,000,000 points, max_points=2000)",
          lambda: ws.runs.metric_series("q0000000", "loss", max_points=2000))
    timed("ws.runs.change_token() (nothing changed)", ws.runs.change_token, repeat=101, unit="us")
    ws.close()


if __name__ == "__main__":
    main()
