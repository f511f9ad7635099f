"""Metric points in packed blocks, through the real ingester, readers and CLI: repeated and
out-of-order steps keep the row store's semantics (the newest value of a step wins, counted once,
min/max/rollups exact after a replacement), NaN/inf/-0.0 come back bit for bit, a store made by the
one-row-per-point schema migrates forward with every point, and a million points cost at most 12
bytes each on disk."""

from __future__ import annotations

import json
import math
import sqlite3
import struct
from pathlib import Path

import numpy as np

from tests.conftest import run_workbench
from workbench.core.workspace import Workspace
from workbench.store import migrations
from workbench.tracking.ingest import Ingester
from workbench.tracking.metrics import metric_series
from workbench.tracking.records import create_run, end_run


def _bits(value: float) -> int:
    found: int = struct.unpack("<Q", struct.pack("<d", value))[0]
    return found


def _check_buckets(ws: Workspace, run_id: str, key: str, expected: dict[int, float], max_points: int) -> None:
    """A downsampled read against the expected points: each bucket's last, min and max."""
    series = ws.runs.metric_series(run_id, key, max_points=max_points)
    steps = sorted(expected)
    index = 0
    for step, value, lo, hi in zip(series.steps, series.values, series.mins, series.maxs, strict=True):
        covered = []
        while index < len(steps) and steps[index] <= step:
            covered.append(expected[steps[index]])
            index += 1
        assert covered and _bits(value) == _bits(covered[-1])
        finite = [v for v in covered if v == v]
        if finite:
            assert (lo, hi) == (min(finite), max(finite))
        else:
            assert math.isnan(lo) and math.isnan(hi)
    assert index == len(steps)


def test_repeated_and_out_of_order_steps_across_flushes(ws: Workspace) -> None:
    create_run(ws.db, "r", name="", command=["x"])
    ing = Ingester(ws.db, "r", ws.root)
    expected: dict[int, float] = {}
    n = 30_000
    values = [math.sin(i / 300) for i in range(n)]
    ing.add_series("loss", list(range(n)), values, [float(i) for i in range(n)])
    expected.update(zip(range(n), values, strict=True))
    ing.flush()
    late = [(25_000, 9.0), (3, -7.0), (40_000, 0.5), (3, -8.0), (12_345, float("nan")), (-2, float("inf"))]
    for step, value in late:  # one point at a time, as 'metric' events arrive
        ing.add_points("loss", [step], [value], [1.0])
        expected[step] = value
    ing.flush()
    ing.add_points("loss", [7, 6, 5], [-0.0, 100.0, 2.0], [2.0, 2.0, 2.0])
    expected.update({7: -0.0, 6: 100.0, 5: 2.0})
    ing.flush()
    end_run(ws.db, "r", status="succeeded", exit_code=0)
    series = metric_series(ws.db, "r", "loss")
    assert series.steps == sorted(expected) and series.total == len(expected)
    assert [_bits(v) for v in series.values] == [_bits(expected[s]) for s in sorted(expected)]
    summary = ws.runs.get("r").metrics["loss"]
    finite = [v for v in expected.values() if v == v]
    assert summary.count == len(expected) and summary.last_step == 40_000 and summary.last == 0.5
    assert (summary.min, summary.max) == (min(finite), max(finite)) == (-8.0, math.inf)
    _check_buckets(ws, "r", "loss", expected, 100)  # from the rollups (over RAW_LIMIT points)
    _check_buckets(ws, "r", "loss", expected, 7)


