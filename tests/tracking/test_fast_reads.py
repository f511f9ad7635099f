"""What makes the TUI fast at 10,000 runs: summary rows, metric rollups, the change token, models
with their versions. Each read is checked against the slow, obvious answer."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from workbench.core.workspace import Workspace
from workbench.store import metric_chunks
from workbench.store.migrations import migrate
from workbench.tracking import metrics, registry
from workbench.tracking.ingest import Ingester
from workbench.tracking.records import create_run, end_run


def _points(ws: Workspace, run_id: str, key: str) -> list[tuple[int, float | None, float]]:
    """The stored points straight from the blocks (NaN as None, as the old rows held it)."""
    key_id = ws.db.execute("SELECT id FROM metric_keys WHERE run_id = ? AND key = ?",
                           (run_id, key)).fetchone()[0]
    steps, times, values = metric_chunks.read(ws.db, key_id)
    return [(s, None if v != v else v, t)
            for s, t, v in zip(steps.tolist(), times.tolist(), values.tolist(), strict=True)]


def _check_downsampled(ws: Workspace, run_id: str, key: str, max_points: int) -> metrics.MetricSeries:
    """Every output bucket against the points it covers: (previous bucket's last step, its last step]."""
    series = ws.runs.metric_series(run_id, key, max_points=max_points)
    points = _points(ws, run_id, key)
    assert series.downsampled and 0 < len(series.steps) <= max_points
    assert series.total == len(points) and series.steps[-1] == points[-1][0]
    index = 0
    for step, value, lo, hi, when in zip(series.steps, series.values, series.mins, series.maxs, series.times,
                                         strict=True):
        covered = []
        while index < len(points) and points[index][0] <= step:
            covered.append(points[index])
            index += 1
        assert covered and covered[-1][0] == step
        finite = [v for _, v, _ in covered if v is not None]
        expected_value = covered[-1][1]
        assert (math.isnan(value) if expected_value is None else value == expected_value)
        assert when == covered[-1][2]
        if finite:
            assert (lo, hi) == (min(finite), max(finite))
        else:
            assert math.isnan(lo) and math.isnan(hi)
    assert index == len(points)
    return series


def _long_run(ws: Workspace, run_id: str = "long", n: int = 60_000) -> Ingester:
    create_run(ws.db, run_id, name="long", command=["x"])
    ing = Ingester(ws.db, run_id, ws.root)
    rng = random.Random(3)
    for start in range(0, n, 7_000):  # batches that end mid-bucket
        steps = list(range(start, min(n, start + 7_000)))
        ing.add_series("loss", steps, [rng.random() * 100 for _ in steps], [float(s) for s in steps])
        ing.flush()
    return ing


def test_long_series_come_from_exact_rollups(ws: Workspace) -> None:
    _long_run(ws)
    level_one = ws.db.execute("SELECT COUNT(*) FROM metric_rollups WHERE level = 1").fetchone()[0]
    assert level_one == 60_000 // 64 + 1
    for max_points in (600, 200, 37):
        _check_downsampled(ws, "long", "loss", max_points)
    assert len(ws.runs.metric_series("long", "loss").steps) == 60_000  # no max_points: every point


def test_irregular_steps_nan_and_replaced_points_stay_exact(ws: Workspace) -> None:
    ing = _long_run(ws, n=30_000)
    rng = random.Random(5)
    # sparse, unordered steps with NaN and infinities, in one batch
    steps = rng.sample(range(30_000, 400_000), 5_000)
    values = [math.nan if i % 97 == 0 else (math.inf if i == 3 else rng.random()) for i in range(5_000)]
    ing.add_series("loss", steps, values, [1.0] * 5_000)
    ing.flush()
    _check_downsampled(ws, "long", "loss", 300)
    # replace the current min and max with ordinary values: the rollups must forget them
    points = _points(ws, "long", "loss")
    finite = [(v, s) for s, v, _ in points if v is not None]
    (_, low_step), (high, high_step) = min(finite), max(finite)
    ing.add_points("loss", [low_step, high_step, 10], [50.0, 50.0, -7.0], [2.0, 2.0, 2.0])
    ing.flush()
    series = _check_downsampled(ws, "long", "loss", 300)
    assert min(v for v in series.mins if not math.isnan(v)) == -7.0
    summary = ws.runs.get("long").metrics["loss"]
    stored = [v for _, v, _ in _points(ws, "long", "loss") if v is not None]
    assert (summary.min, summary.max) == (min(stored), max(stored)) and high not in (summary.max,)
    assert summary.count == len(_points(ws, "long", "loss"))


def test_short_series_downsample_from_points(ws: Workspace) -> None:
    _long_run(ws, n=5_000)
    assert not ws.db.execute("SELECT 1 FROM metric_rollups WHERE level = 3 AND bucket > 0").fetchone()
    _check_downsampled(ws, "long", "loss", 100)


def test_rows_written_around_the_ingester_are_read_from_the_tables(ws: Workspace) -> None:
    create_run(ws.db, "side", name="side", command=["x"])
    ing = Ingester(ws.db, "side", ws.root)
    ing.add_param("lr", 0.1, "argv")
    ing.add_points("loss", [0], [1.0], [0.0])
    ing.flush()
    assert ws.runs.list()[0].params == {"lr": 0.1}
    # a writer that does not go through the ingester: the summary row goes stale, reads stay right
    ws.db.execute("INSERT OR REPLACE INTO run_params VALUES ('side', 'lr', '0.5', 'api')")
    ws.db.execute("UPDATE metric_keys SET last_value = 2.0 WHERE run_id = 'side'")
    ws.db.execute("INSERT INTO run_tags VALUES ('side', 'team', 'cv')")
    run = ws.runs.list()[0]
    assert run.params == {"lr": 0.5} and run.tags == {"team": "cv"} and run.metrics["loss"].last == 2.0
    assert ws.db.execute("SELECT stale FROM run_summaries WHERE run_id = 'side'").fetchone()[0] == 1
    end_run(ws.db, "side", status="succeeded", exit_code=0)  # ending a run rebuilds its row
    assert ws.db.execute("SELECT stale FROM run_summaries WHERE run_id = 'side'").fetchone()[0] == 0
    assert ws.runs.get("side").params == {"lr": 0.5}
    # a run row without any summary row (written by hand) is listed too
    ws.db.execute("INSERT INTO runs (id, name, status, started_at) VALUES ('bare', 'b', 'succeeded', 1.0)")
    ws.db.execute("INSERT INTO run_params VALUES ('bare', 'x', '3', 'argv')")
    assert {r.id: r.params for r in ws.runs.list()}["bare"] == {"x": 3}


def test_change_token_moves_with_visible_changes_only(ws: Workspace, project_dir: Path) -> None:
    tokens = [ws.runs.change_token()]

    def moved() -> bool:
        tokens.append(ws.runs.change_token())
        return tokens[-1] != tokens[-2]

    assert not moved()
    create_run(ws.db, "t1", name="t", command=["x"])
    assert moved()
    ing = Ingester(ws.db, "t1", ws.root)
    ing.add_log("stdout", "just a line")
    ing.flush()
    assert not moved()  # log lines are not part of a listing
    ing.add_points("loss", [0], [1.0], [0.0])
    ing.flush()
    assert moved()
    # another connection (another process: a runner, the CLI) commits
    other = Workspace.open(project_dir)
    try:
        end_run(other.db, "t1", status="succeeded", exit_code=0)
    finally:
        other.close()
    assert moved()
    model = project_dir / "m.pkl"
    model.write_bytes(b"x")
    version = ws.runs.register_model(model, name="m")
    assert moved()
    ws.runs.set_alias("m", version.version, "production")
    assert moved() and not moved()


def test_models_carry_their_versions(ws: Workspace, project_dir: Path) -> None:
    for index in range(3):
        (project_dir / "a.pkl").write_bytes(bytes([index]))
        ws.runs.register_model(project_dir / "a.pkl", name="a")
    (project_dir / "b.pt").write_bytes(b"b")
    ws.runs.register_model(project_dir / "b.pt", name="b")
    ws.runs.set_alias("a", 2, "production")
    models = {m.name: m for m in ws.runs.models()}
    assert [v.version for v in models["a"].version_list] == [3, 2, 1] and models["a"].versions == 3
    assert models["a"].version_list[1].aliases == ["production"] and models["a"].aliases == {"production": 2}
    assert models["b"].version_list[0].framework == "torch" and models["b"].latest_version == 1
    listed = [v.to_dict() for v in models["a"].version_list]
    assert [v.to_dict() for v in ws.runs.model_versions("a")] == listed
    assert registry.get_version(ws.db, "a@production").to_dict() == models["a"].version_list[1].to_dict()
    assert models["a"].to_dict()["version_list"][0]["version"] == 3


def test_stores_from_before_the_summaries_are_migrated(ws: Workspace) -> None:
    ing = _long_run(ws, "old", n=10_000)
    ing.add_param("lr", 0.25, "api")
    ing.add_tag("team", "nlp")
    ing.flush()
    end_run(ws.db, "old", status="succeeded", exit_code=0)
    expected = ws.runs.get("old").to_dict(full=True)
    series = ws.runs.metric_series("old", "loss", max_points=50)
    db = ws.db
    # back to the 0102 schema, as an older Workbench left it
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        if name.endswith(("_marks_summary", "_changes")):
            db.execute(f"DROP TRIGGER {name}")
    points = _points(ws, "old", "loss")
    key_id = db.execute("SELECT id FROM metric_keys WHERE key = 'loss'").fetchone()[0]
    db.execute("CREATE TABLE metrics (key_id INTEGER NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL,"
               " value REAL, PRIMARY KEY (key_id, step)) WITHOUT ROWID")
    db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", [(key_id, s, t, v) for s, v, t in points])
    for table in ("run_summaries", "tracking_changes", "metric_rollups", "metric_chunks"):
        db.execute(f"DROP TABLE {table}")
    db.execute("DELETE FROM migrations WHERE name IN"
               " ('0103_run_summaries_changes_rollups', '0140_metric_chunks')")
    assert migrate(db) == ["0103_run_summaries_changes_rollups", "0140_metric_chunks"]
    assert _points(ws, "old", "loss") == points
    assert ws.runs.get("old").to_dict(full=True) == expected
    assert [tuple(r) for r in ws.db.execute("SELECT stale FROM run_summaries")] == [(0,)]
    again = ws.runs.metric_series("old", "loss", max_points=50)
    assert (again.steps, again.mins, again.maxs) == (series.steps, series.mins, series.maxs)
    assert db.execute("SELECT COUNT(*) FROM metric_rollups WHERE level = 1").fetchone()[0] == 10_000 // 64 + 1


@pytest.mark.parametrize("n", [0, 1, 64, 65, 130])
def test_tiny_and_edge_sized_series(ws: Workspace, n: int) -> None:
    create_run(ws.db, f"e{n}", name="", command=["x"])
    ing = Ingester(ws.db, f"e{n}", ws.root)
    ing.add_series("v", list(range(-3, n - 3)), [float(i) for i in range(n)], [0.0] * n)
    ing.flush()
    if n == 0:
        return
    series = ws.runs.metric_series(f"e{n}", "v", max_points=4)
    if n > 4:
        _check_downsampled(ws, f"e{n}", "v", 4)
    else:
        assert series.values == [float(i) for i in range(n)]
