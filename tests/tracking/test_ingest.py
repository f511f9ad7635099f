"""The wire format and the ingester: batches, NaN/inf, bad input noted not fatal, fuzzed."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.core.workspace import Workspace
from workbench.store.db import connect
from workbench.tracking import events
from workbench.tracking.ingest import Ingester
from workbench.tracking.metrics import metric_series
from workbench.tracking.records import create_run, load_runs


def _ingester(ws: Workspace, run_id: str = "r1") -> Ingester:
    create_run(ws.db, run_id, name="t", command=["x"])
    return Ingester(ws.db, run_id, ws.root)


def _logs(ws: Workspace, run_id: str = "r1") -> list[str]:
    return [r[0] for r in ws.db.execute("SELECT line FROM run_logs WHERE run_id = ? ORDER BY seq", (run_id,))]


def test_encode_decode_round_trip_with_marker_and_nan() -> None:
    line = events.encode_marked({"e": "metric", "k": "loss", "v": math.nan, "s": 3})
    assert line.startswith(b"@@workbench@@ ")
    event = events.decode(line.rstrip(b"\n"))
    assert event["k"] == "loss" and math.isnan(event["v"]) and event["s"] == 3


def test_series_metrics_params_tags_files_are_stored(ws: Workspace) -> None:
    ing = _ingester(ws)
    ing.feed_line(events.encode({"e": "series", "k": "loss", "s": [0, 1, 2], "v": [1.0, math.inf, math.nan],
                                 "t": [1.0, 2.0, 3.0]}))
    ing.feed_line(events.encode({"e": "metrics", "v": {"acc": 0.5, "f1": 0.25}, "s": 7}))
    ing.feed_line(events.encode({"e": "params", "v": {"lr": 0.1, "opt": "adam"}}))
    ing.feed_line(events.encode({"e": "tag", "k": "team", "v": "vision"}))
    ing.feed_line(events.encode({"e": "input", "path": str(ws.root / "data.csv"), "src": "api"}))
    ing.feed_line(events.encode({"e": "output", "path": str(ws.root / ".workbench" / "x"), "src": "audit"}))
    ing.flush()
    series = metric_series(ws.db, "r1", "loss")
    assert series.steps == [0, 1, 2]
    assert series.values[1] == math.inf and math.isnan(series.values[2])
    run = load_runs(ws.db, ["r1"])[0]
    assert run.params == {"lr": 0.1, "opt": "adam"} and run.tags == {"team": "vision"}
    assert run.metrics["acc"].last == 0.5 and run.metrics["acc"].last_step == 7
    assert math.isnan(run.metrics["loss"].last) and run.metrics["loss"].max == math.inf
    files = ws.db.execute("SELECT direction, path FROM run_files").fetchall()
    assert [tuple(f) for f in files] == [("input", "data.csv")]  # the store's own files are never recorded


def test_bad_input_is_noted_not_fatal(ws: Workspace) -> None:
    ing = _ingester(ws)
    ing.feed_line(events.encode({"e": "metric", "k": "ok", "v": 1.0}))
    ing.flush()
    ing.feed_line(b"not json at all")
    ing.feed_line(b"\xff\xfe\x00garbage")
    ing.feed_line(b'{"e": 3}')
    ing.feed_line(b"[1, 2]")
    ing.feed_line(events.encode({"e": "metric", "k": "acc", "v": "high"}))
    ing.feed_line(events.encode({"e": "metric", "k": "x" * 300, "v": 1.0}))
    ing.feed_line(events.encode({"e": "metric", "k": "big", "v": 1.0, "s": 2**70}))
    ing.feed_line(events.encode({"e": "series", "k": "s", "v": 5}))
    ing.feed_line(events.encode({"e": "future-kind", "x": 1}))
    ing.feed_line(events.encode({"e": "metric", "k": "ok", "v": 2.0}))
    ing.flush()
    assert ing.bad_lines >= 5
    assert metric_series(ws.db, "r1", "ok").values == [1.0, 2.0]
    keys = [r[0] for r in ws.db.execute("SELECT key FROM metric_keys WHERE count > 0")]
    assert "acc" not in keys and not any(len(k) > 250 for k in keys)
    notes = _logs(ws)
    assert any("malformed" in n for n in notes) and any("non-numeric" in n for n in notes)


def test_auto_steps_continue_after_explicit_ones(ws: Workspace) -> None:
    ing = _ingester(ws)
    ing.add_points("loss", [None, None, 10, None], [1.0, 2.0, 3.0, 4.0], [0.0] * 4)
    ing.flush()
    assert metric_series(ws.db, "r1", "loss").steps == [0, 1, 10, 11]
    # a new ingester (a resumed run) continues from the stored last step
    again = Ingester(ws.db, "r1", ws.root)
    again.add_points("loss", [None], [5.0], [0.0])
    again.flush()
    assert metric_series(ws.db, "r1", "loss").steps[-1] == 12


def test_binary_log_lines_are_kept_readable(ws: Workspace) -> None:
    ing = _ingester(ws)
    ing.add_log("stdout", b"\x00\x9f\x92\x96 caf\xc3\xa9")
    ing.flush()
    (line,) = _logs(ws)
    assert "café" in line and "\x00" not in line


_lines = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(
        st.sampled_from(["e", "k", "v", "s", "t", "path"]),
        st.one_of(st.sampled_from(["metric", "series", "metrics", "param", "tag", "input", "model"]),
                  st.floats(allow_nan=True), st.integers(), st.text(max_size=20),
                  st.lists(st.one_of(st.floats(), st.integers(), st.none()), max_size=5),
                  st.dictionaries(st.text(max_size=5), st.floats(), max_size=3)),
        max_size=5,
    )),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_lines, max_size=20))
def test_fuzz_ingester_never_crashes_and_never_loses_stored_points(ws: Workspace, lines: list[bytes]) -> None:
    run_id = f"fz{abs(hash(tuple(lines))) % 10**12}"
    if ws.db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
        return
    ing = _ingester(ws, run_id)
    ing.add_points("anchor", [0, 1], [1.0, 2.0], [0.0, 0.0])
    ing.flush()
    for line in lines:
        ing.feed_line(line)
    ing.flush()
    series = metric_series(ws.db, run_id, "anchor")
    assert series.values[:2] == [1.0, 2.0]


def test_relogged_steps_replace_and_count_once(ws: Workspace) -> None:
    ing = _ingester(ws)
    ing.add_points("loss", [0, 1, 2], [1.0, 2.0, 3.0], [0.0] * 3)
    ing.flush()
    ing.add_points("loss", [1, 3, 3], [20.0, 4.0, 40.0], [1.0] * 3)  # step 1 again, step 3 twice
    ing.add_series("acc", [0, 1], [0.5, 0.6], [0.0, 0.0])
    ing.add_series("acc", [1, 2], [0.7, 0.8], [0.0, 0.0])  # same batch, step 1 again
    ing.flush()
    loss = metric_series(ws.db, "r1", "loss")
    assert loss.steps == [0, 1, 2, 3] and loss.values == [1.0, 20.0, 3.0, 40.0]
    assert metric_series(ws.db, "r1", "acc").values == [0.5, 0.7, 0.8]
    (run,) = load_runs(ws.db, ["r1"])
    assert run.metrics["loss"].count == 4 and run.metrics["loss"].last == 40.0
    assert run.metrics["acc"].count == 3 and run.metrics["acc"].last == 0.8


def test_points_of_a_store_from_before_the_key_only_layout_survive(tmp_path: object) -> None:
    import sqlite3
    from pathlib import Path

    from workbench.store import migrations

    conn = sqlite3.connect(Path(str(tmp_path)) / "old.db", isolation_level=None)
    migrations.applied(conn)
    for name, sql in migrations.all_migrations():
        if name == "0102_metric_points_by_key":
            break
        for statement in migrations._split(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO migrations VALUES (?, 0)", (name,))
    conn.execute("INSERT INTO runs (id, status, started_at) VALUES ('old', 'succeeded', 0)")
    conn.execute("INSERT INTO metric_keys (id, run_id, key, count) VALUES (5, 'old', 'loss', 2)")
    conn.executemany("INSERT INTO metrics VALUES ('old', 5, ?, 0, ?)", [(0, 0.5), (1, None)])
    assert "0102_metric_points_by_key" in migrations.migrate(conn)
    series = metric_series(conn, "old", "loss")
    assert series.steps == [0, 1] and series.values[0] == 0.5 and math.isnan(series.values[1])


def test_a_flush_that_fails_keeps_everything_for_the_next_one(ws: Workspace) -> None:
    """The database is locked past the busy timeout while a flush writes: it raises, and every
    point, param (an argparse parse replacing the command's flags), tag, file, log line, name and
    dropped-event count it held is written by the next flush (they were lost before)."""
    create_run(ws.db, "r1", name="", command=["x"])
    ing = Ingester(ws.db, "r1", ws.root)
    ing.add_param("max-depth", 2, "argv")
    ing.flush()
    ing.conn.execute("PRAGMA busy_timeout = 50")
    ing.feed_line(events.encode({"e": "series", "k": "loss", "s": list(range(1000)),
                                 "v": [float(i) for i in range(1000)], "t": [1.0] * 1000}))
    ing.feed_line(events.encode({"e": "argparse", "v": {"max_depth": 2}, "given": ["max_depth"],
                                 "flags": ["max-depth"]}))
    ing.feed_line(events.encode({"e": "tag", "k": "team", "v": "vision"}))
    ing.feed_line(events.encode({"e": "input", "path": str(ws.root / "data.csv"), "src": "api"}))
    ing.feed_line(events.encode({"e": "name", "v": "first"}))
    ing.feed_line(b"not an event")
    ing.add_log("stdout", "epoch 1")
    other = connect(ws.paths.db)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            ing.flush()
    finally:
        other.execute("ROLLBACK")
        other.close()
    ing.feed_line(events.encode({"e": "metric", "k": "loss", "v": -1.0, "s": 1000}))
    ing.flush()
    series = metric_series(ws.db, "r1", "loss")
    assert series.steps == list(range(1001)) and series.values[-1] == -1.0
    assert ws.db.execute("SELECT count FROM metric_keys WHERE key = 'loss'").fetchone()[0] == 1001
    assert ing.points_written == 1001
    run = load_runs(ws.db, ["r1"])[0]
    assert run.params == {"max_depth": 2} and run.tags == {"team": "vision"}
    assert run.metrics["loss"].min == -1.0 and run.metrics["loss"].last == -1.0
    files = [tuple(f) for f in ws.db.execute("SELECT direction, path FROM run_files")]
    assert files == [("input", "data.csv")]
    assert "epoch 1" in _logs(ws)
    row = ws.db.execute("SELECT name, dropped_events FROM runs WHERE id = 'r1'").fetchone()
    assert tuple(row) == ("first", 1)
