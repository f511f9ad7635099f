#!/usr/bin/env python
"""Benchmark monitoring. Section "monitor": ``workbench monitor`` over 1,000,000 logged predictions
with 20 features (target: under 2 s once folded), in a throw-away project. It measures, separately,
the one-time fold of the raw predictions into window buckets (paid once per prediction, whenever
monitor or ingest first sees it), a monitor with nothing new (the steady state), and a monitor after
10,000 new predictions (the incremental fold). Other sections ("serve", "ingest") live beside it.
Usage: .venv/bin/python scripts/bench_monitor.py [--monitor-rows 1000000] [--features 20]
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
Row = tuple[str, str, float, str, str]
"""(section, measure, value, unit, target), the shared result table of scripts/bench_monitor.py."""


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


def bench_monitor_section(rows: int = 1_000_000, features: int = 20) -> list[Row]:
    """The "monitor" section's rows: ``(section, measure, value, unit, target)``."""
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
    target = f"< {MONITOR_TARGET_S * 1000:,.0f}"
    return [
        ("monitor", f"predictions logged ({features} features; setup)", rows, "rows", ""),
        ("monitor", "seconds to log them (setup, not monitor)", inserted, "s", ""),
        ("monitor", "one-time fold into buckets (once per prediction)", folded / fold_s, "rows/s", ""),
        ("monitor", f"buckets after the fold ({folded:,} rows)", buckets, "buckets", ""),
        ("monitor", f"monitor over {folded:,} folded, window 10000 ({report.state})", steady_s * 1000,
         "ms", target),
        ("monitor", "monitor after 10,000 new predictions", incremental_s * 1000, "ms", target),
        ("monitor", "monitor, window 1h", hourly_s * 1000, "ms", target),
    ]


def bench_monitor(args: argparse.Namespace) -> list[Row]:
    """The "monitor" section with the shared script's arguments (``--monitor-rows``, ``--features``)."""
    return bench_monitor_section(getattr(args, "monitor_rows", 1_000_000), getattr(args, "features", 20))


def print_rows(rows: list[Row]) -> None:
    print(f"{'section':<8} {'measure':<60} {'value':>12} {'unit':<7} {'target':<10}")
    for section, measure, value, unit, target in rows:
        shown = f"{value:.3f}" if unit in ("ratio", "s") else f"{value:,.0f}"
        print(f"{section:<8} {measure:<60} {shown:>12} {unit:<7} {target:<10}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitor-rows", type=int, default=1_000_000, help="predictions for 'monitor'")
    parser.add_argument("--features", type=int, default=20)
    print_rows(bench_monitor(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
