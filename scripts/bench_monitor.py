#!/usr/bin/env python
"""Benchmark monitoring: what recording every answer costs, and how fast the log is ingested.

Sections (``--sections serve,ingest``; all by default):
- serve: requests/s of a local deployment (iris, logistic regression, one MLServer process) at 8
  clients with ``--log-predictions 1.0`` versus ``0`` (target: logging keeps at least 90% of the
  throughput), measured in alternating rounds; every logged request is then ingested and counted back.
- ingest: predictions ingested per second from a spool of synthetic rows with 20 features (target at
  least 50,000/s), counted back from the store.
- monitor: ``workbench monitor`` over 1,000,000 logged predictions with 20 features (target under
  2 s): spooled as the capture runtime writes them, ingested (which folds what it stores into window
  buckets, a second process folding beside it), then a monitor with nothing new (the steady state),
  one after 10,000 new spooled predictions, and the full refold a new baseline costs.

Runs in throw-away projects. Usage: .venv/bin/python scripts/bench_monitor.py [--seconds 5]
[--rounds 2] [--rows 500000] [--monitor-rows 1000000] [--features 20] [--sections serve,ingest,monitor]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

Row = tuple[str, str, float, str, str]
"""(section, measure, value, unit, target) of the result table."""
MONITOR_TARGET_S = 2.0


def bench_serve(args: argparse.Namespace) -> list[Row]:
    import joblib
    import sklearn
    from bench_serve import load
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from workbench.core.workspace import Workspace
    from workbench.deploy import serving
    from workbench.deploy.types import ModelRef

    os.environ["WORKBENCH_LOCAL_RUNTIME"] = "process"
    serving.ensure_serve_venv(serving.runtime_for("sklearn"), sklearn.__version__)
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp))
        x, y = load_iris(return_X_y=True)
        joblib.dump(LogisticRegression(max_iter=500).fit(x, y), Path(tmp) / "model.joblib")
        digest = ws.versions.put_file(Path(tmp) / "model.joblib")
        ref = ModelRef("iris", "1", digest, "sklearn", sklearn.__version__, None, "model.joblib")
        ports: dict[str, list[int]] = {}
        for name, rate in (("off", 0.0), ("on", 1.0)):
            info = ws.deployments.deploy(ref, name=name, log_predictions=rate)
            ports[name] = [int(u.rsplit(":", 1)[1]) for u in info.endpoints]
        try:
            best = {"off": 0.0, "on": 0.0}
            served_on = 0
            load(ports["off"], "off", 8, 1.0)  # warm both up
            load(ports["on"], "on", 8, 1.0)
            ws.predictions.ingest()
            before = ws.predictions.counts(["on"])["on"].predictions
            for _ in range(args.rounds):
                for name in ("off", "on"):
                    rps, _p50, _p99, errors = load(ports[name], name, 8, args.seconds)
                    best[name] = max(best[name], rps)
                    if name == "on":
                        served_on += round(rps * args.seconds) if errors == 0 else 0
            ws.predictions.ingest()
            recorded = ws.predictions.counts(["on"])["on"].predictions - before
        finally:
            for name in ports:
                ws.deployments.undeploy(name)
            ws.close()
    ratio = best["on"] / best["off"] if best["off"] else 0.0
    return [
        ("serve", "req/s at 8 clients, logging off", best["off"], "req/s", ""),
        ("serve", "req/s at 8 clients, logging 1.0", best["on"], "req/s", ""),
        ("serve", "logging on / off", ratio, "ratio", ">= 0.90"),
        ("serve", "requests recorded while timed (counted back)", recorded, "rows", f"~{served_on}"),
    ]


def synthetic_lines(count: int, features: int = 20, seed: int = 7, first: int = 0) -> bytes:
    """Spool lines as the capturing runtime writes them (rows numbered from ``first``)."""
    from workbench.deploy.capture import spool_line

    rng = random.Random(seed)
    names = [f"f{i}" for i in range(features)]
    base = {"deployment": "bench", "revision": 1, "model": "m", "version": "1", "status": "ok", "error": ""}
    lines = []
    for n in range(first, first + count):
        head = {**base, "request_id": f"r{n // 4}", "row_index": n % 4, "ts": 1.7e9 + n / 1000,
                "latency_ms": 1.2}
        lines.append(spool_line(head, {k: round(rng.gauss(0, 1), 6) for k in names}, n % 3))
    return ("\n".join(lines) + "\n").encode()


def bench_ingest(args: argparse.Namespace) -> list[Row]:
    from workbench.core.workspace import Workspace

    data = synthetic_lines(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp))
        folder = ws.paths.monitor_spool / "bench"
        folder.mkdir(parents=True)
        (folder / "r1-0.jsonl").write_bytes(data)
        start, cpu = time.perf_counter(), time.process_time()
        report = ws.predictions.ingest(clusters=False)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        stored = ws.predictions.counts(["bench"])["bench"].predictions
        again = ws.predictions.ingest(clusters=False).added
        ws.close()
    return [
        ("ingest", f"rows ingested ({len(data) / 1e6:.0f} MB of spool, 20 features)", report.added, "rows",
         str(args.rows)),
        ("ingest", "rows counted back from the store", stored, "rows", str(args.rows)),
        ("ingest", "rows added by a second ingest", again, "rows", "0"),
        ("ingest", "ingest rate", report.added / elapsed, "rows/s", ">= 50000"),
        ("ingest", "ingest rate per CPU second (load-independent)", report.added / cpu, "rows/s", ""),
        ("ingest", "load average (1 min) after the ingest", os.getloadavg()[0], "load", ""),
    ]


def bench_monitor_section(rows: int = 1_000_000, features: int = 20) -> list[Row]:
    """The "monitor" section's rows: ``(section, measure, value, unit, target)``.

    The user's path: the capture runtime's spool lines, ``ingest`` (which folds what it stores, a
    second process folding beside it for a backlog this size), then ``monitor``. Every row is
    counted back from the window buckets."""
    import numpy as np

    from workbench.core.workspace import Workspace
    from workbench.monitor.profile import build_profile

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp))
        reference = rng.normal(size=(20_000, features))
        table: dict[str, list[Any]] = {f"f{i}": reference[:, i].tolist() for i in range(features)}
        table["prediction"] = rng.integers(0, 3, size=20_000).tolist()
        ws.monitor.save_profile("m", 1, "bench", build_profile(table))
        folder = ws.paths.monitor_spool / "bench"
        folder.mkdir(parents=True)
        (folder / "r1-0.jsonl").write_bytes(synthetic_lines(rows, features))
        started, cpu = time.perf_counter(), time.process_time()
        report = ws.predictions.ingest(clusters=False)
        ingest_s, ingest_cpu = time.perf_counter() - started, time.process_time() - cpu
        ingest_load = os.getloadavg()[0]
        in_buckets = ws.db.execute("SELECT SUM(rows + errors) FROM monitor_buckets").fetchone()[0] or 0
        started = time.perf_counter()
        steady = ws.monitor.report("bench", "10000")
        steady_s = time.perf_counter() - started
        with open(folder / "r1-0.jsonl", "ab") as handle:
            handle.write(synthetic_lines(10_000, features, first=rows))
        started = time.perf_counter()
        ws.monitor.report("bench", "10000")
        incremental_s = time.perf_counter() - started
        started = time.perf_counter()
        ws.monitor.report("bench", "1h")
        hourly_s = time.perf_counter() - started
        buckets = ws.db.execute("SELECT COUNT(*) FROM monitor_buckets").fetchone()[0]
        counted = ws.db.execute("SELECT SUM(rows + errors) FROM monitor_buckets").fetchone()[0] or 0
        started, cpu = time.perf_counter(), time.process_time()
        ws.monitor.save_profile("m", 1, "bench", build_profile(table))  # a new baseline: a full refold
        refold_s, refold_cpu = time.perf_counter() - started, time.process_time() - cpu
        ws.close()
    target = f"< {MONITOR_TARGET_S * 1000:,.0f}"
    total = rows + 10_000
    return [
        ("monitor", f"predictions spooled ({features} features; setup)", rows, "rows", ""),
        ("monitor", "ingest + fold (a second process folds)", report.added / ingest_s, "rows/s", ""),
        ("monitor", f"ingest + fold of {report.added:,} rows, wall", ingest_s, "s", ""),
        ("monitor", "ingest + fold, CPU of the ingesting process", ingest_cpu, "s", ""),
        ("monitor", "load average (1 min) after the ingest", ingest_load, "load", ""),
        ("monitor", "rows counted back from the buckets after ingest", in_buckets, "rows", str(rows)),
        ("monitor", f"monitor over {rows:,} stored, window 10000 ({steady.state})", steady_s * 1000,
         "ms", target),
        ("monitor", "monitor after 10,000 new (spooled: ingest + fold)", incremental_s * 1000, "ms", target),
        ("monitor", "monitor, window 1h", hourly_s * 1000, "ms", target),
        ("monitor", f"buckets ({total:,} rows)", buckets, "buckets", ""),
        ("monitor", "rows counted back from the buckets at the end", counted, "rows", str(total)),
        ("monitor", "new baseline: refold of every row, wall", refold_s, "s", ""),
        ("monitor", "new baseline: refold rate per CPU second", total / refold_cpu, "rows/s", ""),
    ]


def bench_monitor(args: argparse.Namespace) -> list[Row]:
    """The "monitor" section with the shared script's arguments (``--monitor-rows``, ``--features``)."""
    return bench_monitor_section(getattr(args, "monitor_rows", 1_000_000), getattr(args, "features", 20))


SECTIONS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "serve": bench_serve,
    "ingest": bench_ingest,
    "monitor": bench_monitor,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per serving measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternating off/on rounds (best of)")
    parser.add_argument("--rows", type=int, default=500_000, help="rows for the ingest section")
    parser.add_argument("--monitor-rows", type=int, default=1_000_000, help="predictions for 'monitor'")
    parser.add_argument("--features", type=int, default=20, help="features per prediction ('monitor')")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="comma-separated: " + ", ".join(SECTIONS))
    args = parser.parse_args()
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    rows: list[Row] = []
    for name in wanted:
        print(f"running {name} ...", file=sys.stderr)
        rows.extend(SECTIONS[name](args))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nmonitoring benchmark, {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)")
    print(f"{'section':<8} {'measure':<52} {'value':>12} {'unit':<7} {'target':<10}")
    for section, measure, value, unit, target in rows:
        shown = f"{value:.3f}" if unit in ("ratio", "s", "load") else f"{value:,.0f}"
        print(f"{section:<8} {measure:<52} {shown:>12} {unit:<7} {target:<10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