def test_a_store_of_the_row_schema_migrates_forward(tmp_path: Path) -> None:
    """Built by the migrations before 0140 (one row per point), points written as that Workbench
    wrote them; after the migration every point, NaN (stored as NULL) included, reads back."""
    root = tmp_path / "proj"
    (root / ".workbench").mkdir(parents=True)
    conn = sqlite3.connect(root / ".workbench" / "workbench.db", isolation_level=None)
    migrations.applied(conn)
    conn.execute("BEGIN")
    for name, sql in migrations.all_migrations():
        if name == "0140_metric_chunks":
            continue
        assert isinstance(sql, str)
        for statement in migrations._split(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO migrations VALUES (?, 0)", (name,))
    conn.execute("INSERT INTO runs (id, status, started_at) VALUES ('old', 'succeeded', 0)")
    long_n = 120_000  # more than two batches of the migration's reads, and over its one-key bound
    rows = [(1, s, 1.7e9 + s, s * 0.25) for s in range(long_n)]
    rows += [(2, 10, 5.0, None), (2, 3, 4.0, float("inf")), (2, -1, 3.0, -0.0), (2, 11, 6.0, float("-inf"))]
    for key_id, key, points in ((1, "loss", long_n), (2, "odd", 4)):
        conn.execute("INSERT INTO metric_keys (id, run_id, key, count) VALUES (?, 'old', ?, ?)",
                     (key_id, key, points))
    conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    held = [math.nan if v is None else v for (v,) in conn.execute(
        "SELECT value FROM metrics WHERE key_id = 2 ORDER BY step")]  # the rows kept -0.0 as 0.0
    assert migrations.migrate(conn) == ["0140_metric_chunks"]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "metrics" not in tables and "metric_chunks" in tables
    loss = metric_series(conn, "old", "loss")
    assert loss.steps == list(range(long_n)) and loss.values == [s * 0.25 for s in range(long_n)]
    assert loss.times == [1.7e9 + s for s in range(long_n)]
    odd = metric_series(conn, "old", "odd")
    assert odd.steps == [-1, 3, 10, 11] and odd.times == [3.0, 4.0, 5.0, 6.0]
    assert [_bits(v) for v in odd.values] == [_bits(v) for v in held]
    assert odd.values[1:2] == [math.inf] and math.isnan(odd.values[2]) and odd.values[3] == -math.inf
    small = metric_series(conn, "old", "loss", max_points=10)  # this store has no rollups: from points
    assert small.downsampled and len(small.steps) == 10 and small.steps[-1] == long_n - 1
    assert small.maxs[-1] == (long_n - 1) * 0.25
    assert conn.execute("SELECT SUM(count) FROM metric_chunks").fetchone()[0] == long_n + 4
    conn.close()


def test_cli_reads_and_bytes_per_point(ws: Workspace) -> None:
    """``workbench runs metrics`` reads the blocks; a noisy decaying loss with wall-clock times
    takes at most 12 bytes a point in the database file."""
    create_run(ws.db, "big", name="", command=["x"])
    ing = Ingester(ws.db, "big", ws.root)
    n = 1_000_000
    rng = np.random.default_rng(7)
    steps = np.arange(n, dtype=np.int64)
    loss = (2.3 * np.exp(-steps / 200_000) + 0.02 * rng.standard_normal(n)).tolist()
    times = (1.765e9 + np.cumsum(0.004 + 0.001 * rng.random(n))).tolist()
    before = _db_bytes(ws)
    for start in range(0, n, 100_000):
        ing.add_series("loss", steps[start:start + 100_000].tolist(), loss[start:start + 100_000],
                       times[start:start + 100_000])
        ing.flush()
    ing.add_points("acc", [0, 1, 2], [0.5, float("nan"), 0.75], [1.0, 2.0, 3.0])
    ing.flush()
    end_run(ws.db, "big", status="succeeded", exit_code=0)
    ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    per_point = (_db_bytes(ws) - before) / n
    assert per_point <= 12, f"{per_point:.2f} bytes a point"
    done = run_workbench(ws.root, "metrics", "big", "acc", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["steps"] == [0, 1, 2] and data["values"][0] == 0.5 and data["values"][2] == 0.75
    done = run_workbench(ws.root, "metrics", "big", "loss", "--max-points", "50", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["total"] == n and data["downsampled"] and data["steps"][-1] == n - 1
    assert data["values"][-1] == loss[-1] and max(data["maxs"]) == max(loss)


def _db_bytes(ws: Workspace) -> int:
    folder = ws.paths.db.parent
    return sum(p.stat().st_size for p in folder.glob(ws.paths.db.name + "*"))
