#!/usr/bin/env python
"""Benchmark monitoring. Section "monitor": ``workbench monitor`` over 1,000,000 logged predictions
with 20 features (target: under 2 s once folded), in a throw-away project. It measures, separately,
the one-time fold of the raw predictions into window buckets (paid once per prediction, whenever
monitor or ingest first sees it), a monitor with nothing new (the steady state), and a monitor after
10,000 new predictions (the incremental fold). Other sections ("serve", "ingest") live beside it.
Usage: .venv/bin/python scripts/bench_monitor.py [--rows 1000000] [--features 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MONITOR_TARGET_S = 2.0


def _insert(ws: Any, rng: Any, start: int, count: int, features: int, t0: float) -> None:
    """``count`` predictions with JSON features, as the capture side stores them."""
    template = "{" + ",".join(f'"f{i}":%.6g' for i in range(features)) + "}"
    batch = 50_000
    for low in range(start, start + count, batch):
        n = min(batch, start + count - low)
        values = rng.normal(size=(n, features))
        outputs = (values[:, 0] + values[:, 1] > 0).astype(int)
        rows = [("bench", 1, "model", 1, f"r{low + i}", 0, t0 + (low + i) * 0.01, 1.0, "ok", "",
                 template % tuple(values[i]), str(outputs[i])) for i in range(n)]
        with ws.atomic() as db:
            db.executemany(
                "INSERT INTO predictions (deployment, revision, model, version, request_id, row_index, ts,"
                " latency_ms, status, error, features, output) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)


def bench_monitor_section(rows: int = 1_000_000, features: int = 20) -> list[tuple[str, str, str]]:
    """``(measure, value, target)`` rows of the "monitor" section."""
    import numpy as np

    from workbench.core.workspace import Workspace
    from workbench.monitor.profile import build_profile

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp))
        reference = rng.normal(size=(20_000, features))
        table: dict[str, list[Any]] = {f"f{i}": reference[:, i].tolist() for i in range(features)}
        table["prediction"] = (reference[:, 0] + reference[:, 1] > 0).astype(int).tolist()
        ws.monitor.save_profile("model", 1, "bench", build_profile(table))
        started = time.perf_counter()
        _insert(ws, rng, 0, rows, features, 1.7e9)
        inserted = time.perf_counter() - started
        started = time.perf_counter()
        folded = ws.monitor.fold("bench")
        fold_s = time.perf_counter() - started
        started = time.perf_counter()
        report = ws.monitor.report("bench", "10000", ingest=False)
        steady_s = time.perf_counter() - started
        _insert(ws, rng, rows, 10_000, features, 1.7e9)
        started = time.perf_counter()
        ws.monitor.report("bench", "10000", ingest=False)
        incremental_s = time.perf_counter() - started
        started = time.perf_counter()
        ws.monitor.report("bench", "1h", ingest=False)
        hourly_s = time.perf_counter() - started
        buckets = ws.db.execute("SELECT COUNT(*) FROM monitor_buckets").fetchone()[0]
        ws.close()
    ok = "ok" if steady_s < MONITOR_TARGET_S else "MISSED"
    return [
        ("predictions logged (setup, not timed as monitor)", f"{rows:,} x {features} features in "
         f"{inserted:.1f}s", ""),
        ("one-time fold into buckets", f"{folded:,} rows in {fold_s:.1f}s ({folded / fold_s:,.0f}/s); "
         f"{buckets:,} buckets", "once per prediction"),
        (f"monitor over {folded:,} folded, window 10000", f"{steady_s:.2f}s, state {report.state}",
         f"< {MONITOR_TARGET_S:g}s {ok}"),
        ("monitor after 10,000 new predictions", f"{incremental_s:.2f}s", f"< {MONITOR_TARGET_S:g}s"),
        ("monitor, window 1h", f"{hourly_s:.2f}s", f"< {MONITOR_TARGET_S:g}s"),
    ]


def print_section(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"## {title}")
    width = max(len(r[0]) for r in rows)
    for measure, value, target in rows:
        print(f"{measure:<{width}}  {value}  {target}".rstrip())
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    args = parser.parse_args()
    print_section("monitor", bench_monitor_section(args.rows, args.features))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
