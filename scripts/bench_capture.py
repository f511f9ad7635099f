"""Benchmark: capturing MLflow and TensorBoard logging under ``workbench run``, against the readers
and stores a user would otherwise use, in one run.

    .venv/bin/python scripts/bench_capture.py [--points 100000] [--mlflow-points 2000]

A. TensorBoard event files (written by tensorboardX: 4 scalar tags and some histograms): all scalars
   read by Workbench's reader (``workbench.tracking.capture_tb``, standard library only), by
   TensorBoard's own ``EventFileLoader`` (protobuf), and by ``tbparse`` where installed.
B. MLflow: what the script pays to log ``--mlflow-points`` points and 20 params through the fluent
   API into a file store (where ``workbench run`` points MLflow) and into ``sqlite:///`` (MLflow's
   default backend), each in a fresh interpreter, timed inside it from the first call to
   ``end_run()`` (imports excluded); then the points read back by Workbench's reader
   (``workbench.tracking.capture_mlflow``) and by MLflow's own client (``get_metric_history``).
C. The cost for a run that used neither library: ``libcapture.plan`` and ``libcapture.collect`` on
   a finished run that logged nothing.

Every reader's points are counted; a count that differs from what was written ends the script with
an error after printing. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def best_of(repeat: int, work):  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def bench_tensorboard(folder: Path, points: int, failures: list[str]) -> None:
    import numpy as np
    import tensorboardX

    from workbench.tracking.capture_tb import read_scalars

    tags = 4
    steps = points // tags
    writer = tensorboardX.SummaryWriter(str(folder / "tb"))
    for step in range(steps):
        for tag in range(tags):
            writer.add_scalar(f"metric{tag}", step * 0.001 + tag, step)
        if step % (steps // 100 or 1) == 0:
            writer.add_histogram("weights", np.random.default_rng(step).normal(size=1000), step)
    writer.close()
    path = next((folder / "tb").glob("*tfevents*"))
    size = path.stat().st_size
    print(f"\nA. TensorBoard event file: {steps * tags:,} scalars ({tags} tags) + 100 histograms,"
          f" {size / 1e6:.1f} MB")

    def ours() -> int:
        return sum(1 for _ in read_scalars(path))

    def tensorboards() -> int:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        from tensorboard.util import tensor_util

        count = 0
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    count += 1
                elif value.metadata.plugin_data.plugin_name == "scalars":
                    tensor_util.make_ndarray(value.tensor)
                    count += 1
        return count

    readers = [("workbench capture_tb (stdlib)", ours), ("tensorboard EventFileLoader", tensorboards)]
    try:
        import tbparse

        readers.append(("tbparse SummaryReader", lambda: len(tbparse.SummaryReader(str(path)).scalars)))
    except ImportError:
        print("  (tbparse not installed: not measured)")
    base = None
    for name, reader in readers:
        best, median, count = best_of(3, reader)
        base = base or best
        print(f"  {name:<32} best {best:7.3f} s  median {median:7.3f} s  {count / best:12,.0f} points/s"
              f"  x{best / base:5.2f}  counted {count:,}")
        if count != steps * tags:
            failures.append(f"{name} counted {count} of {steps * tags}")


MLFLOW_LOGGER = """
import sys, time
import mlflow
n = int(sys.argv[1])
start = time.perf_counter()
mlflow.log_params({f"p{i}": i for i in range(20)})
for step in range(n):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
mlflow.end_run()
print(time.perf_counter() - start)
"""

MLFLOW_READER = """
import sys, time
from mlflow.tracking import MlflowClient
start = time.perf_counter()
client = MlflowClient()
count = 0
for experiment in client.search_experiments():
    for run in client.search_runs([experiment.experiment_id]):
        count += len(client.get_metric_history(run.info.run_id, "loss"))
print(time.perf_counter() - start, count)
"""


def bench_mlflow(folder: Path, points: int, failures: list[str]) -> None:
    from workbench.tracking.capture_mlflow import local_store, read_store

    print(f"\nB. MLflow: {points:,} points of one key + 20 params through the fluent API"
          " (fresh interpreter each; imports not timed)")
    stores = [("file store (workbench run's choice)", str(folder / "mlruns")),
              ("sqlite:/// (MLflow's default)", f"sqlite:///{folder / 'mlflow.db'}")]
    for name, uri in stores:
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ALLOW_FILE_STORE": "true"}
        logged = subprocess.run([sys.executable, "-c", MLFLOW_LOGGER, str(points)], env=env, cwd=folder,
                                capture_output=True, text=True)
        if logged.returncode != 0:
            print(f"  {name:<36} could not log: {logged.stderr.strip().splitlines()[-1]}")
            continue
        seconds = float(logged.stdout.split()[-1])
        read = subprocess.run([sys.executable, "-c", MLFLOW_READER], env=env, cwd=folder,
                              capture_output=True, text=True)
        theirs = read.stdout.split() if read.returncode == 0 else ["nan", "0"]
        found = local_store(uri)
        assert found is not None
        best, _, runs = best_of(3, lambda found=found: read_store(*found))
        ours = sum(len(run.metrics.get("loss", [])) for run in runs)
        print(f"  {name:<36} logging {seconds:7.3f} s ({points / seconds:9,.0f} points/s)")
        print(f"  {'':<36} read back: workbench {best * 1000:8.1f} ms ({ours:,} points),"
              f" MlflowClient {float(theirs[0]) * 1000:8.1f} ms ({int(theirs[1]):,} points)")
        if ours != points or int(theirs[1]) != points:
            failures.append(f"{name}: read back {ours} (workbench) / {theirs[1]} (mlflow) of {points}")


def bench_no_library(folder: Path) -> None:
    from workbench.core.workspace import Workspace
    from workbench.store.db import connect
    from workbench.tracking import libcapture
    from workbench.tracking.ingest import Ingester
    from workbench.tracking.request import RunRequest

    root = folder / "proj"
    root.mkdir()
    ws, _ = Workspace.init(root)
    try:
        run = ws.runs.execute(RunRequest([sys.executable, "-c", "pass"]))
        run_dir = ws.paths.runs / run.id
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        conn = connect(ws.paths.db)
        ingester = Ingester(conn, run.id, root)
        plan_s, _, (_, capture) = best_of(200, lambda: libcapture.plan(env, run_dir, root, 0.0, True))
        collect_s, collect_median, _ = best_of(
            200, lambda: libcapture.collect(ws, conn, ingester, run.id, root=root, capture=capture))
        conn.close()
    finally:
        ws.close()
    print("\nC. A run that used neither library")
    print(f"  libcapture.plan     best {plan_s * 1e6:8.1f} us")
    print(f"  libcapture.collect  best {collect_s * 1e6:8.1f} us  median {collect_median * 1e6:8.1f} us"
          " (one query over the run's outputs, one stat)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--mlflow-points", type=int, default=2_000)
    args = parser.parse_args()
    print(load())
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        folder = Path(tmp)
        bench_tensorboard(folder, args.points, failures)
        bench_mlflow(folder, args.mlflow_points, failures)
        bench_no_library(folder)
    print("\n" + load())
    for failure in failures:
        print("ERROR:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
